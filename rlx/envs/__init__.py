"""Environments: making vector environments, stepping them uniformly, worker processes,
Atari preprocessing."""

from rlx.envs.atari import make_atari
from rlx.envs.parallel import ParallelVectorEnv, WorkerError
from rlx.envs.vector import VectorStepper, make_vector_env

__all__ = ["ParallelVectorEnv", "VectorStepper", "WorkerError", "make_atari", "make_vector_env"]

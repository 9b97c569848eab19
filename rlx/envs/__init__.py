"""Environments: making vector environments and stepping them uniformly."""

from rlx.envs.vector import VectorStepper, make_vector_env

__all__ = ["VectorStepper", "make_vector_env"]

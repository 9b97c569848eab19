"""Sampling in other processes: asynchronously (into a queue of rollouts, or into a shared
replay for the replay-based algorithms), or in workers that run the policy."""

from rlx.sampling.asynchronous import AsyncSampler, SamplerError, WorkerSampler
from rlx.sampling.replay import ReplaySampler

__all__ = ["AsyncSampler", "ReplaySampler", "SamplerError", "WorkerSampler"]

"""Sampling in other processes: asynchronously, or in workers that run the policy."""

from rlx.sampling.asynchronous import AsyncSampler, SamplerError, WorkerSampler

__all__ = ["AsyncSampler", "SamplerError", "WorkerSampler"]

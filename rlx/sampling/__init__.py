"""Sampling arrangements beyond the Agent's own loop: asynchronous sampling."""

from rlx.sampling.asynchronous import AsyncSampler, SamplerError

__all__ = ["AsyncSampler", "SamplerError"]

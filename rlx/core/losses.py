"""Per-step objectives shared by algorithms (general operations, like the returns math)."""

from __future__ import annotations

import torch

import rlx.fast
from rlx.fast import losses as fast_losses


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's clipped surrogate per step: ``min(r A, clip(r, 1 - clip, 1 + clip) A)``
    (Schulman et al. 2017, eq. 7), to be maximised; ``advantages`` are constants. (With
    the fast paths on, :func:`rlx.fast.losses.clipped_surrogate`: the same values and
    gradient with a cheaper backward.)"""
    advantages = advantages.detach()
    if rlx.fast.enabled():
        return fast_losses.clipped_surrogate(ratio, advantages, clip)
    return torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)

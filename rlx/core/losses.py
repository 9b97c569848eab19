"""Per-step objectives shared by algorithms (general operations, like the returns math)."""

from __future__ import annotations

import torch


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's clipped surrogate per step: ``min(r A, clip(r, 1 - clip, 1 + clip) A)``
    (Schulman et al. 2017, eq. 7), to be maximised; ``advantages`` are constants.

    The same values and the same gradient as writing that expression with ``torch.min``
    and ``clamp``, computed as ``r * w + c`` where ``w`` is ``A`` on the steps where the
    unclipped term is the smaller (0 elsewhere) and ``c`` is the clipped term on the
    others: the minimum's and the clamp's backward (about half of a small PPO
    minibatch's loss arithmetic) become one multiply-add.
    """
    advantages = advantages.detach()
    with torch.no_grad():
        clipped = ratio.clamp(1 - clip, 1 + clip) * advantages
        unclipped = ratio * advantages <= clipped
        weight = torch.where(unclipped, advantages, 0.0)
        rest = torch.where(unclipped, 0.0, clipped)
    return torch.addcmul(rest, ratio, weight)

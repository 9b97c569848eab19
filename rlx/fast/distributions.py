"""Faster ways to build, sample and score the most common torch distributions.

At acting batch sizes torch's ``Categorical`` spends most of its time on bookkeeping:
normalising the logits with ``logsumexp`` (``log_softmax`` is one kernel), sampling
through ``multinomial`` and reshapes (the exponential race ``argmax(p / Exp(1))`` draws
from the same distribution in a few kernels), and broadcasting checks in ``log_prob`` (a
gather gives the same numbers). A rollout's per-step distributions are stacked so that
one call scores all its steps. Where a function returns ``None``,
:mod:`rlx.core.distribution` takes torch's own way. ``benchmarks/sampling.py`` measures
the sampling they speed up.
"""

from __future__ import annotations

import torch
from torch.distributions import Categorical, Distribution, Normal

import rlx.fast


def categorical(logits: torch.Tensor, validate_args: bool | None = None) -> Categorical:
    """``Categorical(logits=logits)`` with its logits normalised by ``log_softmax``."""
    return normalized_categorical(torch.log_softmax(logits, -1), validate_args)


def normalized_categorical(logits: torch.Tensor, validate_args: bool | None = False) -> Categorical:
    """A ``Categorical`` over logits already normalised (kept as they are, so log-probs
    gathered from it equal those of the distributions they came from)."""
    d = Categorical.__new__(Categorical)
    d.logits = logits
    d._param = logits
    d._num_events = logits.shape[-1]
    Distribution.__init__(d, logits.shape[:-1], validate_args=validate_args)
    return d


def sample(d: Distribution) -> torch.Tensor | None:
    """A draw from a plain ``Categorical`` (exponential race) or ``Normal`` (without its
    shape bookkeeping); None for any other distribution."""
    kind = type(d)
    if kind is Categorical:
        # Normalised logits exponentiate to the probabilities in one kernel; torch's lazy
        # ``probs`` (a softmax inside a grad-mode switch) costs several times more.
        probs = d.__dict__.get("probs")
        probs = d.logits.detach().exp() if probs is None else probs.detach()
        return (probs / torch.empty_like(probs).exponential_()).argmax(-1)
    if kind is Normal:
        return torch.normal(d.loc.detach(), d.scale.detach())
    return None


def log_prob(d: Distribution, action: torch.Tensor) -> torch.Tensor | None:
    """A plain ``Categorical``'s log-prob as a gather from its normalised logits; None
    otherwise (or where torch's broadcasting or validation would be needed)."""
    if type(d) is Categorical and not d._validate_args and action.shape == d.batch_shape:
        return d.logits.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
    return None


def stack_components(components: list[tuple[Distribution, ...]]) -> list[Distribution] | None:
    """Per-step components (one tuple per step, each ``[B, ...]``) as one component per
    position over ``T * B`` rows, where every step has the same kinds and each is a
    plain ``Categorical`` or ``Normal``; None otherwise."""
    kinds = [type(c) for c in components[0]]
    if any(k not in (Categorical, Normal) for k in kinds):
        return None
    if any([type(c) for c in step] != kinds for step in components):
        return None
    stacked: list[Distribution] = []
    for i, kind in enumerate(kinds):
        parts = [step[i] for step in components]
        if kind is Categorical:
            stacked.append(normalized_categorical(torch.cat([p.logits for p in parts])))
        else:
            loc = torch.cat([p.loc for p in parts])
            scale = torch.cat([p.scale for p in parts])
            stacked.append(Normal(loc, scale, validate_args=False))
    return stacked


# Bound tensors already checked, by identity and version (kept alive here, at most 64
# pairs) -> centre and radius. A policy passes the same bound buffers at every step, and
# checking them (finite? the unit interval?) costs a few kernels and synchronisations.
_BOUNDS_SEEN: dict[tuple[int, int], tuple] = {}


def known_bounds(low: object, high: object, like: torch.Tensor) -> tuple | None:
    """The ``(centre, radius)`` remembered for these bound tensors, unchanged since, in
    ``like``'s dtype and device; None if not remembered."""
    seen = _BOUNDS_SEEN.get((id(low), id(high)))
    if (
        seen is not None and seen[0] is low and seen[1] is high
        and seen[2] == low._version and seen[3] == high._version  # type: ignore[attr-defined]
        and seen[4] == like.dtype and seen[5] == like.device
    ):  # fmt: skip
        return seen[6]
    return None


def remember_bounds(low: object, high: object, like: torch.Tensor, centre, radius) -> None:
    """Remember the checked ``(centre, radius)`` of two bound tensors."""
    if isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor):
        if len(_BOUNDS_SEEN) > 64:
            _BOUNDS_SEEN.clear()
        _BOUNDS_SEEN[(id(low), id(high))] = (
            low, high, low._version, high._version, like.dtype, like.device, (centre, radius)
        )  # fmt: skip


class without_validation:  # noqa: N801 - used like a function
    """Turn off ``torch.distributions`` argument validation while rlx runs a policy (with
    the fast paths on and ``enabled``; restored on exit): it costs about a small network's
    forward per step, and rlx checks sampled actions against the action space itself.
    ``rlx.Agent(validate_args=True)`` keeps validation on."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def __enter__(self) -> None:
        self.saved = Distribution._validate_args
        if self.enabled and rlx.fast.enabled():
            Distribution._validate_args = False

    def __exit__(self, *exc: object) -> None:
        Distribution._validate_args = self.saved

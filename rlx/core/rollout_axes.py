"""Helpers on a rollout's ``[T, B]`` axes (indices, permutations, padding), on tensors
and field dictionaries so that slicing, shuffling, chunking and :func:`cat` share them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlx.core.distribution import ActionDistribution
from rlx.tree import tree_map

# The whole axis: an index that selects nothing away.
ALL = slice(None)


def as_index(i: Any, size: int, device: torch.device, axis: str) -> slice | torch.Tensor:
    """A slice, or a 1-D tensor of positions in ``range(size)``.

    Integers (Python, numpy or 0-d tensors) keep their dimension, so a Rollout stays
    ``[T, B]``; negative positions count from the end; boolean masks become positions.
    """
    if isinstance(i, slice):
        return i
    if i is Ellipsis or i is None:
        raise IndexError(
            "a Rollout is indexed as rollout[time] or rollout[time, env]: no ... or None."
        )
    if isinstance(i, (int, np.integer)) or (isinstance(i, torch.Tensor) and i.dim() == 0):
        k = int(i)
        if not -size <= k < size:
            raise IndexError(
                f"{axis} index {k} is out of range for a rollout with {size} {axis} steps."
            )
        k %= size
        return slice(k, k + 1)
    i = torch.as_tensor(np.asarray(i) if isinstance(i, (list, tuple)) else i, device=device)
    if i.dtype == torch.bool:
        if i.dim() > 1:
            raise IndexError(
                "a 2-D boolean mask would flatten time and environments; use "
                "rollout.vectorize() to keep only valid steps as one batch."
            )
        if len(i) != size:
            raise IndexError(f"boolean {axis} mask has {len(i)} entries for {size} {axis} steps.")
        return i.nonzero().squeeze(1)
    if i.dim() != 1 or i.is_floating_point():
        raise IndexError(
            "index a Rollout with ints, slices or 1-D integer positions, "
            f"got {i.dtype} of shape {tuple(i.shape)}."
        )
    i = i.long()
    if len(i) and (bool((i < -size).any()) or bool((i >= size).any())):
        raise IndexError(f"{axis} positions {i.tolist()} are out of range for {size} {axis} steps.")
    return torch.where(i < 0, i + size, i)


def permutation(n: int, generator: torch.Generator | None) -> torch.Tensor:
    """A random permutation of ``range(n)`` from ``generator``, or from a freshly seeded
    one: the global RNG state is never touched."""
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    return torch.randperm(n, generator=generator)


def pad_time(fields: dict[str, Any], extra: int) -> dict[str, Any]:
    """Every field of ``fields`` with ``extra`` zero (hence invalid) steps appended in time."""
    if extra == 0:
        return fields

    def pad(x: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros((extra, *x.shape[1:]), dtype=x.dtype, device=x.device)
        return torch.cat([x, zeros], 0)

    def repeat_last(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x[-1:].expand(extra, *x.shape[1:])], 0)

    # Distribution parameters repeat their last step: zeros may be no valid parameter
    # (a standard deviation of 0).
    return {
        k: v.map(repeat_last) if isinstance(v, ActionDistribution) else tree_map(pad, v)
        for k, v in fields.items()
    }

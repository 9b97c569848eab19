"""Gymnasium spaces as tensors: observation storage and actions sent to environments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlx.tree import Tree


def tensor_dtype(space: spaces.Space, float_dtype: torch.dtype | None = None) -> torch.dtype:
    """The torch dtype rlx stores a leaf space's values in.

    Floating values take ``float_dtype`` (the policy's, default float32), so float64
    observations meet a float32 network; every other dtype (uint8 images, int64 indices)
    is kept.
    """
    if isinstance(space, spaces.Discrete):
        return torch.int64
    dtype = np.dtype(space.dtype) if space.dtype is not None else np.dtype(np.float32)
    if np.issubdtype(dtype, np.floating):
        return float_dtype or torch.get_default_dtype()
    if dtype == np.bool_:
        return torch.bool
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


def leaf_shape(space: spaces.Space) -> tuple[int, ...]:
    return () if isinstance(space, spaces.Discrete) else tuple(space.shape)


def allocate(
    space: spaces.Space,
    prefix: tuple[int, ...],
    device: torch.device,
    float_dtype: torch.dtype | None = None,
) -> Tree:
    """Zero storage of shape ``[*prefix, *leaf_shape]`` for each leaf of ``space``."""
    if isinstance(space, spaces.Dict):
        return {k: allocate(s, prefix, device, float_dtype) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(allocate(s, prefix, device, float_dtype) for s in space.spaces)
    dtype = tensor_dtype(space, float_dtype)
    return torch.zeros(prefix + leaf_shape(space), dtype=dtype, device=device)


def _subspaces(space: spaces.Dict | spaces.Tuple) -> list[spaces.Space]:
    """The sub-spaces of a Dict (in key order) or Tuple space."""
    return list(space.spaces.values() if isinstance(space, spaces.Dict) else space.spaces)


def check_supported(space: spaces.Space, what: str) -> None:
    leaf_types = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        for s in _subspaces(space):
            check_supported(s, what)
    elif not isinstance(space, leaf_types):
        raise TypeError(
            f"rlx does not support {what} space {space!r}: use Box, Discrete, "
            "MultiDiscrete, MultiBinary, or Tuple/Dict of them (wrap the environment with "
            "gymnasium.wrappers.FlattenObservation for other spaces)."
        )


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.numpy(force=True)  # detaches and copies to the CPU only when needed


def action_converter(space: spaces.Space, clip: bool) -> Callable[[Any], Any]:
    """A function turning a batched rlx action into what a vector environment expects."""
    if isinstance(space, spaces.Discrete):
        start = int(space.start)
        if start == 0:
            return _to_numpy
        return lambda a: _to_numpy(a) + start
    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        dtype = space.dtype
        if clip and np.issubdtype(dtype, np.floating):  # a Box of floats
            low, high = space.low, space.high
            return lambda a: np.clip(_to_numpy(a), low, high).astype(dtype, copy=False)
        return lambda a: _to_numpy(a).astype(dtype, copy=False)
    if isinstance(space, spaces.MultiDiscrete):
        start = space.start

        def multi_discrete(a: Any) -> np.ndarray:
            if isinstance(a, (tuple, list)):
                a = torch.stack(list(a), dim=-1)
            return (_to_numpy(a) + start).astype(space.dtype, copy=False)

        return multi_discrete
    if isinstance(space, spaces.Tuple):
        subs = [action_converter(s, clip) for s in space.spaces]
        return lambda a: tuple(f(x) for f, x in zip(subs, a, strict=True))
    if isinstance(space, spaces.Dict):
        named = {k: action_converter(s, clip) for k, s in space.spaces.items()}

        def as_dict(a: Any) -> dict[str, Any]:
            if isinstance(a, (tuple, list)):  # positional components in the space's key order
                a = dict(zip(named, a, strict=True))
            return {k: f(a[k]) for k, f in named.items()}

        return as_dict
    raise TypeError(f"unsupported action space {space!r}")


def as_space_structure(space: spaces.Space, action: Any) -> Any:
    """An action in the structure of ``space`` (a ``[..., k]`` tensor for MultiDiscrete, a
    dict for Dict, a tuple for Tuple), whatever components the policy used."""
    if isinstance(space, spaces.MultiDiscrete) and isinstance(action, (tuple, list)):
        return torch.stack(list(action), dim=-1)
    if isinstance(space, spaces.Dict):
        if isinstance(action, (tuple, list)):
            action = dict(zip(space.spaces, action, strict=True))
        return {k: as_space_structure(s, action[k]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(as_space_structure(s, a) for s, a in zip(space.spaces, action, strict=True))
    return action


def check_distribution(space: spaces.Space, dist: Any) -> None:
    """Categorical components must have exactly as many categories as the space allows.

    Catches, once per sampling call, a policy whose output layer is too wide before it
    samples an out-of-range action by chance.
    """
    from torch.distributions import Categorical

    comps = list(dist.components)
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        leaves = _subspaces(space)
    else:
        leaves = [space] if len(comps) == 1 else []
    if isinstance(space, spaces.MultiDiscrete) and len(comps) == len(space.nvec) > 1:
        leaves = [spaces.Discrete(int(n)) for n in space.nvec]
    for i, (s, d) in enumerate(zip(leaves, comps, strict=False)):
        if isinstance(s, spaces.Discrete) and type(d) is Categorical:
            n = d.logits.shape[-1]
            if n != s.n:
                raise ValueError(
                    f"component {i} is a Categorical over {n} categories but the action "
                    f"space {s!r} has {int(s.n)}. Make the final layer's output size {int(s.n)}."
                )


def check_action(space: spaces.Space, action: Any, batch: int, where: str = "action") -> None:
    """Raise a ValueError naming the problem when ``action`` cannot act in ``space``.

    Runs on the first step of each sampling call: shapes and discrete ranges are fixed
    by the policy's architecture, so one check per call catches them.
    """
    if isinstance(space, (spaces.Tuple, spaces.Dict)):
        subs = space.spaces
        if isinstance(space, spaces.Dict) and isinstance(action, (tuple, list)):
            action = dict(zip(subs, action, strict=False))
        if isinstance(space, spaces.Dict):
            if not isinstance(action, dict) or set(action) != set(subs):
                got = sorted(action) if isinstance(action, dict) else type(action).__name__
                raise ValueError(
                    f"the policy's {where} does not match the Dict action space with keys "
                    f"{sorted(subs)} (got {got}). Return rlx.ActionDistribution(key=dist, ...) "
                    "with one component per key."
                )
            for k, s in subs.items():
                check_action(s, action[k], batch, f"{where}[{k!r}]")
            return
        if not isinstance(action, (tuple, list)) or len(action) != len(subs):
            n = len(action) if isinstance(action, (tuple, list)) else 1
            raise ValueError(
                f"the Tuple action space has {len(subs)} parts but the policy's "
                f"ActionDistribution gave {n}. Return one component per part, in order."
            )
        for i, (s, a) in enumerate(zip(subs, action, strict=True)):
            check_action(s, a, batch, f"{where}[{i}]")
        return
    if isinstance(space, spaces.MultiDiscrete) and isinstance(action, (tuple, list)):
        if len(action) != len(space.nvec):
            raise ValueError(
                f"{space!r} has {len(space.nvec)} dimensions but the policy gave "
                f"{len(action)} Categorical components; give one per dimension."
            )
        action = torch.stack(list(action), dim=-1)
    if isinstance(action, (tuple, list, dict)):
        raise ValueError(
            f"{space!r} takes one action per step, but the policy's ActionDistribution has "
            f"{len(action)} components. Give it one component for this space."
        )
    if not isinstance(action, torch.Tensor):
        raise ValueError(f"{where} for {space!r} should be a tensor, got {type(action).__name__}.")
    expected = (batch, *leaf_shape(space))
    if tuple(action.shape) != expected:
        raise ValueError(
            f"{where} has shape {tuple(action.shape)} but {space!r} with {batch} environment(s) "
            f"needs {expected}. Make the distribution's batch shape [B, *space.shape] "
            "(for a Box, e.g. Normal(mean, std) with mean of shape [B, dim])."
        )
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        if action.is_floating_point() and not isinstance(space, spaces.MultiBinary):
            raise ValueError(f"{where} for {space!r} must be integer, got {action.dtype}.")
        size = space.n if isinstance(space, spaces.Discrete) else getattr(space, "nvec", 2)
        size_t = torch.as_tensor(np.asarray(size), device=action.device)
        if bool((action < 0).any()) or bool((action >= size_t).any()):
            raise ValueError(
                f"{where} {action.flatten()[:8].tolist()} lies outside {space!r}: the "
                f"policy's distribution has more categories than the space allows ({size}). "
                "Make the final layer's output size match the action space."
            )

"""Best-effort snapshots of environment state, for checkpoints that resume exactly.

Gymnasium has no API to save an environment. Most Python environments (classic control,
toy text, users' own) keep their whole state in plain attributes: numpy arrays, numbers,
and ``numpy.random.Generator`` objects. :func:`snapshot` walks a vector environment, its
wrappers and its sub-environments and copies those attributes into plain data (tensors,
numbers, dicts) that ``torch.load(weights_only=True)`` accepts; :func:`restore` writes
them back into a freshly made environment of the same kind.

Environments whose state lives elsewhere (MuJoCo's C structures, Atari emulators,
subprocesses of ``AsyncVectorEnv`` and ``ParallelVectorEnv``, EnvPool) are not captured:
:func:`snapshot` returns ``None`` for them and a resumed run starts new episodes there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import torch


def _walk(obj: Any, path: str = "root") -> Iterator[tuple[str, Any]]:
    """``obj`` and everything it wraps, each with its path; a child is looked up only
    after its parent has been handled (restored)."""
    yield path, obj
    if isinstance(obj, gym.vector.SyncVectorEnv):
        for i, env in enumerate(obj.envs):
            yield from _walk(env, f"{path}.envs.{i}")
    inner = getattr(obj, "env", None)
    if isinstance(inner, (gym.Env, gym.vector.VectorEnv)) and inner is not obj:
        yield from _walk(inner, f"{path}.env")


def _capture(value: Any) -> Any:
    if isinstance(value, np.random.Generator):
        return {"__generator__": value.bit_generator.state}
    if isinstance(value, (np.ndarray, np.generic)):
        if value.dtype.kind not in "biuf":  # strings, objects: constants such as maps
            return _SKIP
        if isinstance(value, np.generic):
            return {"__scalar__": value.item(), "dtype": str(value.dtype)}
        return {"__array__": torch.from_numpy(value.copy()), "dtype": str(value.dtype)}
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, (list, tuple)):  # e.g. a hand of cards
        items = [_capture(v) for v in value]
        if any(item is _SKIP for item in items):
            return _SKIP
        return {"__sequence__": items, "tuple": isinstance(value, tuple)}
    return _SKIP


_SKIP = object()


def snapshot(env: gym.vector.VectorEnv) -> dict[str, Any] | None:
    """Plain-data copy of the state of ``env`` and everything it wraps, or None."""
    from rlx.envs.envpool import EnvPoolVectorEnv
    from rlx.envs.parallel import ParallelVectorEnv, ParallelVectorView

    elsewhere = (gym.vector.AsyncVectorEnv, ParallelVectorEnv, ParallelVectorView, EnvPoolVectorEnv)
    if isinstance(getattr(env, "unwrapped", env), elsewhere):
        return None  # the environments live in other processes or in C++
    state: dict[str, Any] = {}
    for path, obj in _walk(env):
        attrs = ((name, _capture(value)) for name, value in vars(obj).items())
        state[path] = {name: captured for name, captured in attrs if captured is not _SKIP}
    return state


def _release(value: Any, current: Any) -> Any:
    if isinstance(value, dict) and "__generator__" in value:
        state = value["__generator__"]
        if not isinstance(current, np.random.Generator):  # not created yet in a fresh env
            current = np.random.Generator(getattr(np.random, state["bit_generator"])())
        current.bit_generator.state = state
        return current
    if isinstance(value, dict) and "__array__" in value:
        return value["__array__"].numpy().astype(value["dtype"], copy=True)
    if isinstance(value, dict) and "__scalar__" in value:
        return np.dtype(value["dtype"]).type(value["__scalar__"])
    if isinstance(value, dict) and "__sequence__" in value:
        items = [_release(v, None) for v in value["__sequence__"]]
        return tuple(items) if value["tuple"] else items
    return value


def restore(env: gym.vector.VectorEnv, state: dict[str, Any] | None) -> bool:
    """Write a :func:`snapshot` back into ``env``; False if there was nothing to restore."""
    if state is None:
        return False
    for path, obj in _walk(env):
        for name, value in state.get(path, {}).items():
            setattr(obj, name, _release(value, vars(obj).get(name)))
    return True

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

from typing import Any

import gymnasium as gym
import numpy as np
import torch

_PLAIN = (bool, int, float, str, type(None))


def _children(obj: Any) -> list[tuple[str, Any]]:
    kids = []
    if isinstance(obj, gym.vector.SyncVectorEnv):
        kids += [(f"envs.{i}", e) for i, e in enumerate(obj.envs)]
    inner = getattr(obj, "env", None)
    if isinstance(inner, (gym.Env, gym.vector.VectorEnv)) and inner is not obj:
        kids.append(("env", inner))
    return kids


def _capture(value: Any) -> Any:
    if isinstance(value, np.random.Generator):
        return {"__generator__": value.bit_generator.state}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":  # strings, objects: constants such as maps
            return _SKIP
        return {"__array__": torch.from_numpy(value.copy()), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biuf":
            return _SKIP
        return {"__scalar__": value.item(), "dtype": str(value.dtype)}
    if isinstance(value, _PLAIN):
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
    from rlx.envs.parallel import ParallelVectorEnv

    elsewhere = (gym.vector.AsyncVectorEnv, ParallelVectorEnv, EnvPoolVectorEnv)
    if isinstance(getattr(env, "unwrapped", env), elsewhere):
        return None  # the environments live in other processes or in C++
    state: dict[str, Any] = {}

    def walk(obj: Any, path: str) -> None:
        attrs = {}
        for name, value in vars(obj).items():
            captured = _capture(value)
            if captured is not _SKIP:
                attrs[name] = captured
        state[path] = attrs
        for name, child in _children(obj):
            walk(child, f"{path}.{name}")

    walk(env, "root")
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

    def walk(obj: Any, path: str) -> None:
        for name, value in state.get(path, {}).items():
            setattr(obj, name, _release(value, vars(obj).get(name)))
        for name, child in _children(obj):
            walk(child, f"{path}.{name}")

    walk(env, "root")
    return True

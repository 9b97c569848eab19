"""Environments written for the old gym API (gym before 0.26, as rlmodels' are):
``step`` returns ``(obs, reward, done, info)``, ``reset()`` the observation alone, and
``seed(n)`` seeds. rlx wraps such an environment in :class:`OldApiEnv` (one warning per
process) wherever it accepts an ``Env`` or a function making one.

``done`` is a truncation where ``info["TimeLimit.truncated"]`` (gym's time limit) is
true, a termination otherwise: a time limit signalled another way stops bootstrapping
there; port the environment to ``terminated, truncated`` to keep it.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

_warned = False


def is_old_api(env: Any) -> bool:
    """Whether ``env`` follows the old gym API: its ``reset`` takes no ``seed`` argument
    (seeding was ``env.seed(n)`` then)."""
    try:
        params = inspect.signature(env.reset).parameters
    except (TypeError, ValueError):  # no signature to read: assume the new API
        return False
    return "seed" not in params and all(p.kind != p.VAR_KEYWORD for p in params.values())


def looks_like_env(obj: Any) -> bool:
    """An environment object of any API (gymnasium's or gym's): ``step``, ``reset`` and
    an action space (a class is a factory, not an environment)."""
    attrs = ("step", "reset", "action_space")
    return not isinstance(obj, type) and all(hasattr(obj, name) for name in attrs)


def compatible(env: Any) -> Any:
    """``env`` itself, or wrapped in :class:`OldApiEnv` if it follows the old API."""
    if isinstance(env, OldApiEnv) or not is_old_api(env):
        return env
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"{type(env).__name__} follows the old gym API (4-value step, seed()); rlx "
            "adapts it (rlx.envs.compat.OldApiEnv: done is a termination unless "
            "info['TimeLimit.truncated']). Port it to gymnasium's API to silence this.",
            stacklevel=3,
        )
    return OldApiEnv(env)


def make_compatible(make_env: Callable[[], Any]) -> Any:
    """``make_env()``, adapted if it follows the old API (picklable with ``partial``)."""
    return compatible(make_env())


class OldApiEnv(gym.Env):
    """A gymnasium ``Env`` around an old-API environment; see the module docstring."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.observation_space = as_gymnasium_space(env.observation_space)
        self.action_space = as_gymnasium_space(env.action_space)
        self.metadata = getattr(env, "metadata", {}) or {}
        self.render_mode = getattr(env, "render_mode", None)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if seed is not None:
            if callable(getattr(self.env, "seed", None)):
                self.env.seed(seed)
            self.action_space.seed(seed)
        out = self.env.reset()
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
            return out
        return out, {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        out = self.env.step(action)
        if len(out) == 5:  # already the new step
            return out
        obs, reward, done, info = out
        truncated = bool(info.get("TimeLimit.truncated", False))
        return obs, reward, bool(done) and not truncated, truncated, info

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        close = getattr(self.env, "close", None)
        if close is not None:
            close()


def as_gymnasium_space(space: Any) -> spaces.Space:
    """A gymnasium space equal to an old gym space (read by its class name and fields);
    gymnasium spaces are returned as they are."""
    if isinstance(space, spaces.Space):
        return space
    kind = type(space).__name__
    if kind == "Box":
        return spaces.Box(np.asarray(space.low), np.asarray(space.high), dtype=space.dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(space.n), start=int(getattr(space, "start", 0)))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.asarray(space.nvec))
    if kind == "MultiBinary":
        return spaces.MultiBinary(space.n)
    if kind == "Tuple":
        return spaces.Tuple([as_gymnasium_space(s) for s in space.spaces])
    if kind == "Dict":
        return spaces.Dict({k: as_gymnasium_space(s) for k, s in space.spaces.items()})
    raise TypeError(
        f"rlx cannot read the old gym space {space!r}: give the environment gymnasium "
        "spaces (Box, Discrete, MultiDiscrete, MultiBinary, Tuple, Dict)."
    )

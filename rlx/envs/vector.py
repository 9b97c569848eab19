"""Making vector environments and stepping them without autoreset artefacts.

Gymnasium >= 1.0 vector environments reset a finished environment in one of three ways
(``metadata["autoreset_mode"]``):

- *same step*: the step that ends an episode already returns the reset observation, and
  the final one sits in ``info["final_obs"]``;
- *next step* (the default): the ending step returns the final observation; the *next*
  ``step`` call resets that environment, ignores its action and returns reward 0 — a
  step that is not a transition;
- *disabled*: the user resets finished environments with ``reset(options={"reset_mask": m})``.

:class:`VectorStepper` hides the difference. Same-step environments are read as they
are. Next-step and disabled environments that accept ``reset_mask`` (gymnasium's
``SyncVectorEnv`` and ``AsyncVectorEnv``) are reset right after the ending step, so no
step is wasted. Other next-step environments (such as gymnasium's numpy ``CartPole``
vector environment) take the reset step; the stepper reports it as an *autoreset* step
and the rollout marks that row invalid, never as a transition.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from rlx.envs.compat import compatible, looks_like_env, make_compatible
from rlx.envs.parallel import ParallelVectorEnv, ParallelVectorView
from rlx.envs.serial import SerialVectorEnv
from rlx.tree import tree_map

NATIVE_MIN_ENVS = 5  # below this, stepping B copies of the env in a loop is faster


def unknown_id_error(env_id: str, err: Exception) -> ValueError:
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(
        f"unknown environment id {env_id!r}.{hint} Check the spelling and version, and "
        "import the package that registers it (e.g. `import ale_py`) before creating the Agent."
    )


def make_vector_env(
    env: str | gym.Env | gym.vector.VectorEnv | Callable[[], gym.Env],
    num_envs: int = 1,
    vectorization: str | None = None,
    workers: int = 2,
    parts: int = 1,
    **env_kwargs: Any,
) -> gym.vector.VectorEnv:
    """A vector environment from an id, an ``Env``, an env factory or a ``VectorEnv``.

    Args:
        env: a gymnasium id (``"CartPole-v1"``), one ``gymnasium.Env`` (becomes one
            environment), a function returning a new ``Env`` (called ``num_envs`` times),
            or a ready ``gymnasium.vector.VectorEnv`` (used as it is). Environments of the
            old gym API are adapted (:mod:`rlx.envs.compat`).
        num_envs: number of environments B for ids and factories.
        vectorization: ``None`` uses an id's own vector implementation when it has one
            and ``num_envs >= 5`` (where it steps faster than separate environments),
            else ``"sync"``; ``"sync"`` steps the environments one after another in this
            process (:class:`~rlx.envs.serial.SerialVectorEnv`), ``"async"`` in
            gymnasium's ``AsyncVectorEnv`` subprocesses; ``"parallel"`` makes a
            :class:`~rlx.envs.parallel.ParallelVectorEnv` with ``workers`` processes;
            ``"envpool"`` uses EnvPool's C++ environments (ids only).
        workers: worker processes for ``"parallel"``.
        parts: for ``"parallel"``, ``1`` (the main process steps a group itself) or ``2``
            (two halves, every environment in a worker process, for the alternating
            sampler; :class:`~rlx.envs.parallel.ParallelVectorEnv`).
        env_kwargs: passed to ``gymnasium.make_vec`` / the environment constructor.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}.")
    if vectorization not in (None, "sync", "async", "parallel", "envpool"):
        raise ValueError(
            "vectorization must be None, 'sync', 'async', 'parallel' or 'envpool', got "
            f"{vectorization!r}."
        )
    if isinstance(env, gym.vector.VectorEnv):
        if num_envs not in (1, env.num_envs):
            raise ValueError(
                f"the vector environment has {env.num_envs} environments but num_envs="
                f"{num_envs}; leave num_envs out for a ready VectorEnv."
            )
        if vectorization is not None or env_kwargs:
            raise ValueError(
                "vectorization and environment arguments apply to ids and env functions, "
                "not to a ready VectorEnv; configure it where you create it."
            )
        return env
    if vectorization == "envpool":
        if not isinstance(env, str):
            raise ValueError("vectorization='envpool' needs an environment id, e.g. 'CartPole-v1'.")
        from rlx.envs.envpool import EnvPoolVectorEnv

        return EnvPoolVectorEnv(env, num_envs, **env_kwargs)
    if isinstance(env, str):
        try:
            spec = gym.spec(env)
        except gym.error.Error as err:
            raise unknown_id_error(env, err) from None
        native = spec.vector_entry_point is not None and num_envs >= NATIVE_MIN_ENVS
        if vectorization is None and native:
            return gym.make_vec(env, num_envs=num_envs, **env_kwargs)
        if vectorization == "async":
            return gym.make_vec(env, num_envs=num_envs, vectorization_mode="async", **env_kwargs)
        env = partial(gym.make, env, **env_kwargs)  # "sync" and "parallel": as a factory
    elif isinstance(env, gym.Env) or looks_like_env(env):
        if vectorization is not None or env_kwargs:
            raise ValueError(
                "an Env instance is used as it is: vectorization and environment arguments "
                "need an id or a function that creates the environment."
            )
        if num_envs != 1:
            raise ValueError(
                f"an Env instance is one environment, but num_envs={num_envs}. Pass a "
                "function that creates the environment (lambda: MyEnv()) for several."
            )
        env = compatible(env)
        return SerialVectorEnv([lambda: env], copy=False)
    if callable(env):
        fns = [partial(make_compatible, env)] * num_envs
        if vectorization == "parallel":
            return ParallelVectorEnv(fns, workers, inline=parts == 1, parts=parts)
        if vectorization == "async":
            return gym.vector.AsyncVectorEnv(fns)
        return SerialVectorEnv(fns, copy=False)
    raise TypeError(
        f"cannot make an environment from {type(env).__name__}: pass a gymnasium id, an "
        "Env, a function returning an Env, or a gymnasium.vector.VectorEnv."
    )


class Step(NamedTuple):
    """One step of every environment, as :meth:`VectorStepper.step` reports it."""

    obs: Any  # observations to act on next (reset ones where an episode ended)
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    # None, or (environment indices, their final observations) where those differ from
    # ``obs`` (same-step and reset-mask modes).
    finals: tuple[np.ndarray, Any] | None
    # None, or boolean [B]: True where this step was a next-step autoreset, not a
    # transition (its reward is 0 and its flags False).
    autoreset: np.ndarray | None
    done: np.ndarray | None  # None when no episode ended, else boolean [B]


class VectorStepper:
    """Steps a vector environment and reports final observations and autoreset steps
    uniformly, whatever its autoreset mode (:class:`Step`)."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        self.env = env
        self.num_envs = env.num_envs
        mode = env.metadata.get("autoreset_mode", "NextStep")
        mode = getattr(mode, "value", str(mode))
        unwrapped = getattr(env, "unwrapped", env)
        if mode == "SameStep":
            self.mode = "same_step"
        elif isinstance(unwrapped, (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv)):
            self.mode = "reset_mask"
        elif mode == "Disabled":
            raise ValueError(
                "this vector environment has autoreset disabled but does not accept "
                "reset(options={'reset_mask': ...}); create it with autoreset_mode='SameStep'."
            )
        else:
            self.mode = "next_step"
        self._ended = np.zeros(self.num_envs, dtype=bool)  # next step is an autoreset
        # rlx's worker-process environments step in the background between send and
        # receive; any other environment steps in receive.
        self._background = type(env) in (ParallelVectorEnv, ParallelVectorView)
        self._sent: Any = None

    def reset(self, seed: int | None = None) -> Any:
        obs, _ = self.env.reset(seed=seed)
        self._ended = np.zeros(self.num_envs, dtype=bool)
        return obs

    def step(self, actions: Any) -> Step:
        """One step of every environment."""
        self.send(actions)
        return self.receive()

    def send(self, actions: Any) -> None:
        """Start a step with ``actions``; :meth:`receive` returns it."""
        if self._background:
            self.env.step_async(actions)
        else:
            self._sent = actions

    def receive(self) -> Step:
        """The step :meth:`send` started."""
        if self._background:
            obs, rewards, terminated, truncated, info = self.env.step_wait()
        else:
            actions, self._sent = self._sent, None
            obs, rewards, terminated, truncated, info = self.env.step(actions)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        done = terminated | truncated
        if self.mode == "next_step":
            autoreset = None
            if self._ended.any():
                autoreset = self._ended
                rewards = np.where(autoreset, 0.0, rewards)
                terminated = terminated & ~autoreset
                truncated = truncated & ~autoreset
                done = terminated | truncated
            self._ended = done
            ended = done if done.any() else None
            return Step(obs, rewards, terminated, truncated, None, autoreset, ended)
        if not done.any():
            return Step(obs, rewards, terminated, truncated, None, None, None)
        idx = np.flatnonzero(done)
        if self.mode == "same_step":
            finals = (idx, _stack_rows([info["final_obs"][i] for i in idx]))
        else:
            finals = (idx, tree_map(lambda x: np.array(x[idx]), obs))
            obs, _ = self.env.reset(options={"reset_mask": done})
        return Step(obs, rewards, terminated, truncated, finals, None, done)

    def state_dict(self) -> dict[str, Any]:
        return {"pending": torch.from_numpy(self._ended.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._ended = state["pending"].numpy().copy()

    def close(self) -> None:
        self.env.close()


def _stack_rows(rows: list[Any]) -> Any:
    """Stack per-environment observations (possibly dicts/tuples) into one batch."""
    first = rows[0]
    if isinstance(first, dict):
        return {k: _stack_rows([r[k] for r in rows]) for k in first}
    if isinstance(first, tuple):
        return tuple(_stack_rows([r[i] for r in rows]) for i in range(len(first)))
    return np.stack([np.asarray(r) for r in rows])

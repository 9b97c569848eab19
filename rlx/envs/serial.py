"""``SerialVectorEnv``: B environments stepped one after another in this process.

The serial sampler's vector environment. It is gymnasium's ``SyncVectorEnv`` (same
construction, seeding, ``call``, ``render``, ``reset_mask``) with a leaner ``step``:
observations are written straight into the batch array, infos are merged only when an
environment returns any, and a finished episode is reset in the same step (gymnasium's
*same-step* autoreset) with a *copy* of its final observation in
``info["final_obs"]``, so environments that reuse their observation array cannot
overwrite it. This saves ``SyncVectorEnv``'s per-step bookkeeping and the extra reset
call its next-step mode needs (``benchmarks/sampling.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import concatenate, iterate


class SerialVectorEnv(gym.vector.SyncVectorEnv):
    """``SyncVectorEnv`` with same-step autoreset and a lean ``step``; see the module doc.

    Args:
        env_fns: functions that each create one environment.
        copy: return copies of the batched observations (rlx copies what it stores, so
            it makes these with ``copy=False``).
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], copy: bool = True) -> None:
        super().__init__(env_fns, copy=copy, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        # Actions of these spaces are rows of one array: index them instead of iterate().
        self._row_actions = isinstance(
            self.single_action_space,
            (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
        )
        # Observations of one array write into the batch row by row.
        self._row_obs = isinstance(self._observations, np.ndarray)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        per_env = actions if self._row_actions else list(iterate(self.action_space, actions))
        infos: dict[str, Any] = {}
        rewards, terminations, truncations = self._rewards, self._terminations, self._truncations
        batch, rows = self._observations, self._row_obs
        for i, env in enumerate(self.envs):
            obs, reward, terminated, truncated, info = env.step(per_env[i])
            rewards[i], terminations[i], truncations[i] = reward, terminated, truncated
            if terminated or truncated:
                ended = {"final_obs": copy.deepcopy(obs), "final_info": info}
                infos = self._add_info(infos, ended, i)
                obs, info = env.reset()
            if info:
                infos = self._add_info(infos, info, i)
            self._env_obs[i] = obs  # what reset(options={"reset_mask": ...}) batches
            if rows:
                batch[i] = obs
        if not rows:
            self._observations = concatenate(
                self.single_observation_space, self._env_obs, self._observations
            )
        obs = self._observations
        return (
            copy.deepcopy(obs) if self.copy else obs,
            rewards.copy(),
            terminations.copy(),
            truncations.copy(),
            infos,
        )

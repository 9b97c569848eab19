"""EnvPool (C++ batched environments) as a gymnasium vector environment.

``make_vector_env(id, num_envs, vectorization="envpool")`` (or
``rlx.Agent(id, vectorization="envpool")``) builds one through :class:`EnvPoolVectorEnv`.
EnvPool resets a finished environment on the *next* step, like gymnasium's numpy CartPole;
rlx marks that step invalid, so rollouts hold the same transitions as with any other
backend. Install with ``pip install 'rlx[envpool]'``.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np


class EnvPoolVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` copies of an EnvPool task behind gymnasium's ``VectorEnv`` API.

    EnvPool seeds its environments when the pool is built; ``reset(seed=s)`` with a new
    seed therefore rebuilds the pool, seeded with ``s``.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, env_id: str, num_envs: int = 1, seed: int = 0, **kwargs: Any) -> None:
        try:
            import envpool
        except ImportError:
            raise ValueError(
                "vectorization='envpool' needs EnvPool: pip install 'rlx[envpool]'."
            ) from None
        self._make = lambda s: envpool.make(
            env_id, env_type="gymnasium", num_envs=num_envs, seed=s, **kwargs
        )
        try:
            with warnings.catch_warnings():  # EnvPool builds float64 bounds for float32 Boxes
                warnings.filterwarnings("ignore", message=".*precision lowered")
                self.pool = self._make(seed)
                self.single_observation_space = self.pool.observation_space
                self.single_action_space = self.pool.action_space
        except Exception as err:  # envpool raises plain errors for unknown ids
            raise ValueError(f"EnvPool cannot make {env_id!r}: {err}") from None
        self.seed_used = seed
        self.env_id = env_id
        self.num_envs = num_envs
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.closed = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if options:
            raise ValueError("EnvPool environments take no reset options.")
        if seed is not None and seed != self.seed_used:
            self.pool.close()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*precision lowered")
                self.pool = self._make(seed)
            self.seed_used = seed
        return self.pool.reset()

    def step(self, actions: Any):
        if isinstance(self.single_action_space, gym.spaces.Discrete):
            actions = np.asarray(actions, dtype=np.int32)
        return self.pool.step(actions)

    def close(self, **kwargs: Any) -> None:
        if not self.closed:
            self.closed = True
            self.pool.close()

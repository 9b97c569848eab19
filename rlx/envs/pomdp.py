"""Partially observable versions of classic tasks: velocities hidden from the agent, so
that only a policy with memory can infer them from consecutive observations.

Registered with gymnasium when ``rlx`` is imported:

- ``IncompleteCartPole-v0`` / ``-v1``: CartPole (200 / 500 steps) without the pole's
  angular velocity (observation: cart position, cart velocity, pole angle), as in the
  original rlx experiments;
- ``PositionOnlyCartPole-v1``: CartPole with both velocities hidden (observation: cart
  position, pole angle). Without the pole's angular velocity a memoryless policy still
  balances for a while from the cart's velocity and the angle; with neither velocity it
  cannot, so this is the task that separates recurrent from feed-forward policies;
- ``IncompletePendulum-v1``: Pendulum without the angular velocity (cos, sin of the angle);
- ``IncompleteAcrobot-v1``: Acrobot without both joint velocities (cos, sin of each angle).
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

INCOMPLETE = {
    "IncompleteCartPole-v0": ("CartPole-v0", (0, 1, 2)),
    "IncompleteCartPole-v1": ("CartPole-v1", (0, 1, 2)),
    "PositionOnlyCartPole-v1": ("CartPole-v1", (0, 2)),
    "IncompletePendulum-v1": ("Pendulum-v1", (0, 1)),
    "IncompleteAcrobot-v1": ("Acrobot-v1", (0, 1, 2, 3)),
}


class HideObservation(gym.ObservationWrapper):
    """Keeps only the entries ``keep`` of a flat Box observation."""

    def __init__(self, env: gym.Env, keep: Sequence[int]) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise TypeError(f"HideObservation needs a flat Box observation space, got {space}.")
        self.keep = np.asarray(keep)
        self.observation_space = gym.spaces.Box(
            space.low[self.keep], space.high[self.keep], dtype=space.dtype
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.keep]


def make_incomplete(base: str, keep: Sequence[int], **kwargs) -> gym.Env:
    """The unwrapped base task with only ``keep`` observed (gymnasium adds the time limit)."""
    return HideObservation(gym.make(base, **kwargs).unwrapped, keep)


def register() -> None:
    """Register the Incomplete* environments (idempotent)."""
    for name, (base, keep) in INCOMPLETE.items():
        if name in gym.registry:
            continue
        spec = gym.spec(base)
        gym.register(
            id=name,
            entry_point=make_incomplete,
            max_episode_steps=spec.max_episode_steps,
            reward_threshold=spec.reward_threshold,
            kwargs={"base": base, "keep": keep},
        )

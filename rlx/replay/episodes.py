"""A replay of whole episodes, for off-policy learning from episodic rollouts."""

from __future__ import annotations

from collections import deque

import torch

from rlx.core.rollout import Rollout, cat


class EpisodeReplay:
    """Keeps the newest ``capacity`` episodes (single-environment columns of rollouts).

    ``add`` splits a ``[T, B]`` rollout into its B episodes, trimmed to their valid
    length; ``sample(n)`` joins ``n`` of them, drawn uniformly with replacement, into one
    ``[T, n]`` rollout padded with invalid steps. Stored rollouts are detached.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be at least 1 episode, got {capacity}.")
        self.capacity = capacity
        self.episodes: deque[Rollout] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self.episodes)

    def add(self, rollout: Rollout) -> None:
        rollout = rollout.detach()
        lengths = rollout.valid.sum(0).tolist()
        self.episodes.extend(rollout[:n, b] for b, n in enumerate(lengths) if n > 0)

    def state_dict(self) -> dict:
        """The stored episodes as plain tensors, for checkpoints."""
        return {"capacity": self.capacity, "episodes": [e.to_dict() for e in self.episodes]}

    def load_state_dict(self, state: dict) -> None:
        self.capacity = int(state["capacity"])
        self.episodes = deque(
            (Rollout.from_dict(e) for e in state["episodes"]), maxlen=self.capacity
        )

    def sample(self, n: int, generator: torch.Generator | None = None) -> Rollout:
        if not self.episodes:
            raise ValueError("the replay is empty: add episodes before sampling.")
        picks = torch.randint(len(self.episodes), (n,), generator=generator).tolist()
        return cat([self.episodes[i] for i in picks], dim=1)

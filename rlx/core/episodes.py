"""Per-environment episode bookkeeping for sampling: running returns and lengths, the
episodes finished since they were last collected, and episode counters."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class Episodes:
    """The episodes of B environments as sampling steps them.

    ``ids[i]`` counts the episodes environment ``i`` has begun (a policy that last acted
    in another episode must not continue its recurrent state there); ``finished`` holds
    ``(return, length)`` of every episode ended since :meth:`pop`.
    """

    def __init__(self, num_envs: int) -> None:
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.ids = np.zeros(num_envs, dtype=np.int64)
        self.finished: list[tuple[float, int]] = []

    def restart_all(self) -> None:
        """Every environment was reset: new episodes everywhere."""
        self.returns[:] = 0.0
        self.lengths[:] = 0
        self.ids += 1

    def add(self, rewards: np.ndarray, counted: np.ndarray | None = None) -> None:
        """One step's rewards, in the environments where ``counted`` (all when None)."""
        if counted is None:
            self.returns += rewards
            self.lengths += 1
        else:
            self.returns += np.where(counted, rewards, 0.0)
            self.lengths += counted

    def end(self, done: np.ndarray, counted: np.ndarray | None = None) -> None:
        """The episodes of the ``done`` environments ended (finished where ``counted``);
        those environments begin new ones."""
        self.finish(np.flatnonzero(done if counted is None else done & counted))
        self.returns[done] = 0.0
        self.lengths[done] = 0
        self.ids += done

    def finish(self, envs: np.ndarray) -> None:
        """Record the running episodes of ``envs`` (indices) as finished."""
        for i in envs:
            self.finished.append((float(self.returns[i]), int(self.lengths[i])))

    def pop(self) -> list[tuple[float, int]]:
        """(return, length) of every episode finished since the last call, oldest first."""
        done, self.finished = self.finished, []
        return done

    def state_dict(self) -> dict[str, Any]:
        return {
            "ep_return": torch.from_numpy(self.returns.copy()),
            "ep_length": torch.from_numpy(self.lengths.copy()),
            "episode_ids": torch.from_numpy(self.ids.copy()),
            "completed": [list(c) for c in self.finished],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = state["ep_return"].numpy().copy()
        self.lengths = state["ep_length"].numpy().copy()
        self.ids = state["episode_ids"].numpy().copy()
        self.finished = [(float(r), int(n)) for r, n in state["completed"]]

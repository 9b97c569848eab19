"""A sum tree over priorities: O(log n) updates and proportional sampling, batched."""

from __future__ import annotations

import numpy as np
import torch


class SumTree:
    """Priorities of ``capacity`` slots in a binary tree of partial sums (float64).

    ``update`` sets many slots and repairs their ancestors level by level;
    ``find`` walks many values down at once. Both cost O(k log n) for k slots, in numpy
    operations per tree level rather than Python operations per slot.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"SumTree capacity must be at least 1, got {capacity}.")
        self.capacity = capacity
        self.depth = max(1, int(np.ceil(np.log2(capacity))))
        self.leaves = 1 << self.depth
        self._tensor = torch.zeros(2 * self.leaves, dtype=torch.float64)
        self.tree = self._tensor.numpy()  # the same memory, written with numpy

    def share_memory(self) -> SumTree:
        """Move the tree to shared memory (a process that unpickles it writes the same
        priorities)."""
        self._tensor.share_memory_()
        self.tree = self._tensor.numpy()
        return self

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["tree"]  # a view of _tensor, rebuilt on the other side
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.tree = self._tensor.numpy()

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def __getitem__(self, slots: np.ndarray) -> np.ndarray:
        return self.tree[np.asarray(slots) + self.leaves]

    def update(self, slots: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priorities of ``slots`` (the last value wins for repeated slots)."""
        slots = np.asarray(slots, dtype=np.int64)
        priorities = np.asarray(priorities, dtype=np.float64)
        if slots.size == 0:
            return
        if slots.min() < 0 or slots.max() >= self.capacity:
            raise IndexError(
                f"slots must be in [0, {self.capacity}), got {slots.min()}..{slots.max()}."
            )
        if not np.all(np.isfinite(priorities)) or priorities.min() < 0:
            raise ValueError("priorities must be finite and non-negative.")
        nodes = slots + self.leaves
        self.tree[nodes] = priorities
        nodes = np.unique(nodes // 2)
        while nodes[0] >= 1:
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes // 2)

    def find(self, values: np.ndarray) -> np.ndarray:
        """The slot whose cumulative range holds each value in ``(0, total]``."""
        values = np.array(values, dtype=np.float64)
        nodes = np.ones(values.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = 2 * nodes
            left_sum = self.tree[left]
            right = values > left_sum
            values = np.where(right, values - left_sum, values)
            nodes = left + right
        return np.minimum(nodes - self.leaves, self.capacity - 1)

    def sample(self, k: int, rng: np.random.Generator) -> np.ndarray:
        """``k`` slots drawn in proportion to their priority, one from each of ``k`` equal
        strata of the total (lower variance than independent draws)."""
        total = self.total
        if total <= 0:
            raise ValueError("cannot sample from a sum tree whose priorities are all 0.")
        u = (np.arange(k) + rng.random(k)) / k
        slots = self.find(total * (1.0 - u))
        zero = self[slots] <= 0  # rounding at a boundary: draw those again
        while zero.any():
            slots[zero] = self.find(total * (1.0 - rng.random(int(zero.sum()))))
            zero = self[slots] <= 0
        return slots

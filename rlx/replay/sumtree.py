"""A sum tree over priorities: O(log n) updates and proportional sampling, batched."""

from __future__ import annotations

import numpy as np
import torch


class SumTree:
    """Priorities of ``capacity`` slots in a binary tree of partial sums (float64).

    ``update`` and ``find`` handle k slots at once in O(k log n), with numpy operations per
    tree level rather than Python operations per slot.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"SumTree capacity must be at least 1, got {capacity}.")
        self.capacity = capacity
        self.depth = max(1, int(np.ceil(np.log2(capacity))))
        self.leaves = 1 << self.depth
        self._tensor = torch.zeros(2 * self.leaves, dtype=torch.float64)

    @property
    def tree(self) -> np.ndarray:
        """The partial sums (root at 1, slot i at ``leaves + i``), viewing the tensor."""
        return self._tensor.numpy()

    def share_memory(self) -> SumTree:
        """Move the tree to shared memory (a process that unpickles it writes the same
        priorities)."""
        self._tensor.share_memory_()
        return self

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
        tree, nodes = self.tree, slots + self.leaves
        tree[nodes] = priorities
        for _ in range(self.depth):  # up to the root, one level at a time
            nodes = np.unique(nodes // 2)
            tree[nodes] = tree[2 * nodes] + tree[2 * nodes + 1]

    def find(self, values: np.ndarray) -> np.ndarray:
        """The slot whose cumulative range holds each value in ``(0, total]``."""
        tree, values = self.tree, np.array(values, dtype=np.float64)
        nodes = np.ones(values.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = 2 * nodes
            left_sum = tree[left]
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

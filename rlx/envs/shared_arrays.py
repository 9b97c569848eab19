"""Trees of numpy arrays in shared memory, one row per environment.

:class:`~rlx.envs.parallel.ParallelVectorEnv` and its worker processes exchange
observations, actions, rewards and episode ends through these arrays instead of
pickling them through pipes: the main process creates a :class:`SharedBlock` for a
tree of specs, each worker attaches to it by name, and both read and write rows in place.
"""

from __future__ import annotations

import contextlib
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import gymnasium as gym
import numpy as np

from rlx.tree import tree_index, tree_leaves, tree_map


def leaf_specs(space: gym.Space, n: int) -> Any:
    """A tree of specs for ``n`` stacked values of ``space``: each leaf a numpy subarray
    dtype, whose ``shape``, ``base`` and ``itemsize`` give the array and its bytes."""
    sample = gym.vector.utils.batch_space(space, n).sample()
    return tree_map(lambda x: np.dtype((np.asarray(x).dtype, np.shape(x))), sample)


class SharedBlock:
    """One shared-memory block per leaf of ``specs``, with numpy views on it; created
    here, or attached to by the ``names`` of an existing block."""

    def __init__(self, specs: Any, names: Any = None) -> None:
        self.owner = names is None
        leaves = tree_leaves(specs)
        if names is None:
            self.blocks = [SharedMemory(create=True, size=max(1, d.itemsize)) for d in leaves]
        else:
            self.blocks = [_attach(name) for name in names]
        views = iter(
            np.ndarray(d.shape, dtype=d.base, buffer=b.buf)
            for d, b in zip(leaves, self.blocks, strict=True)
        )
        self.arrays = tree_map(lambda _: next(views), specs)

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.blocks]

    def release(self) -> None:
        self.arrays = None
        for block in self.blocks:
            with contextlib.suppress(BufferError):  # a view still open: unmapped at exit
                block.close()
            if self.owner:
                with contextlib.suppress(FileNotFoundError):
                    block.unlink()
        self.blocks = []


def _attach(name: str) -> SharedMemory:
    """Open a block the main process owns. Workers share the main process's resource
    tracker, so the block stays registered once, and the main process unlinks it."""
    try:
        return SharedMemory(name=name, track=False)
    except TypeError:  # Python < 3.13: attaching registers again (a set: no duplicate)
        return SharedMemory(name=name)


def write_row(tree: Any, i: int, value: Any) -> None:
    """Write one environment's value into row ``i`` of a shared tree."""
    if isinstance(tree, np.ndarray):  # the common case, without tree_map's overhead
        tree[i] = value
    else:
        tree_map(lambda dst, src: dst.__setitem__(i, src), tree, value)


def read_row(tree: Any, i: int) -> Any:
    """Row ``i`` of a shared tree (views, not copies)."""
    return tree[i] if isinstance(tree, np.ndarray) else tree_index(tree, i)


def copy_tree(tree: Any) -> Any:
    """A private copy of a shared tree, safe to keep after the next step."""
    return tree_map(np.array, tree)

"""Trees of numpy arrays in shared memory, one row per environment.

:class:`~rlx.envs.parallel.ParallelVectorEnv` and its worker processes exchange
observations, actions, rewards and episode ends through these arrays instead of
pickling them through pipes: the main process creates a :class:`SharedBlock` for a
tree of ``(shape, dtype)`` specs, each worker attaches to it by name, and both read and
write rows in place.
"""

from __future__ import annotations

import contextlib
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import gymnasium as gym
import numpy as np

from rlx.tree import tree_map


def leaf_specs(space: gym.Space, n: int) -> Any:
    """A tree of ``(shape, dtype)`` for ``n`` stacked values of ``space``."""
    sample = gym.vector.utils.batch_space(space, n).sample()
    return tree_map(lambda x: (np.asarray(x).shape, np.asarray(x).dtype), as_tree(sample))


def as_tree(value: Any) -> Any:
    """gymnasium's Dict samples are dicts already; make Tuple samples tuples."""
    if isinstance(value, dict):
        return {k: as_tree(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(as_tree(v) for v in value)
    return np.asarray(value)


class SharedBlock:
    """One shared-memory block per leaf, with numpy views on it."""

    def __init__(self, specs: Any, names: Any = None) -> None:
        self.owner = names is None
        leaves = _spec_leaves(specs)
        if names is None:
            self.blocks = [
                SharedMemory(create=True, size=max(1, int(np.prod(s)) * d.itemsize))
                for s, d in leaves
            ]
        else:
            self.blocks = [_attach(name) for name in names]
        views = iter(
            np.ndarray(s, dtype=d, buffer=b.buf)
            for (s, d), b in zip(leaves, self.blocks, strict=True)
        )
        self.arrays = _rebuild(specs, views)

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


def _is_spec(x: Any) -> bool:
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], np.dtype)


def _spec_leaves(specs: Any) -> list[tuple[tuple[int, ...], np.dtype]]:
    if _is_spec(specs):
        return [specs]
    children = specs.values() if isinstance(specs, dict) else specs
    return [leaf for child in children for leaf in _spec_leaves(child)]


def _rebuild(specs: Any, views: Any) -> Any:
    if _is_spec(specs):
        return next(views)
    if isinstance(specs, dict):
        return {k: _rebuild(v, views) for k, v in specs.items()}
    return tuple(_rebuild(v, views) for v in specs)


def write_row(tree: Any, i: int, value: Any) -> None:
    """Write one environment's value into row ``i`` of a shared tree."""
    if isinstance(tree, np.ndarray):
        tree[i] = value
    elif isinstance(tree, dict):
        for k, sub in tree.items():
            write_row(sub, i, value[k])
    else:
        for sub, v in zip(tree, value, strict=True):
            write_row(sub, i, v)


def read_row(tree: Any, i: int) -> Any:
    """Row ``i`` of a shared tree (views, not copies)."""
    if isinstance(tree, np.ndarray):
        return tree[i]
    if isinstance(tree, dict):
        return {k: read_row(v, i) for k, v in tree.items()}
    return tuple(read_row(v, i) for v in tree)


def copy_tree(tree: Any) -> Any:
    """A private copy of a shared tree, safe to keep after the next step."""
    return tree_map(np.array, tree)

"""Nested data: one structure of tensors indexed as a whole.

Observations and actions may be nested (gymnasium ``Dict`` and ``Tuple`` spaces), and
extras returned by a policy may be tuples. rlx stores every such value as a plain Python
*tree*: a tensor (or ``None``) at the leaves, ``dict``/``tuple``/``list``/namedtuple as
containers. ``tree_map`` applies one function to every leaf of one or more trees of the
same structure, so ``rollout[:, idx]`` indexes every leaf at once (the role of rlpyt's
namedarraytuple).

Why not ``tensordict``? Measured by ``benchmarks/nested.py`` on a ``[128, 8]`` rollout
with a Dict observation (two leaves) and next observations, actions, rewards,
terminations, truncations, valid and starts (ten leaves), torch 2.13.0 CPU, tensordict
0.15.3, one thread; microseconds per operation, best of 5 (typical of three runs):

    operation                  rlx trees   TensorDict
    index one step  r[5]            22.9         27.8
    slice time      r[:64]          23.0         27.7
    permute envs    r[:, perm]      72.5        284.5
    concatenate     cat(r1, r2)     68.8         72.7

Over six runs on this noisy 2-core machine the ratios (TensorDict time / rlx time) were
0.98-1.22 for indexing, 1.05-1.20 for slicing, 1.65-3.93 for permuting environments
(rlx uses ``index_select``) and 0.73-1.11 for concatenation: equal within noise except
permutation, where trees win. With no speed reason to take on a dependency, rlx keeps
plain trees, whose fields stay ordinary attributes that a debugger shows directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Tree = Any  # a tensor, None, or a dict/tuple/list of trees


def tree_map(fn: Callable[..., Any], tree: Tree, *rest: Tree) -> Tree:
    """Apply ``fn`` to each leaf of ``tree`` (and the matching leaves of ``rest``).

    ``None`` leaves stay ``None``. Containers keep their type (namedtuples included).
    """
    if isinstance(tree, torch.Tensor):
        return fn(tree, *rest)
    if tree is None:
        return None
    if isinstance(tree, dict):
        return {k: tree_map(fn, v, *(r[k] for r in rest)) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        items = [tree_map(fn, v, *(r[i] for r in rest)) for i, v in enumerate(tree)]
        if hasattr(tree, "_fields"):  # namedtuple
            return type(tree)(*items)
        return type(tree)(items)
    return fn(tree, *rest)  # numpy arrays and other array-likes are leaves too


def tree_leaves(tree: Tree) -> list[Any]:
    """All non-None leaves of ``tree`` in a fixed order."""
    if tree is None:
        return []
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in tree_leaves(v)]
    if isinstance(tree, (tuple, list)):
        return [leaf for v in tree for leaf in tree_leaves(v)]
    return [tree]


def tree_structure(tree: Tree) -> Any:
    """A comparable description of the structure and per-leaf trailing shape/dtype.

    The two leading dimensions (time and batch) are left out, so two rollouts of other
    lengths but the same environment have equal structures.
    """
    if tree is None:
        return None
    if isinstance(tree, dict):
        return {k: tree_structure(v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return tuple(tree_structure(v) for v in tree)
    return (tuple(tree.shape[2:]), tree.dtype)


def tree_index(tree: Tree, index: Any) -> Tree:
    """``leaf[index]`` for every leaf."""
    return tree_map(lambda x: x[index], tree)

"""Nested data: one structure of tensors indexed as a whole.

Observations and actions may be nested (gymnasium ``Dict`` and ``Tuple`` spaces), and
extras returned by a policy may be tuples. rlx stores every such value as a plain Python
*tree*: a tensor (or ``None``) at the leaves, ``dict``/``tuple``/``list``/namedtuple as
containers. ``tree_map`` applies one function to every leaf of one or more trees of the
same structure, so ``rollout[:, idx]`` indexes every leaf at once (the role of rlpyt's
namedarraytuple).

Why not ``tensordict``? ``benchmarks/nested.py`` times both on a rollout with nested
observations: they index, slice and concatenate equally fast, and trees permute the
environments faster (the README has the figures). With no speed reason to take on a
dependency, rlx keeps plain trees, whose fields stay ordinary attributes that a debugger
shows directly.
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

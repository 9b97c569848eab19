"""Nested data: one structure of tensors indexed as a whole.

Observations and actions may be nested (gymnasium ``Dict`` and ``Tuple`` spaces), and
extras returned by a policy may be tuples. rlx stores every such value as a plain Python
*tree*: a tensor (or ``None``) at the leaves, ``dict``/``tuple``/``list``/namedtuple as
containers. ``tree_map`` applies one function to every leaf of one or more trees of the
same structure, so ``rollout[:, idx]`` indexes every leaf at once (the role of rlpyt's
namedarraytuple).

Why not ``tensordict``? ``benchmarks/nested.py`` times both on a rollout with nested
observations: equally fast to index, slice and concatenate, trees faster to permute the
environments (figures in the README). So rlx keeps plain trees, which need no dependency
and which a debugger shows directly.
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


def tree_set(dest: Tree, index: Any, src: Tree) -> Tree:
    """``leaf[index] = src_leaf`` for every leaf of ``dest``, in place (rlpyt's
    ``dest[index] = src`` on a namedarraytuple); returns ``dest``.

    ``src`` has ``dest``'s structure (``None`` where ``dest`` has ``None``) with leaves that
    broadcast to ``leaf[index]`` (tensors, arrays or numbers). Otherwise a ValueError names
    the leaf and both shapes, and nothing is written.
    """
    writes: list[tuple[torch.Tensor, torch.Tensor]] = []
    for path, leaf, value in _paired_leaves(dest, src, "tree"):
        value = torch.as_tensor(value, device=leaf.device)
        target = leaf[index].shape
        try:
            fits = torch.broadcast_shapes(value.shape, target) == target
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"tree_set: the value for {path} has shape {tuple(value.shape)}, which does "
                f"not fit {path}[index] of shape {tuple(target)}."
            )
        writes.append((leaf, value.to(leaf.dtype)))
    for leaf, value in writes:  # only once every leaf has passed its check
        leaf[index] = value
    return dest


def _paired_leaves(dest: Tree, src: Tree, path: str) -> list[tuple[str, Any, Any]]:
    """``(path, dest leaf, src leaf)`` for every leaf; a ValueError where ``src`` has
    another structure."""
    if isinstance(dest, dict):
        if not isinstance(src, dict) or set(src) != set(dest):
            got = f"keys {sorted(src)}" if isinstance(src, dict) else f"a {type(src).__name__}"
            raise ValueError(f"tree_set: {path} has keys {sorted(dest)}, the value {got}.")
        return [p for k in dest for p in _paired_leaves(dest[k], src[k], f"{path}[{k!r}]")]
    if isinstance(dest, (tuple, list)):
        if not isinstance(src, (tuple, list)) or len(src) != len(dest):
            got = f"{len(src)}" if isinstance(src, (tuple, list)) else f"a {type(src).__name__}"
            raise ValueError(f"tree_set: {path} has {len(dest)} items, the value {got}.")
        return [p for i, (d, s) in enumerate(zip(dest, src, strict=True))
                for p in _paired_leaves(d, s, f"{path}[{i}]")]  # fmt: skip
    if dest is None:
        if src is not None:
            raise ValueError(f"tree_set: {path} is None, but the value there is not.")
        return []
    if not isinstance(dest, torch.Tensor):
        raise TypeError(f"tree_set writes into tensors; {path} is a {type(dest).__name__}.")
    return [(path, dest, src)]

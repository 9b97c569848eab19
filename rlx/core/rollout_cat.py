"""Joining rollouts: :func:`cat` along time or along environments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from rlx.core.rollout_axes import pad_time
from rlx.core.rollout_fields import STEP_FIELDS, field_map
from rlx.tree import tree_structure

if TYPE_CHECKING:
    from rlx.core.rollout import Rollout


def cat(rollouts: Sequence[Rollout], dim: int = 0) -> Rollout:
    """Concatenate rollouts along time (``dim=0``) or environments (``dim=1``).

    Along time the environment counts must match (e.g. consecutive ``steps()``
    segments). Along environments, shorter rollouts are padded at the end with invalid
    steps. All must come from the same environment and be all dry or all evaluated.
    """
    if dim not in (0, 1):
        raise ValueError(f"dim must be 0 (time) or 1 (environments), got {dim}.")
    rollouts = list(rollouts)
    if not rollouts:
        raise ValueError("cat needs at least one rollout.")
    fields = [r._fields() for r in rollouts]
    first = rollouts[0]
    for k, (r, f) in enumerate(zip(rollouts[1:], fields[1:], strict=True), start=1):
        if r.dry != first.dry:
            raise ValueError(
                f"cannot concatenate a dry rollout with an evaluated one (rollout {k}). "
                "Evaluate both under the same policy, or drop the evaluation with "
                "rollout.as_dry()."
            )
        for name in STEP_FIELDS:
            a, b = fields[0][name], f[name]
            if name == "_distributions":
                continue  # joined when all have them (their components compared then)
            if (a is None) != (b is None) or tree_structure(a) != tree_structure(b):
                raise ValueError(
                    f"cannot concatenate rollouts: field {name.lstrip('_')!r} differs "
                    f"(rollout 0: {tree_structure(a)}, rollout {k}: {tree_structure(b)}). "
                    "Rollouts must come from the same environment and policy outputs."
                )
        if dim == 0 and r.batch_size != first.batch_size:
            raise ValueError(
                f"cannot concatenate along time: rollout 0 has {first.batch_size} environments "
                f"and rollout {k} has {r.batch_size}. Use `+` (or dim=1) to join environments."
            )
    if dim == 1:
        T = max(len(r) for r in rollouts)
        fields = [pad_time(f, T - len(r)) for f, r in zip(fields, rollouts, strict=True)]
    # Rollouts rebuilt from plain data (Rollout.from_dict) hold no distributions: then
    # neither does the result.
    if any(f["_distributions"] is None for f in fields):
        fields = [{**f, "_distributions": None} for f in fields]
    joined = {
        name: field_map(lambda *xs: torch.cat(xs, dim), *(f[name] for f in fields))
        for name in STEP_FIELDS
    }
    return first._replace(joined)

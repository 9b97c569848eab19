"""The rollout side of return computation: what ``Rollout.mc_returns``, ``gae``,
``vtrace`` and ``nstep_returns`` hand to the math in :mod:`rlx.core.returns`."""

from __future__ import annotations

import torch

from rlx.core.rollout_fields import RolloutFields


def as_steps(x: torch.Tensor, shape: tuple[int, int], name: str) -> torch.Tensor:
    """``x`` as one value per step ``[T, B]`` (a trailing dimension of 1 dropped);
    ValueError naming ``name`` if it does not match ``shape``."""
    if x.dim() == 3 and x.shape[2] == 1:
        x = x.squeeze(2)
    if tuple(x.shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {tuple(x.shape)} but the rollout is {list(shape)}: pass one "
            "value per step, shape [T, B]."
        )
    return x


def episode_cuts(rollout: RolloutFields) -> torch.Tensor:
    """Where a return recursion stops: episode ends, invalid steps, and any step
    followed by an episode start (rollouts joined with ``cat`` or after a reset)."""
    cuts = rollout.terminations | rollout.truncations | ~rollout.valid
    cuts[:-1] |= rollout.starts[1:]
    return cuts


def bootstrap_values(
    rollout: RolloutFields, values: torch.Tensor, next_values: torch.Tensor | None
) -> torch.Tensor:
    """The values of ``rollout.next_observations``, ``[T, B]``: ``next_values`` if given,
    else the ``next_others`` entry matching ``values`` when ``values`` is one of
    ``rollout.others``."""
    if next_values is not None:
        return as_steps(next_values, rollout.shape, "next_values")
    if not rollout.dry and rollout._others is not None:
        for extra, nxt in zip(rollout.others, rollout.next_others or (), strict=False):
            if extra is values:
                return as_steps(nxt, rollout.shape, "next_values")
    raise ValueError(
        "cannot find the bootstrap values for these values. Pass the extra itself "
        "(values, = rollout.others; rollout.gae(values, ...)) so rlx uses the matching "
        "rollout.next_others entry, or pass next_values=... explicitly (the values of "
        "rollout.next_observations, e.g. from agent(critic).evaluate(rollout).next_others)."
    )

"""``Parametric``: the user's per-time-step policy network."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch

import rlx.fast
from rlx.fast import params as fast_params

_EXTRAS_WANTED: ContextVar[bool] = ContextVar("rlx_extras_wanted", default=True)


def extras_wanted() -> bool:
    """False while rlx samples a dry rollout, whose extras are discarded: a policy may
    then skip computing them (e.g. a critic, whose values come later from one batched
    ``agent(policy).evaluate(rollout)``) and return ``(state, distribution)`` only. The
    ready policies do this."""
    return _EXTRAS_WANTED.get()


@contextlib.contextmanager
def extras_dropped() -> Iterator[None]:
    """Within this block, :func:`extras_wanted` is False (used by dry sampling)."""
    token = _EXTRAS_WANTED.set(False)
    try:
        yield
    finally:
        _EXTRAS_WANTED.reset(token)


def parameters_and_buffers(
    module: torch.nn.Module,
) -> tuple[tuple[torch.nn.Parameter, ...], tuple[torch.Tensor, ...]]:
    """``(tuple(module.parameters()), tuple(module.buffers()))`` (remembered between
    calls with the fast paths on: :mod:`rlx.fast.params`)."""
    if rlx.fast.enabled():
        return fast_params.parameters_and_buffers(module)
    return tuple(module.parameters()), tuple(module.buffers())


class Parametric(torch.nn.Module):
    """A policy (and anything else) computed for one time step, batched over environments.

    Subclass it like any ``torch.nn.Module``; the constructor is yours. ``forward``
    receives ``(recur_state, obs)`` and returns
    ``(next_recur_state, rlx.ActionDistribution(...), *extras)``:

    - ``recur_state`` is what ``forward`` returned as ``next_recur_state`` on the previous
      step of the same environments (any tensor or tuple/dict of tensors whose first
      dimension is the batch). It is ``None`` on the very first step; at an episode start
      rlx resets it to zeros, so a policy should treat ``None`` as zeros, or define
      :meth:`initial_state` to choose another start. Return ``None`` when not recurrent.
    - ``obs`` is a tensor ``[B, ...]`` on the policy's device (float64 observations arrive
      as the default float dtype), or a dict/tuple of such tensors for Dict/Tuple spaces.
    - ``extras`` are any tensors (values, Q-values...): rlx stacks them to ``[T, B, ...]``
      in ``rollout.others``. An extra of shape ``[B, 1]`` is stored as ``[T, B]`` so that a
      value head's output lines up with ``rollout.rewards``.

    While rlx samples a dry rollout, :func:`rlx.extras_wanted` is False and a policy may
    return no extras (they would be discarded).

    Set the attribute ``previous_action_reward = True`` (on the class, or on an instance
    as the ready recurrent networks do when asked) to also receive the
    previous action and reward (rlpyt's agent inputs): ``forward`` is then called with
    ``(recur_state, obs, prev_action, prev_reward)``, where both are zeros at an episode
    start and ``prev_reward`` has shape ``[B]``.
    """

    previous_action_reward: bool = False

    def initial_state(self, batch_size: int) -> Any:
        """The recurrent state at an episode start; ``None`` means zeros.

        Override to return a tensor (or tuple/dict of tensors) of leading size
        ``batch_size``, e.g. a learned initial state.
        """
        return None

    def numpy_actor(self, batch_size: int) -> Callable[[np.ndarray, bool], np.ndarray] | None:
        """Optional fast acting: a function ``act(obs, deterministic) -> actions`` on numpy
        arrays for ``batch_size`` environments, or None (this default) to act through
        ``forward``.

        At acting batch sizes a small network's torch calls cost several times their
        arithmetic; numpy's cost a fraction. With the fast paths on (:mod:`rlx.fast`),
        rlx uses it where only the actions are kept (a dry rollout sampled without
        gradient, of one observation tensor on the CPU), from the second step on: the
        first runs ``forward``, which checks the output (a recurrent policy is never
        acted for this way). ``act`` maps observations ``[B, ...]`` as stored to actions
        ``[B, ...]`` drawn from forward's distribution (its mode when ``deterministic``)
        with torch's generator, so ``torch.manual_seed`` still decides them (it may draw
        ahead in blocks). The ready :class:`rlx.policies.MLPPolicy` has one.
        """
        return None

    def forward(self, *states: Any) -> tuple[Any, ...]:  # pragma: no cover - abstract
        raise NotImplementedError(
            f"{type(self).__name__} must define forward(self, *states) returning "
            "(next_recur_state, rlx.ActionDistribution(...), *extras)."
        )

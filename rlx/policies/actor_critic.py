"""Ready policy-value networks for the policy-gradient algorithms.

``MLPPolicy`` (separate actor and critic MLPs) and ``RecurrentPolicy`` (GRU or LSTM
cells for actor and critic, or one shared) both return ``(state, ActionDistribution,
value)``: the value is the single extra, so ``values, = rollout.others``.

Observations of any supported space are flattened (Discrete ones one-hot); the action
head follows the action space: ``Categorical`` for Discrete, a diagonal ``Normal`` for
Box (state-independent log-std by default; ``squash=True`` gives a tanh-squashed
Gaussian rescaled to the Box bounds, :class:`rlx.TanhNormal`), one ``Categorical`` per
MultiDiscrete dimension, ``Bernoulli`` for MultiBinary, and a component per part for Tuple and Dict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.distributions import Bernoulli, Normal

import rlx.fast
from rlx.core.components import TanhNormal
from rlx.core.distribution import ActionDistribution, categorical
from rlx.core.parametric import Parametric, extras_wanted
from rlx.fast import acting as fast_acting
from rlx.policies.layers import (
    flat_size,
    flatten,
    mlp,
    previous_size,
    rnn_step,
    with_previous,
)


class ActionHead(nn.Module):
    """Maps features ``[B, H]`` to an ``ActionDistribution`` over ``space``."""

    def __init__(
        self,
        space: spaces.Space,
        features: int,
        state_dependent_std: bool = False,
        squash: bool = False,
    ) -> None:
        super().__init__()
        self.space = space
        self.squash = squash
        if isinstance(space, (spaces.Tuple, spaces.Dict)):
            subs = space.spaces.values() if isinstance(space, spaces.Dict) else space.spaces
            if any(isinstance(s, (spaces.Tuple, spaces.Dict)) for s in subs):
                raise TypeError(
                    f"ready policies support one level of Tuple/Dict actions, got {space}"
                )
            self.parts = nn.ModuleList(
                ActionHead(s, features, state_dependent_std, squash) for s in subs
            )
            return
        supported = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Box)
        if not isinstance(space, supported):
            raise TypeError(f"ready policies do not support action space {space}")
        out = flat_size(space)  # logits, or a Box's means
        if isinstance(space, spaces.Box):
            if state_dependent_std:
                out *= 2  # and their log-stds
            else:
                self.log_std = nn.Parameter(torch.zeros(space.shape))
            if squash:
                low = torch.as_tensor(space.low, dtype=torch.float32)
                high = torch.as_tensor(space.high, dtype=torch.float32)
                if not bool(torch.isfinite(low).all() and torch.isfinite(high).all()):
                    raise ValueError(
                        f"squash=True needs an action Box with finite bounds, got {space}; "
                        "use squash=False (actions are then clipped to the bounds)."
                    )
                self.register_buffer("low", low)
                self.register_buffer("high", high)
        self.linear = nn.Linear(features, out)
        nn.init.orthogonal_(self.linear.weight, 0.01)
        nn.init.zeros_(self.linear.bias)
        self.state_dependent_std = state_dependent_std

    def components(self, x: torch.Tensor) -> list[torch.distributions.Distribution]:
        space = self.space
        if isinstance(space, (spaces.Tuple, spaces.Dict)):
            return [c for part in self.parts for c in part.components(x)]
        y = nn.functional.linear(x, self.linear.weight, self.linear.bias)
        if isinstance(space, spaces.Discrete):
            return [categorical(y)]
        if isinstance(space, spaces.MultiDiscrete):
            return [categorical(p) for p in y.split([int(n) for n in space.nvec], -1)]
        if isinstance(space, spaces.MultiBinary):
            return [Bernoulli(logits=y.view(-1, *space.shape))]
        shape = (-1, *space.shape)
        if self.state_dependent_std:
            mean, log_std = y.chunk(2, -1)
            mean, std = mean.reshape(shape), log_std.clamp(-20, 2).exp().reshape(shape)
        else:
            mean = y.reshape(shape)
            std = self.log_std.exp().expand_as(mean)
        if self.squash:
            return [TanhNormal(mean, std, self.low, self.high)]
        return [Normal(mean, std)]

    def forward(self, x: torch.Tensor) -> ActionDistribution:
        if isinstance(self.space, spaces.Dict):
            return ActionDistribution(
                **dict(zip(self.space.spaces, self.components(x), strict=True))
            )
        return ActionDistribution(*self.components(x))


class MLPPolicy(Parametric):
    """Feed-forward actor and critic, each an MLP of ``hidden`` tanh layers.

    Args:
        observation_space, action_space: the environment's single spaces
            (``agent.observation_space``, ``agent.action_space``).
        hidden: widths of the hidden layers.
        state_dependent_std: Box actions take their std from the network instead of a
            free parameter.
        squash: Box actions from a tanh-squashed Gaussian rescaled to the bounds
            (:class:`rlx.TanhNormal`) instead of a Gaussian clipped by the agent.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden: tuple[int, ...] = (64, 64),
        state_dependent_std: bool = False,
        squash: bool = False,
    ) -> None:
        super().__init__()
        self.observation_space = observation_space
        inputs = flat_size(observation_space)
        self.actor = mlp(inputs, hidden)
        self.head = ActionHead(action_space, hidden[-1], state_dependent_std, squash)
        self.critic = mlp(inputs, hidden, 1)

    def forward(self, *states: Any):
        _, obs = states
        x = flatten(self.observation_space, obs)
        dist = self.head(self.actor(x))
        if not extras_wanted():  # sampling dry: the value would be discarded
            return None, dist
        return None, dist, self.critic(x)

    def numpy_actor(self, batch_size: int) -> Callable[[np.ndarray, bool], np.ndarray] | None:
        """With the fast paths on, the actor in numpy for rlx's sampling without gradients
        or extras (:func:`rlx.fast.acting.mlp_policy_actor`); None otherwise, or where it
        does not apply (including a subclass that overrides ``forward``)."""
        if not rlx.fast.enabled() or type(self).forward is not MLPPolicy.forward:
            return None
        head = self.head
        return fast_acting.mlp_policy_actor(
            self, self.observation_space, self.actor, head.space, head.linear,
            getattr(head, "log_std", None), head.squash, batch_size,
        )  # fmt: skip


class RecurrentCore(nn.Module):
    """An MLP encoder and a GRU or LSTM cell: features ``[B, H]`` from an observation and
    the previous state (``[B, H]``, or ``(h, c)`` for an LSTM; ``None`` means zeros).
    Given ``action_space``, the cell also takes the previous action and reward."""

    def __init__(
        self, observation_space: spaces.Space, hidden: int, cell: str,
        action_space: spaces.Space | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.hidden = hidden
        self.kind = cell
        self.encoder = mlp(flat_size(observation_space), (hidden,))
        inputs = hidden + (previous_size(action_space) if action_space is not None else 0)
        self.cell = nn.GRUCell(inputs, hidden) if cell == "gru" else nn.LSTMCell(inputs, hidden)

    def forward(
        self, state: Any, obs: Any, prev_action: Any = None, prev_reward: Any = None
    ) -> tuple[Any, torch.Tensor]:
        x = self.encoder(flatten(self.observation_space, obs))
        if self.action_space is not None:
            x = with_previous(x, self.action_space, prev_action, prev_reward)
        return rnn_step(self.cell, x, state)


class RecurrentPolicy(Parametric):
    """Recurrent actor and critic: each an MLP encoder and a GRU (or LSTM) cell, with an
    action head and a value head.

    By default actor and critic have cells of their own (``shared=False``): with one
    shared cell, the value loss's larger gradients dominate what the cell learns and,
    under gradient clipping, starve the policy (PPO on CartPole-v1 with a shared GRU
    stayed near random for 60k steps). The recurrent state is then the pair
    ``(actor_state, critic_state)``; each is ``[B, H]`` for a GRU and ``(h, c)`` for an
    LSTM. ``state_dependent_std`` and ``squash`` are as for :class:`MLPPolicy`. With
    ``previous_action_reward``, each cell also takes the previous action (one-hot for
    Discrete) and reward, which rlx passes to ``forward`` (as R2D1's agent takes them).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden: int = 64,
        cell: str = "gru",
        state_dependent_std: bool = False,
        squash: bool = False,
        shared: bool = False,
        previous_action_reward: bool = False,
    ) -> None:
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}.")
        self.shared = shared
        self.previous_action_reward = bool(previous_action_reward)
        previous = action_space if previous_action_reward else None
        self.actor = RecurrentCore(observation_space, hidden, cell, previous)
        self.critic = None if shared else RecurrentCore(observation_space, hidden, cell, previous)
        self.head = ActionHead(action_space, hidden, state_dependent_std, squash)
        self.value = nn.Linear(hidden, 1)

    def forward(self, *states: Any):
        state, inputs = states[0], states[1:]  # obs (and the previous action and reward)
        if self.critic is None:
            state, h = self.actor(state, *inputs)
            return state, self.head(h), self.value(h)
        actor_state, critic_state = (None, None) if state is None else state
        actor_state, h = self.actor(actor_state, *inputs)
        critic_state, v = self.critic(critic_state, *inputs)
        return (actor_state, critic_state), self.head(h), self.value(v)


def make_policy(
    observation_space: spaces.Space, action_space: spaces.Space, kind: str = "mlp", **kwargs: Any
) -> Parametric:
    """``"mlp"`` → :class:`MLPPolicy`; ``"rnn"``/``"gru"``/``"lstm"`` → :class:`RecurrentPolicy`."""
    if kind == "mlp":
        return MLPPolicy(observation_space, action_space, **kwargs)
    if kind in ("rnn", "gru", "lstm"):
        return RecurrentPolicy(
            observation_space, action_space, cell="lstm" if kind == "lstm" else "gru", **kwargs
        )
    raise ValueError(f"unknown policy type {kind!r}: use 'mlp', 'rnn' (GRU), 'gru' or 'lstm'.")

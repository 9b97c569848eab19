"""``QNetwork``: ready Q-networks for the deep Q-learning family.

One class covers the variants the algorithms need, chosen by options: an MLP encoder
(ReLU) for vector observations or the Nature CNN for stacked frames; dueling streams,
``Q = V + A - mean(A)``; a distribution over returns on ``atoms`` fixed points in
``[v_min, v_max]`` per action (C51), Q being its mean; NoisyNet layers in the head
(exploration without ε); a recurrent core after the encoder (R2D2).

``forward`` returns ``(state, ActionDistribution(EpsilonGreedy(q, self.epsilon)), q)``
and, with ``atoms``, the log-probabilities of the atoms ``[B, A, atoms]`` as a second
extra. The algorithms set ``policy.epsilon`` before sampling; deterministic acting
(``deterministic=True``) takes the greedy action.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from rlx.core.components import EpsilonGreedy
from rlx.core.distribution import ActionDistribution
from rlx.core.parametric import Parametric
from rlx.policies.layers import (
    NatureCNN,
    NoisyLinear,
    flat_size,
    flatten,
    is_image,
    mlp,
    previous_size,
    rnn_step,
    with_previous,
)


class QNetwork(Parametric):
    """Q-values for a ``Discrete`` action space; see the module docstring.

    Args:
        observation_space, action_space: the environment's single spaces.
        hidden: widths of the MLP encoder's layers (ignored for images).
        dueling: value and advantage streams.
        atoms: number of return atoms (C51); None for plain Q-values.
        v_min, v_max: the support of the return distribution.
        noisy: NoisyNet layers in the head.
        cell: ``None``, ``"gru"`` or ``"lstm"`` for a recurrent core of ``hidden[-1]``
            units.
        previous_action_reward: the recurrent core also takes the previous action
            (one-hot) and reward, as in R2D1 (needs ``cell``).
        epsilon: initial exploration rate (the algorithms overwrite it).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden: tuple[int, ...] = (64, 64),
        dueling: bool = False,
        atoms: int | None = None,
        v_min: float = -10.0,
        v_max: float = 10.0,
        noisy: bool = False,
        cell: str | None = None,
        epsilon: float = 0.0,
        previous_action_reward: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(
                f"QNetwork needs a Discrete action space, got {action_space}; for continuous "
                "actions use the Q-function policy gradients (ddpg, td3, sac)."
            )
        if atoms is not None and (atoms < 2 or v_min >= v_max):
            raise ValueError(
                f"atoms must be >= 2 and v_min < v_max, got {atoms}, {v_min}, {v_max}."
            )
        if cell not in (None, "gru", "lstm"):
            raise ValueError(f"cell must be None, 'gru' or 'lstm', got {cell!r}.")
        if previous_action_reward and cell is None:
            raise ValueError(
                "previous_action_reward feeds the previous action and reward to the "
                "recurrent core: give a cell ('gru' or 'lstm') too."
            )
        self.action_space = action_space
        self.previous_action_reward = bool(previous_action_reward)
        self.observation_space = observation_space
        self.actions = int(action_space.n)
        self.atoms = atoms
        self.epsilon = epsilon
        self.cell_kind = cell
        if is_image(observation_space):
            self.encoder: nn.Module = NatureCNN(*observation_space.shape)
            width = self.encoder.features
        else:
            self.encoder = mlp(flat_size(observation_space), tuple(hidden), activation="relu")
            width = hidden[-1]
        cells = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}
        inputs = width + (previous_size(action_space) if previous_action_reward else 0)
        self.cell: nn.Module | None = cells[cell](inputs, width) if cell else None
        linear = NoisyLinear if noisy else nn.Linear
        per_action = atoms or 1
        self.advantage = linear(width, self.actions * per_action)
        self.value = linear(width, per_action) if dueling else None
        if atoms is not None:
            self.register_buffer("support", torch.linspace(v_min, v_max, atoms))

    def features(self, state: Any, obs: Any, *previous: Any) -> tuple[Any, torch.Tensor]:
        """The recurrent state and features after ``obs`` (and, with
        ``previous_action_reward``, the previous action and reward)."""
        x = self.encoder(obs if is_image(self.observation_space)
                         else flatten(self.observation_space, obs))  # fmt: skip
        if self.cell is None:
            return None, x
        if self.previous_action_reward:
            x = with_previous(x, self.action_space, *previous)
        return rnn_step(self.cell, x, state)

    def forward(self, *states: Any):
        state, h = self.features(*states)
        advantage = self.advantage(h)
        if self.atoms is None:
            q = advantage
            if self.value is not None:
                q = self.value(h) + q - q.mean(-1, keepdim=True)
            return state, ActionDistribution(EpsilonGreedy(q, self.epsilon)), q
        logits = advantage.view(h.shape[0], self.actions, self.atoms)
        if self.value is not None:
            value = self.value(h).view(h.shape[0], 1, self.atoms)
            logits = value + logits - logits.mean(1, keepdim=True)
        log_p = torch.log_softmax(logits, -1)  # [B, A, atoms]
        q = (log_p.exp() * self.support).sum(-1)
        return state, ActionDistribution(EpsilonGreedy(q, self.epsilon)), q, log_p

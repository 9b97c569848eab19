"""Deep Q-learning (Mnih et al. 2015) with a target network, Double DQN's action
selection (van Hasselt et al. 2016) and, through the network, dueling heads (Wang et al.
2016) and noisy layers; uniform or prioritized replay with n-step returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import spaces

from rlx import schedules
from rlx.algos.base import refuse_previous
from rlx.algos.config import AT_LEAST_ONE, DISCOUNT, FRACTION, POSITIVE, as_count, option
from rlx.algos.offpolicy import OffPolicyAlgorithm, OffPolicyConfig
from rlx.algos.target import TargetNetwork
from rlx.core.agent import Agent
from rlx.core.parametric import Parametric
from rlx.core.rollout import Rollout
from rlx.policies.q import QNetwork
from rlx.schedules import Schedule, linear


@dataclass
class DQNConfig(OffPolicyConfig):
    lr: float | Schedule = option(1e-3, POSITIVE)
    epsilon: float | Schedule = option(linear(1.0, 0.05, 10_000), FRACTION)
    """Probability of a random action while learning (schedule)."""
    target_update_interval: int | Schedule = option(500, AT_LEAST_ONE)
    """Updates (gradient steps) between target-network updates (schedule)."""
    tau: float | Schedule = option(1.0, DISCOUNT)
    """Fraction of the way the target moves at each of its updates: 1 copies, less
    averages (Polyak; schedule)."""
    double: bool = True
    """Choose the next action with the online network, value it with the target."""
    dueling: bool = False
    """Ready network with separate value and advantage streams."""
    noisy: bool = False
    """Ready network with NoisyNet layers (set epsilon to 0 to explore by noise alone)."""


class DQN(OffPolicyAlgorithm):
    """DQN on any policy whose first extra is the Q-values ``[B, A]`` and whose
    ``epsilon`` attribute (if it has one) sets its exploration, such as
    :class:`rlx.policies.QNetwork`."""

    name = "dqn"
    Config = DQNConfig
    config: DQNConfig

    def __init__(self, agent: Agent, policy: Parametric, config: DQNConfig) -> None:
        super().__init__(agent, policy, config)
        self.target = TargetNetwork(policy)

    @classmethod
    def default_policy(
        cls, observation_space: spaces.Space, action_space: spaces.Space, config: DQNConfig,
        kind: str = "mlp", hidden: int = 64, squash: bool = False,
        previous_action_reward: bool = False,
    ) -> Parametric:  # fmt: skip
        """The ready Q-network for ``config``: two ReLU layers of ``hidden`` units (a
        GRU or LSTM core after them for ``kind`` "gru"/"rnn"/"lstm", which may also take
        the previous action and reward), and C51's support."""
        if kind == "mlp":
            refuse_previous(previous_action_reward, cls.name)
        support = {k: getattr(config, k) for k in ("atoms", "v_min", "v_max") if hasattr(config, k)}
        return QNetwork(
            observation_space, action_space, hidden=(hidden, hidden),
            dueling=config.dueling, noisy=config.noisy, **support,
            cell=None if kind == "mlp" else ("lstm" if kind == "lstm" else "gru"),
            previous_action_reward=previous_action_reward,
        )  # fmt: skip

    @classmethod
    def set_exploration(cls, config: DQNConfig, acting: Parametric, step: int) -> None:
        if hasattr(acting, "epsilon"):
            acting.epsilon = schedules.value(config.epsilon, step)

    def next_values(self, batch: Rollout) -> torch.Tensor:
        """``max_a Q_target(s', a)``, or with ``double`` the target's value of the online
        network's choice: ``Q_target(s', argmax_a Q(s', a))``. ``[1, N]``, no gradient."""
        with torch.no_grad():
            target_q = self.agent(self.target).evaluate(batch).next_others[0]
            if not self.config.double:
                return target_q.max(-1).values
            online_q = self.agent(self.policy).evaluate(batch).next_others[0]
            return target_q.gather(-1, online_q.argmax(-1, keepdim=True)).squeeze(-1)

    def td_loss(self, batch: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The loss on replay sample ``batch``, its TD errors (new priorities) and the mean
        Q-value of the taken actions. Targets bootstrap unless the episode terminated."""
        alive = (~batch.terminations).to(batch.rewards.dtype)
        target = batch.rewards + batch.discounts * alive * self.next_values(batch)
        q = self.agent(self.policy).evaluate(batch).others[0]  # [1, N, A]
        q_taken = q.gather(-1, batch.actions.long().unsqueeze(-1)).squeeze(-1)
        huber = torch.nn.functional.huber_loss(q_taken, target, reduction="none")
        loss = (batch.weights * huber).mean()
        return loss, (q_taken - target).detach(), q_taken.mean()

    def batch_loss(self, batch: Rollout) -> torch.Tensor:
        return self.td_loss(batch)[0]

    def learn(self, batch: Rollout) -> dict[str, Any]:
        """One gradient step on :meth:`td_loss`, new priorities, and the target's update
        every ``target_update_interval`` updates; returns the scalars to log."""
        loss, priorities, q_mean = self.td_loss(batch)
        grad_norm = self.optimize(loss, as_tensor=True)
        if self.config.prioritized:
            self.replay.update_priorities(batch.indices, priorities)
        if (self.updates + 1) % as_count(self.setting("target_update_interval")) == 0:
            self.target.update(self.setting("tau"))
        return {"Loss": loss.detach(), "QMean": q_mean.detach(), "GradNorm": grad_norm}

    def update(self, rollout: Rollout) -> dict[str, float]:
        info = super().update(rollout)
        if hasattr(self.policy, "epsilon") and self.learning:
            info["Epsilon"] = float(self.policy.epsilon)
        return info

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "target": self.target.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.target.load_state_dict(state["target"])

"""What the Q-function policy gradients share: an actor (the policy) and a critic of
``n`` Q-functions, each with its optimizer and a target copy that follows by Polyak
averaging; replay, exploration and scheduled options from
:class:`~rlx.algos.offpolicy.OffPolicyAlgorithm`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rlx.algos.offpolicy import OffPolicyAlgorithm, OffPolicyConfig
from rlx.algos.target import TargetNetwork
from rlx.core.agent import Agent
from rlx.core.optim import Adam, minimize
from rlx.core.parametric import Parametric
from rlx.core.rollout import Rollout
from rlx.policies.continuous import Critic
from rlx.schedules import Schedule


@dataclass
class QPGConfig(OffPolicyConfig):
    lr: float | Schedule = 3e-4
    """Actor learning rate (schedule)."""
    critic_lr: float | Schedule | None = None
    """Critic learning rate (schedule; None: the actor's)."""
    tau: float | Schedule = 0.005
    """Polyak averaging rate of the target networks (schedule)."""
    batch_size: int | Schedule = 256
    buffer_size: int = 1_000_000
    learning_starts: int = 100
    grad_clip: float | None = None
    critics: int = 2
    """Q-functions in the critic (clipped double Q takes their minimum)."""
    critic_hidden: int = 256
    """Width of the ready critic's two hidden layers."""


class ActorCriticAlgorithm(OffPolicyAlgorithm):
    """Base of DDPG, TD3 and SAC. ``policy`` is the actor; ``critic`` (default: a ready
    :class:`~rlx.policies.Critic`) is called as ``critic(obs, actions) -> [n, ...]``."""

    config: QPGConfig

    def __init__(self, agent: Agent, policy: Parametric, config: QPGConfig,
                 critic: nn.Module | None = None) -> None:  # fmt: skip
        super().__init__(agent, policy, config)
        if critic is None:
            hidden = (config.critic_hidden, config.critic_hidden)
            critic = Critic(agent.observation_space, agent.action_space, hidden, config.critics)
            critic = critic.to(next(iter(policy.parameters())).device)
        self.critic = critic
        self.critic_target = TargetNetwork(critic)
        self.critic_optimizer = Adam(critic.parameters(), lr=self.critic_learning_rate())
        space = agent.action_space
        if hasattr(space, "low"):  # Box bounds, for noise and clipping
            device = next(iter(policy.parameters())).device
            self.low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
            self.high = torch.as_tensor(space.high, dtype=torch.float32, device=device)

    def critic_learning_rate(self) -> float:
        lr = self.config.critic_lr if self.config.critic_lr is not None else self.config.lr
        return float(lr(self.step) if callable(lr) else lr)

    def set_learning_rates(self) -> None:
        super().set_learning_rates()
        for group in self.critic_optimizer.param_groups:
            group["lr"] = self.critic_learning_rate()

    def critic_step(self, q: torch.Tensor, target: torch.Tensor, batch: Rollout) -> dict:
        """Regress every Q-function ``q`` (``[n, ...]``) on ``target`` (importance-
        weighted under prioritized replay, whose priorities become the first Q-function's
        errors); returns the critic's loss, gradient norm and mean Q."""
        errors = q - target
        loss = 0.5 * (batch.weights * errors.pow(2)).mean(dim=tuple(range(1, q.dim()))).sum()
        norm = minimize(loss, self.critic_optimizer, self.config.grad_clip)
        if hasattr(self.replay, "update_priorities"):
            self.replay.update_priorities(batch.indices, errors[0].detach())
        return {"CriticLoss": loss.detach(), "CriticGradNorm": norm, "QMean": q[0].detach().mean()}

    def update_targets(self) -> None:
        """Move every target network towards its source by ``tau``."""
        tau = self.hp("tau")
        self.critic_target.update(tau)
        for target in self.targets():
            target.update(tau)

    def targets(self) -> list[TargetNetwork]:
        """Target networks besides the critic's (e.g. the actor's in DDPG and TD3)."""
        return []

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["critic"] = self.critic.state_dict()
        state["critic_target"] = self.critic_target.state_dict()
        state["critic_optimizer"] = self.critic_optimizer.state_dict()
        state["targets"] = [t.state_dict() for t in self.targets()]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        for target, saved in zip(self.targets(), state["targets"], strict=True):
            target.load_state_dict(saved)

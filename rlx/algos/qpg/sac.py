"""Soft actor-critic (Haarnoja et al. 2018, with automatic entropy tuning) for Box
actions, and its discrete-action variant (Christodoulou 2019): a stochastic actor
maximises Q plus entropy; twin Q-functions regress soft targets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import spaces

from rlx.algos.base import refuse_previous
from rlx.algos.config import AT_LEAST_ONE, NON_NEGATIVE, as_count, option
from rlx.algos.qpg.base import QPGAlgorithm, QPGConfig
from rlx.core.agent import Agent
from rlx.core.optim import adam, frozen, minimize
from rlx.core.parametric import Parametric
from rlx.core.rollout import Rollout
from rlx.policies.actor_critic import make_policy
from rlx.policies.continuous import GaussianActor
from rlx.schedules import Schedule


@dataclass
class SACConfig(QPGConfig):
    entropy_coef: float | Schedule | None = option(None, NON_NEGATIVE)
    """Temperature alpha (schedule); None learns it to keep the entropy near
    target_entropy."""
    target_entropy: float | Schedule | None = None
    """Entropy the learned temperature keeps near (schedule); None: -(action dimensions)
    for Box actions, 0.98 log(actions) for Discrete."""
    initial_entropy_coef: float = option(
        1.0, fixed="it only starts the learned temperature (schedule entropy_coef instead)"
    )
    """Starting temperature when it is learned."""
    target_update_interval: int | Schedule = option(1, AT_LEAST_ONE)
    """Updates between Polyak steps of the target critic."""


class SAC(QPGAlgorithm):
    """SAC on a stochastic actor with reparameterised samples (e.g. a tanh-squashed
    Gaussian, :class:`rlx.policies.GaussianActor`), or, for a Discrete action space, an
    actor whose first extra is the log-probability of every action ``[B, A]``."""

    name = "sac"
    Config = SACConfig
    config: SACConfig

    def __init__(self, agent: Agent, policy: Parametric, config: SACConfig,
                 critic: torch.nn.Module | None = None) -> None:  # fmt: skip
        super().__init__(agent, policy, config, critic)
        self.discrete = isinstance(agent.action_space, spaces.Discrete)
        self.actor_actions = "stored" if self.discrete else "sample"  # evaluate_actor's
        if config.target_entropy is not None:
            self.target_entropy = self.setting("target_entropy")
        elif self.discrete:
            self.target_entropy = 0.98 * math.log(int(agent.action_space.n))
        else:
            self.target_entropy = -float(math.prod(agent.action_space.shape))
        start = math.log(config.initial_entropy_coef)
        self.log_alpha = torch.tensor(start, device=self.device, requires_grad=True)
        self.alpha_optimizer = adam([self.log_alpha], lr=self.setting("lr"))

    @classmethod
    def default_policy(
        cls, observation_space: spaces.Space, action_space: spaces.Space, config: SACConfig,
        kind: str = "mlp", hidden: int = 256, squash: bool = True,
        previous_action_reward: bool = False,
    ) -> Parametric:  # fmt: skip
        """A tanh-squashed Gaussian actor (categorical for Discrete actions) with two
        ReLU layers of ``hidden`` units; for ``kind`` "gru"/"rnn"/"lstm" a recurrent
        :class:`rlx.policies.RecurrentPolicy` (set ``sequence_length``)."""
        if kind != "mlp":
            return make_policy(observation_space, action_space, kind, hidden=hidden, squash=True,
                               previous_action_reward=previous_action_reward)  # fmt: skip
        refuse_previous(previous_action_reward, cls.name)
        return GaussianActor(observation_space, action_space, (hidden, hidden))

    def alpha(self) -> torch.Tensor:
        """The current temperature: learned, or the scheduled ``entropy_coef``."""
        if self.config.entropy_coef is None:
            return self.log_alpha.detach().exp()
        return torch.as_tensor(self.setting("entropy_coef"), device=self.log_alpha.device)

    def set_learning_rates(self) -> None:
        super().set_learning_rates()
        for group in self.alpha_optimizer.param_groups:
            group["lr"] = self.learning_rate()

    def td(
        self, batch: Rollout, alpha: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, Rollout, torch.Tensor | None]:
        alpha = self.alpha() if alpha is None else alpha
        steps, discounts, mask = self.learning_steps(batch)
        with torch.no_grad():
            alive = (~steps.terminations).to(steps.rewards.dtype)
            target = steps.rewards + discounts * alive * self.next_value(batch, alpha)
        q = self.q(self.critic, batch, steps, None if self.discrete else steps.actions)
        if self.discrete:  # [n, T, N, A]: the taken actions'
            taken = steps.actions.long()[None, ..., None]
            q = q.gather(-1, taken.expand(*q.shape[:-1], 1)).squeeze(-1)
        return q, target, steps, mask

    def learn(self, batch: Rollout) -> dict[str, Any]:
        alpha = self.alpha()
        q, target, steps, mask = self.td(batch, alpha)
        info = self.critic_step(q, target, batch, mask)
        actor_loss, entropy = self.actor_loss(batch, steps, alpha, mask)
        info["ActorLoss"] = actor_loss.detach()
        info["GradNorm"] = minimize(actor_loss, self.optimizer, self.setting("grad_clip"))
        info["Entropy"] = entropy.mean()
        if self.config.entropy_coef is None:  # raise alpha when the entropy is too low
            if self.config.target_entropy is not None:
                self.target_entropy = self.setting("target_entropy")
            alpha_loss = self.log_alpha * (entropy - self.target_entropy).mean()
            minimize(alpha_loss, self.alpha_optimizer)
        info["Alpha"] = alpha
        if (self.updates + 1) % as_count(self.setting("target_update_interval")) == 0:
            self.update_targets()
        return info

    def next_value(self, batch: Rollout, alpha: torch.Tensor) -> torch.Tensor:
        """The soft value of the next states: ``E_a' [min Q_target(s', a') - alpha log
        pi(a'|s')]``, by one sample for Box actions, exactly for Discrete ones."""
        _, following = self.evaluate_actor(self.policy, batch, self.actor_actions, now=False)
        if self.discrete:
            log_pi = following.others[0]  # [T, N, A]
            q = self.q(self.critic_target, batch, following, None, then=True).min(0).values
            return (log_pi.exp() * (q - alpha * log_pi)).sum(-1)
        q = self.q(self.critic_target, batch, following, following.actions, then=True)
        return q.min(0).values - alpha * following.logprobs

    def actor_loss(self, batch: Rollout, steps: Rollout, alpha: torch.Tensor,
                   mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """``E_s [alpha log pi(a|s) - min Q(s, a)]`` over the learned steps, ``a ~ pi``
        reparameterised (exact for Discrete actions); and the entropy per step there."""
        current, _ = self.evaluate_actor(self.policy, batch, self.actor_actions, then=False)
        if self.discrete:
            log_pi = current.others[0]
            pi = log_pi.exp()
            with torch.no_grad():
                q = self.q(self.critic, batch, steps, None).min(0).values
            per_step = (pi * (alpha * log_pi - q)).sum(-1)
            entropy = -(pi * log_pi).sum(-1).detach()
        else:
            with frozen(self.critic):  # gradients reach the actions, not the critic
                q = self.q(self.critic, batch, steps, current.actions).min(0).values
            per_step = alpha * current.logprobs - q
            entropy = -current.logprobs.detach()
        if mask is None:
            return per_step.mean(), entropy
        return per_step[mask].mean(), entropy[mask]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["log_alpha"] = self.log_alpha.detach().clone()
        state["alpha_optimizer"] = self.alpha_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])

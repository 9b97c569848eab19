"""Deep deterministic policy gradient (Lillicrap et al. 2016) and TD3 (Fujimoto et al.
2018): a deterministic actor climbs its critic's Q-values; TD3 adds clipped double Q,
target policy smoothing and delayed actor updates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import spaces

from rlx import schedules
from rlx.algos.base import refuse_previous
from rlx.algos.config import AT_LEAST_ONE, NON_NEGATIVE, as_count, option
from rlx.algos.qpg.base import QPGAlgorithm, QPGConfig
from rlx.algos.target import TargetNetwork
from rlx.core.agent import Agent
from rlx.core.optim import frozen, minimize
from rlx.core.parametric import Parametric
from rlx.core.rollout import Rollout
from rlx.policies.continuous import DeterministicActor, GaussianExploration, OUExploration
from rlx.schedules import Schedule


@dataclass
class DDPGConfig(QPGConfig):
    critics: int = 1
    exploration_noise: float | Schedule = option(0.1, NON_NEGATIVE)
    """Std (or OU sigma) of the exploration noise, in units of the action range's
    half-width (schedule)."""
    noise: str = "gaussian"
    """Exploration noise: gaussian, or ou (Ornstein-Uhlenbeck, carried per episode)."""
    policy_delay: int | Schedule = option(1, AT_LEAST_ONE)
    """Critic updates per actor (and target) update."""
    target_noise: float | Schedule = option(0.0, NON_NEGATIVE)
    """Std of the noise smoothing the target policy's action (half-width units)."""
    noise_clip: float | Schedule = option(0.5, NON_NEGATIVE)
    """Clip of that noise."""


class DDPG(QPGAlgorithm):
    """DDPG on any deterministic actor (an ``ActionDistribution`` whose ``mode`` is the
    action, such as :class:`rlx.policies.DeterministicActor`) and any critic
    ``critic(obs, actions) -> [n, ...]``; optional prioritized replay."""

    name = "ddpg"
    Config = DDPGConfig
    config: DDPGConfig

    def __init__(self, agent: Agent, policy: Parametric, config: DDPGConfig,
                 critic: torch.nn.Module | None = None) -> None:  # fmt: skip
        if config.noise not in ("gaussian", "ou"):
            raise ValueError(f"--noise must be gaussian or ou, got {config.noise!r}.")
        super().__init__(agent, policy, config, critic)
        self.actor_target = TargetNetwork(policy)
        explorer = GaussianExploration if config.noise == "gaussian" else OUExploration
        self.explorer = explorer(policy)

    @classmethod
    def default_policy(
        cls, observation_space: spaces.Space, action_space: spaces.Space, config: DDPGConfig,
        kind: str = "mlp", hidden: int = 256, squash: bool = False,
        previous_action_reward: bool = False,
    ) -> Parametric:  # fmt: skip
        """A deterministic feed-forward actor with two ReLU layers of ``hidden`` units."""
        if kind != "mlp":
            raise ValueError(
                f"{cls.name} has no recurrent actor (got policy {kind!r}). For memory, give "
                "it a recurrent critic (--recurrent-critic --sequence-length 20 --burn-in "
                "10), or use sac, whose actor may be recurrent (--policy gru "
                "--sequence-length 20)."
            )
        refuse_previous(previous_action_reward, cls.name)
        return DeterministicActor(observation_space, action_space, (hidden, hidden))

    def targets(self) -> list[TargetNetwork]:
        return [self.actor_target]

    def acting_policy(self) -> Parametric:
        return self.explorer

    @classmethod
    def set_exploration(cls, config: DDPGConfig, acting: Parametric, step: int) -> None:
        noise = schedules.value(config.exploration_noise, step)
        if isinstance(acting, GaussianExploration):
            acting.std = noise
        elif isinstance(acting, OUExploration):
            acting.sigma = noise

    def td(self, batch: Rollout) -> tuple[torch.Tensor, torch.Tensor, Rollout, torch.Tensor | None]:
        steps, discounts, mask = self.learning_steps(batch)
        with torch.no_grad():
            _, following = self.evaluate_actor(self.actor_target, batch, "mode", now=False)
            next_actions = following.actions
            if target_noise := self.setting("target_noise"):  # target policy smoothing (TD3)
                noise = torch.randn_like(next_actions) * target_noise
                clip = self.setting("noise_clip")
                noise = noise.clamp(-clip, clip) * ((self.high - self.low) / 2)
                next_actions = (next_actions + noise).clamp(self.low, self.high)
            next_q = self.q(self.critic_target, batch, following, next_actions, then=True)
            next_q = next_q.min(0).values
            alive = (~steps.terminations).to(next_q.dtype)
            target = steps.rewards + discounts * alive * next_q
        return self.q(self.critic, batch, steps, steps.actions), target, steps, mask

    def learn(self, batch: Rollout) -> dict[str, Any]:
        q, target, steps, mask = self.td(batch)
        info = self.critic_step(q, target, batch, mask)
        if (self.updates + 1) % as_count(self.setting("policy_delay")) == 0:
            current, _ = self.evaluate_actor(self.policy, batch, "mode", then=False)
            with frozen(self.critic):  # gradients reach the actions, not the critic
                value = self.q(self.critic, batch, steps, current.actions)[0]
            actor_loss = -(value.mean() if mask is None else value[mask].mean())
            info["ActorLoss"] = actor_loss.detach()
            info["GradNorm"] = minimize(actor_loss, self.optimizer, self.setting("grad_clip"))
            self.update_targets()
        return info


@dataclass
class TD3Config(DDPGConfig):
    critics: int = 2
    policy_delay: int | Schedule = option(2, AT_LEAST_ONE)
    target_noise: float | Schedule = option(0.2, NON_NEGATIVE)


class TD3(DDPG):
    """TD3: DDPG with the minimum of two Q-functions as target, noise on the target
    policy's action, and the actor and targets updated every second critic update."""

    name = "td3"
    Config = TD3Config
    config: TD3Config

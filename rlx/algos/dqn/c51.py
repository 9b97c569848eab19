"""Categorical DQN, C51 (Bellemare et al. 2017): the return as a distribution on fixed
atoms, learned by projecting the distributional Bellman target onto them; and Rainbow
(Hessel et al. 2018), which joins it with double Q-learning, dueling heads, noisy
layers, prioritized replay and n-step returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlx.algos.config import AT_LEAST_ONE, FRACTION, option
from rlx.algos.dqn.dqn import DQN, DQNConfig
from rlx.core.returns import categorical_projection
from rlx.core.rollout import Rollout
from rlx.schedules import Schedule

SUPPORT = "the Q-network is built with this support of the return distribution"


@dataclass
class C51Config(DQNConfig):
    atoms: int = option(51, AT_LEAST_ONE, fixed=SUPPORT)
    """Points of the return distribution's support."""
    v_min: float = option(-10.0, fixed=SUPPORT)
    """Lowest return on the support."""
    v_max: float = option(10.0, fixed=SUPPORT)
    """Highest return on the support."""
    double: bool = False


class C51(DQN):
    """C51 on any policy whose extras are ``(q [B, A], log_p [B, A, atoms])`` and which
    has a ``support`` buffer, such as :class:`rlx.policies.QNetwork` with ``atoms``."""

    name = "c51"
    Config = C51Config
    config: C51Config

    def target_distribution(self, batch: Rollout) -> torch.Tensor:
        """The projected target ``[N, atoms]`` for each sampled transition: the target
        network's distribution of its greedy next action (chosen by the online network
        with ``double``), moved by the n-step reward and discount."""
        with torch.no_grad():
            q_next, log_p_next = self.agent(self.target).evaluate(batch).next_others
            if self.config.double:
                q_next = self.agent(self.policy).evaluate(batch).next_others[0]
            best = q_next.argmax(-1)[0]  # [N]
            probs = log_p_next[0, torch.arange(best.shape[0]), best].exp()  # [N, atoms]
            alive = (~batch.terminations[0]).to(probs.dtype)
            return categorical_projection(
                probs, batch.rewards[0], batch.discounts[0] * alive, self.policy.support
            )

    def td_loss(self, batch: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        target = self.target_distribution(batch)
        q, log_p = self.agent(self.policy).evaluate(batch).others
        taken = batch.actions[0].long()
        log_p_taken = log_p[0, torch.arange(taken.shape[0]), taken]  # [N, atoms]
        cross_entropy = -(target * log_p_taken).sum(-1)  # [N]
        loss = (batch.weights[0] * cross_entropy).mean()
        q_taken = q[0, torch.arange(taken.shape[0]), taken]
        return loss, cross_entropy.detach(), q_taken.mean()  # Rainbow: the KL as priority


@dataclass
class RainbowConfig(C51Config):
    double: bool = True
    dueling: bool = True
    noisy: bool = True
    epsilon: float | Schedule = option(0.0, FRACTION)
    prioritized: bool = True
    n_step: int | Schedule = option(3, AT_LEAST_ONE)


class Rainbow(C51):
    """C51 with double Q-learning, dueling noisy heads, prioritized replay and 3-step
    returns by default; each part can be turned off in :class:`RainbowConfig`."""

    name = "rainbow"
    Config = RainbowConfig
    config: RainbowConfig

"""Off-policy actor-critic (Degris, White and Sutton 2012) from a replay of episodes.

Episodes of a behaviour policy (by default the learner as it was) are kept in an
:class:`~rlx.replay.EpisodeReplay`; each update re-evaluates some under the current policy
and corrects with truncated importance weights (V-trace targets and advantages).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch

from rlx.algos.base import Algorithm, Means
from rlx.algos.config import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    AlgorithmConfig,
    as_count,
    option,
)
from rlx.core.agent import Agent
from rlx.core.parametric import Parametric
from rlx.core.rollout import Rollout
from rlx.replay.episodes import EpisodeReplay
from rlx.schedules import Schedule


@dataclass
class OffPACConfig(AlgorithmConfig):
    episodes: bool = True
    """Sample whole episodes from the behaviour policy."""
    lr: float | Schedule = option(1e-3, POSITIVE)
    replay_episodes: int | Schedule = option(100, AT_LEAST_ONE)
    """Episodes kept in the replay (a schedule resizes it, dropping the oldest)."""
    batch_episodes: int | Schedule = option(8, AT_LEAST_ONE)
    """Replayed episodes per update."""
    updates: int | Schedule = option(4, AT_LEAST_ONE)
    """Updates per iteration (per batch of new episodes)."""
    rho_clip: float | Schedule = option(1.0, POSITIVE)
    """Truncation of the importance weight in targets and policy gradient."""
    c_clip: float | Schedule = option(1.0, POSITIVE)
    """Truncation of the trace-cutting weight."""
    value_coef: float | Schedule = option(0.5, NON_NEGATIVE)
    """Weight of the value loss."""
    normalize_advantages: bool = False
    """Divide advantages by their standard deviation within each batch (no mean shift:
    a shift would give steps whose importance weight is ~0 a push of their own)."""


class OffPAC(Algorithm):
    """Off-policy actor-critic; the policy's first extra is its state value."""

    name = "offpac"
    Config = OffPACConfig
    config: OffPACConfig

    def __init__(
        self,
        agent: Agent,
        policy: Parametric,
        config: OffPACConfig,
        behaviour: Parametric | None = None,
    ) -> None:
        super().__init__(agent, policy, config)
        self.behaviour = behaviour if behaviour is not None else policy
        self.replay = EpisodeReplay(as_count(self.setting("replay_episodes")))

    def sample(self, dry: bool = False) -> Rollout:
        if self.sampler is not None:
            raise ValueError(
                "offpac samples whole episodes from its behaviour policy; the asynchronous "
                "samplers sample fixed-length segments of the learner. Use them with a2c or ppo."
            )
        with torch.no_grad():  # behaviour episodes, with the behaviour log-probs they need
            return self.agent(self.behaviour).episode(as_count(self.setting("horizon")))

    def update(self, rollout: Rollout) -> dict[str, float]:
        capacity = as_count(self.setting("replay_episodes"))
        if capacity != self.replay.capacity:  # a schedule resizes it (keeping the newest)
            self.replay.capacity = capacity
            self.replay.episodes = deque(self.replay.episodes, maxlen=capacity)
        self.replay.add(rollout)
        stats, episodes = Means(), as_count(self.setting("batch_episodes"))
        for _ in range(as_count(self.setting("updates"))):
            losses, ratios = self.losses(self.replay.sample(episodes, self.generator))
            grad_norm = self.optimize(self.total(losses), as_tensor=True)
            stats.add(**losses, GradNorm=grad_norm, MeanRatio=ratios)
        return {**stats.means(), "ReplayEpisodes": float(len(self.replay))}

    def losses(self, batch: Rollout) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The losses on behaviour episodes ``batch`` re-evaluated under the policy, with
        V-trace targets and advantages; and the mean importance ratio."""
        new = self.agent(self.policy).evaluate(batch)
        (values,) = new.others
        log_ratios = (new.logprobs - batch.logprobs).detach()
        gamma, rho_clip, c_clip = (self.setting(k) for k in ("gamma", "rho_clip", "c_clip"))
        advantages = new.vtrace(values, log_ratios, gamma, rho_clip, c_clip)
        if self.config.normalize_advantages:
            advantages = advantages / (advantages[new.valid].std() + 1e-8)
        losses = {
            "PolicyLoss": -new.step_mean(new.logprobs * advantages),
            "ValueLoss": 0.5 * new.step_mean((new.returns - values).pow(2)),
            "Entropy": new.step_mean(new.entropy_or_estimate()),
        }
        return losses, new.step_mean(log_ratios.exp())

    def batch_loss(self, rollout: Rollout) -> torch.Tensor:
        """The loss on the newly sampled episodes (for the DEBUG log)."""
        return self.total(self.losses(rollout)[0])

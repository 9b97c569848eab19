"""Advantage actor-critic, synchronous (Mnih et al. 2016): short segments from many
environments, bootstrapped advantages, one gradient step per segment."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlx.algos.base import OneStepAlgorithm
from rlx.algos.config import AT_LEAST_ONE, FRACTION, NON_NEGATIVE, POSITIVE, AlgorithmConfig, option
from rlx.core.rollout import Rollout
from rlx.schedules import Schedule


@dataclass
class A2CConfig(AlgorithmConfig):
    steps: int | Schedule = option(5, AT_LEAST_ONE)
    """Steps per environment per update (n of the n-step returns)."""
    lr: float | Schedule = option(7e-4, POSITIVE)
    lam: float | Schedule = option(1.0, FRACTION)
    """GAE lambda; 1.0 gives n-step returns bootstrapped at the segment's end."""
    value_coef: float | Schedule = option(0.5, NON_NEGATIVE)
    """Weight of the value loss."""
    normalize_advantages: bool = False
    """Standardise advantages within each batch."""


class A2C(OneStepAlgorithm):
    """A2C on any policy whose first extra is its state value."""

    name = "a2c"
    reevaluates = True
    Config = A2CConfig
    config: A2CConfig

    def losses(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        """Policy loss, value loss and entropy on one sampled segment (with graph)."""
        c = self.config
        rollout = self.agent(self.policy).evaluate(rollout)  # one batched forward, with graph
        (values,) = rollout.others
        # Bootstraps from next_others where an episode was cut (truncation, segment end),
        # never after a termination.
        advantages = rollout.gae(values, self.setting("gamma"), self.setting("lam"))
        if c.normalize_advantages:
            advantages = rollout.standardize(advantages)
        return {
            "PolicyLoss": -rollout.step_mean(rollout.logprobs * advantages.detach()),
            "ValueLoss": 0.5 * rollout.step_mean((rollout.returns - values).pow(2)),
            "Entropy": rollout.step_mean(rollout.entropy_or_estimate()),
        }

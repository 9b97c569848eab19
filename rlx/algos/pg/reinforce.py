"""REINFORCE (Williams 1992), plain and with a learned state-value baseline."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlx.algos.base import OneStepAlgorithm
from rlx.algos.config import NON_NEGATIVE, POSITIVE, AlgorithmConfig, option
from rlx.core.rollout import Rollout
from rlx.schedules import Schedule


@dataclass
class REINFORCEConfig(AlgorithmConfig):
    episodes: bool = True
    """Whole episodes: Monte-Carlo returns need an episode's end."""
    lr: float | Schedule = option(1e-3, POSITIVE)
    standardize_return: bool = False
    """Standardise the policy-gradient signal within each batch (never the value target)."""
    value_coef: float | Schedule = option(0.5, NON_NEGATIVE)
    """Weight of the value loss (baseline variant only)."""


class REINFORCE(OneStepAlgorithm):
    """Policy gradient with Monte-Carlo returns: ``-log pi(a|s) * G``."""

    name = "reinforce"
    reevaluates = True
    Config = REINFORCEConfig
    config: REINFORCEConfig
    baseline = False

    def losses(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        c = self.config
        rollout = self.agent(self.policy).evaluate(rollout)
        returns = rollout.mc_returns(self.setting("gamma"))
        weight = returns
        losses = {}
        if self.baseline:
            (values,) = rollout.others
            weight = returns - values.detach()
            losses["ValueLoss"] = 0.5 * rollout.step_mean((returns - values).pow(2))
        if c.standardize_return:
            weight = rollout.standardize(weight)
        losses["PolicyLoss"] = -rollout.step_mean(rollout.logprobs * weight)
        losses["Entropy"] = rollout.step_mean(rollout.entropy_or_estimate())
        return losses


class REINFORCEBaseline(REINFORCE):
    """REINFORCE with the policy's first extra as a learned baseline ``V(s)``."""

    name = "reinforce-baseline"
    baseline = True

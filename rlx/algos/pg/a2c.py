"""Advantage actor-critic, synchronous (Mnih et al. 2016): short segments from many
environments, bootstrapped advantages, one gradient step per segment."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from rlx.algos.base import Algorithm, AlgorithmConfig, log
from rlx.core.rollout import Rollout


@dataclass
class A2CConfig(AlgorithmConfig):
    steps: int = 5
    """Steps per environment per update (n of the n-step returns)."""
    lr: float = 7e-4
    lam: float = 1.0
    """GAE lambda; 1.0 gives n-step returns bootstrapped at the segment's end."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    normalize_advantages: bool = False
    """Standardise advantages within each batch."""


class A2C(Algorithm):
    """A2C on any policy whose first extra is its state value."""

    name = "a2c"
    Config = A2CConfig
    config: A2CConfig

    def update(self, rollout: Rollout) -> dict[str, float]:
        c = self.config
        # Sample without a graph, then one batched forward with it (cheaper than keeping
        # a graph per sampled step).
        rollout = self.agent(self.policy).evaluate(rollout)
        (values,) = rollout.others
        advantages = rollout.gae(values, c.gamma, c.lam)
        if c.normalize_advantages:
            advantages = rollout.standardize(advantages)
        policy_loss = -rollout.step_mean(rollout.logprobs * advantages)
        value_loss = 0.5 * rollout.step_mean((rollout.returns - values).pow(2))
        entropy = rollout.step_mean(rollout.entropy)
        loss = policy_loss + c.value_coef * value_loss - c.entropy_coef * entropy
        grad_norm = self.optimize(loss)
        if log.isEnabledFor(logging.DEBUG):
            with torch.no_grad():
                again = self.agent(self.policy).evaluate(rollout)
                after = -again.step_mean(again.logprobs * advantages) + c.value_coef * 0.5 * (
                    again.step_mean((rollout.returns - again.others[0]).pow(2))
                )
            self.log_change("loss", (policy_loss + c.value_coef * value_loss).item(), after.item())
        return {
            "PolicyLoss": policy_loss.item(),
            "ValueLoss": value_loss.item(),
            "Entropy": entropy.item(),
            "GradNorm": grad_norm,
        }

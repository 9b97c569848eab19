"""Proximal policy optimisation with the clipped surrogate (Schulman et al. 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlx.algos.base import Algorithm, Means
from rlx.algos.config import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    AlgorithmConfig,
    as_count,
    option,
)
from rlx.core.losses import clipped_surrogate
from rlx.core.rollout import Rollout
from rlx.schedules import Schedule


@dataclass
class PPOConfig(AlgorithmConfig):
    lam: float | Schedule = option(0.95, FRACTION)
    """GAE lambda."""
    clip: float | Schedule = option(0.2, POSITIVE)
    """Clip range of the probability ratio."""
    epochs: int | Schedule = option(10, AT_LEAST_ONE)
    """Passes over each batch."""
    minibatches: int | Schedule = option(8, AT_LEAST_ONE)
    """Minibatches per pass (of transitions; of sequence pieces for recurrent policies)."""
    value_coef: float | Schedule = option(0.5, NON_NEGATIVE)
    """Weight of the value loss."""
    value_clip: float | Schedule | None = option(None, POSITIVE)
    """Clip value updates to this range around the sampled values (None: off)."""
    normalize_advantages: bool = True
    """Standardise advantages within each minibatch."""
    sequence_length: int | Schedule | None = option(32, NON_NEGATIVE)
    """Recurrent policies: train on pieces of this many steps, each from its stored
    state (truncated backpropagation; None or 0: whole rollouts)."""


class PPO(Algorithm):
    """Clipped PPO on any policy whose first extra is its state value."""

    name = "ppo"
    Config = PPOConfig
    config: PPOConfig

    def update(self, rollout: Rollout) -> dict[str, float]:
        clip, entropy_coef = self.setting("clip"), self.setting("entropy_coef")
        batch = self.training_batch(rollout)
        count = as_count(self.setting("minibatches"))
        stats, log_ratios = Means(), []
        for _ in range(as_count(self.setting("epochs"))):
            for mb in batch.minibatches(count=count, generator=self.generator):
                new = self.agent(self.policy).evaluate(mb)
                log_ratio = new.logprobs - mb.logprobs
                losses = self.losses(mb, new, log_ratio, clip, entropy=bool(entropy_coef))
                stats.add(GradNorm=self.optimize(self.total(losses), as_tensor=True), **losses)
                log_ratios.append((log_ratio.detach(), mb.valid))
        info = {**stats.means(), **self.ratio_statistics(log_ratios, clip)}
        if not entropy_coef:  # kept out of the graph: once, after the update
            with torch.no_grad():
                new = self.agent(self.policy).evaluate(batch)
                info["Entropy"] = batch.step_mean(new.entropy_or_estimate()).item()
        return info

    def training_batch(self, rollout: Rollout) -> Rollout:
        """The rollout with its GAE advantages and returns, cut as PPO trains on it:
        single transitions for a feed-forward policy; for a recurrent one, sequences
        (whole, or pieces of ``sequence_length`` steps) with their stored initial states."""
        (values,) = rollout.others
        rollout.gae(values, self.setting("gamma"), self.setting("lam"))
        if rollout.recurrent_states is None:
            return rollout.vectorize()
        length = self.setting("sequence_length")
        length = 0 if length is None else int(round(length))  # 0: whole rollouts
        return rollout.chunks(length) if length else rollout

    def losses(
        self, batch: Rollout, new: Rollout, log_ratio: torch.Tensor, clip: float,
        entropy: bool = True,
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        """PolicyLoss (the clipped surrogate, negated), ValueLoss (clipped around the
        sampled values with ``value_clip``) and, with ``entropy``, Entropy: per-step means
        over ``batch`` as re-evaluated in ``new`` (``log_ratio``: new minus sampled
        log-probs)."""
        c = self.config
        adv = batch.standardize(batch.advantages) if c.normalize_advantages else batch.advantages
        ratio = log_ratio.exp()
        (new_values,) = new.others
        value_error = (new_values - batch.returns).pow(2)
        value_clip = self.setting("value_clip")
        if value_clip is not None:
            (old_values,) = batch.others
            moved = old_values + (new_values - old_values).clamp(-value_clip, value_clip)
            value_error = torch.max(value_error, (moved - batch.returns).pow(2))
        losses = {
            "PolicyLoss": -batch.step_mean(clipped_surrogate(ratio, adv, clip)),
            "ValueLoss": 0.5 * batch.step_mean(value_error),
        }
        if entropy:
            losses["Entropy"] = batch.step_mean(new.entropy_or_estimate())
        return losses

    def batch_loss(self, rollout: Rollout) -> torch.Tensor:
        """The loss PPO minimises, on the whole rollout (for the DEBUG log)."""
        batch = self.training_batch(rollout)
        new = self.agent(self.policy).evaluate(batch)
        losses = self.losses(batch, new, new.logprobs - batch.logprobs, self.setting("clip"))
        return self.total(losses)

    @staticmethod
    def ratio_statistics(log_ratios: list[tuple[torch.Tensor, torch.Tensor]], clip: float):
        """ClipFraction and ApproxKL (the ``(r - 1) - log r`` estimator) over every valid
        step of every minibatch, from the detached log-ratios kept during the update."""
        log_ratio = torch.cat([x[valid] for x, valid in log_ratios])
        ratio = log_ratio.exp()
        return {
            "ClipFraction": ((ratio - 1).abs() > clip).float().mean().item(),
            "ApproxKL": ((ratio - 1) - log_ratio).mean().item(),
        }

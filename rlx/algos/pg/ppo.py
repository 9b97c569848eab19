"""Proximal policy optimisation with the clipped surrogate (Schulman et al. 2017)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from rlx.algos.base import Algorithm, log
from rlx.algos.config import AT_LEAST_ONE, FRACTION, NON_NEGATIVE, POSITIVE, AlgorithmConfig, option
from rlx.core.losses import clipped_surrogate
from rlx.core.rollout import Rollout
from rlx.schedules import Schedule


@dataclass
class PPOConfig(AlgorithmConfig):
    lam: float = option(0.95, FRACTION)
    """GAE lambda."""
    clip: float | Schedule = option(0.2, POSITIVE)
    """Clip range of the probability ratio."""
    epochs: int = option(10, AT_LEAST_ONE)
    """Passes over each batch."""
    minibatches: int = option(8, AT_LEAST_ONE)
    """Minibatches per pass (of transitions; of sequence pieces for recurrent policies)."""
    value_coef: float = option(0.5, NON_NEGATIVE)
    """Weight of the value loss."""
    value_clip: float | None = option(None, POSITIVE)
    """Clip value updates to this range around the sampled values (None: off)."""
    normalize_advantages: bool = True
    """Standardise advantages within each minibatch."""
    sequence_length: int | None = 32
    """Recurrent policies: train on pieces of this many steps, each from its stored
    state (truncated backpropagation; None: whole rollouts)."""


class PPO(Algorithm):
    """Clipped PPO on any policy whose first extra is its state value."""

    name = "ppo"
    Config = PPOConfig
    config: PPOConfig

    def update(self, rollout: Rollout) -> dict[str, float]:
        c = self.config
        clip, entropy_coef = self.hp("clip"), self.hp("entropy_coef")
        (values,) = rollout.others
        rollout.gae(values, c.gamma, c.lam)
        # Feed-forward: shuffle single transitions. Recurrent: keep sequences (whole, or
        # pieces of sequence_length steps), each with its stored initial state.
        if rollout.recurrent_states is None:
            batch = rollout.vectorize()
        elif c.sequence_length:
            batch = rollout.chunks(c.sequence_length)
        else:
            batch = rollout
        size = max(1, batch.batch_size // c.minibatches)
        debug = log.isEnabledFor(logging.DEBUG)
        if debug:
            before = self.objective(batch, clip)
        stats: dict[str, list[torch.Tensor]] = {"PolicyLoss": [], "ValueLoss": [], "GradNorm": []}
        entropies, log_ratios = [], []
        for _ in range(c.epochs):
            for mb in batch.minibatches(size, generator=self.generator):
                new = self.agent(self.policy).evaluate(mb)
                (new_values,) = new.others
                adv = mb.standardize(mb.advantages) if c.normalize_advantages else mb.advantages
                log_ratio = new.logprobs - mb.logprobs
                ratio = log_ratio.exp()
                policy_loss = -mb.step_mean(clipped_surrogate(ratio, adv, clip))
                value_error = (new_values - mb.returns).pow(2)
                if c.value_clip is not None:
                    (old_values,) = mb.others
                    moved = old_values + (new_values - old_values).clamp(
                        -c.value_clip, c.value_clip
                    )
                    value_error = torch.max(value_error, (moved - mb.returns).pow(2))
                value_loss = 0.5 * mb.step_mean(value_error)
                loss = policy_loss + c.value_coef * value_loss
                if entropy_coef:
                    entropy = mb.step_mean(new.entropy_or_estimate())
                    loss = loss - entropy_coef * entropy
                    entropies.append(entropy.detach())
                stats["GradNorm"].append(self.optimize(loss, as_tensor=True))
                stats["PolicyLoss"].append(policy_loss.detach())
                stats["ValueLoss"].append(value_loss.detach())
                log_ratios.append((log_ratio.detach(), mb.valid))
        info = {k: torch.stack(v).mean().item() for k, v in stats.items()}
        info.update(self.ratio_statistics(log_ratios, clip))
        with torch.no_grad():  # entropy kept out of the graph: once, after the update
            info["Entropy"] = (
                torch.stack(entropies).mean().item()
                if entropies
                else batch.step_mean(
                    self.agent(self.policy).evaluate(batch).entropy_or_estimate()
                ).item()
            )
        if debug:
            self.log_change("loss", before, self.objective(batch, clip))
        return info

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

    def objective(self, batch: Rollout, clip: float) -> float:
        """The clipped loss on a whole batch under the current policy (for DEBUG logs)."""
        c = self.config
        with torch.no_grad():
            new = self.agent(self.policy).evaluate(batch)
            ratio = (new.logprobs - batch.logprobs).exp()
            adv = (
                batch.standardize(batch.advantages) if c.normalize_advantages else batch.advantages
            )
            surrogate = clipped_surrogate(ratio, adv, clip)
            value = 0.5 * batch.step_mean((new.others[0] - batch.returns).pow(2))
            return (-batch.step_mean(surrogate) + c.value_coef * value).item()

"""CMA-ES over a policy's parameters (Hansen & Ostermeier 2001; Hansen 2016 tutorial).

No gradients: every generation asks the strategy for λ parameter vectors, plays
``candidate_episodes`` episodes with each and tells it their mean returns, so any
:class:`rlx.Parametric` can be searched (discrete or continuous, recurrent or not).

Candidates share the agent's B environments, one per environment
(:mod:`rlx.algos.es.population`): a generation costs ``ceil(λ · candidate_episodes / B)``
rounds, each as long as its longest episode, so the default λ (4 + ⌊3 ln n⌋ for n
parameters) is rounded up to fill every round.

After every generation ``self.policy`` holds the strategy's mean (``keep="mean"``) or
the best candidate so far (``keep="best"``; kept either way as ``algo.best``, logged as
BestReturn). The best's fitness is the luckiest of many noisy estimates: on fresh
Pendulum-v1 episodes the mean did better for every seed tried. The defaults (σ₀ = 1, 4
episodes per candidate) come from the same comparison (``benchmarks/README.md``).

Why our own CMA-ES (:mod:`rlx.algos.es.strategy`), not the ``cma`` package: a resumed
run must continue exactly from a ``torch.load(weights_only=True)`` checkpoint, which
refuses cma's object graph (and copying its internals would tie rlx to one cma
version). Ours is a few tensors and numbers (``CMA.state_dict``) and does as well as cma
with its defaults (``python -m benchmarks.learning_es --compare``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import spaces
from torch.nn.utils import parameters_to_vector

from rlx import schedules
from rlx.algos.base import Algorithm, log, refuse_previous
from rlx.algos.config import AT_LEAST_ONE, POSITIVE, AlgorithmConfig, Range, as_count, option
from rlx.algos.es.population import Population, load_vector
from rlx.algos.es.strategy import CMA, default_population
from rlx.core.agent import Agent
from rlx.core.parametric import Parametric
from rlx.schedules import Schedule


@dataclass
class CMAESConfig(AlgorithmConfig):
    """CMA-ES options. Of the shared options only ``num_envs`` and ``horizon`` apply
    (returns are undiscounted sums)."""

    episodes: bool = True
    """Whole episodes are sampled (always, for CMA-ES)."""
    horizon: int | Schedule = option(1000, AT_LEAST_ONE)
    """Longest episode (schedule); the environment's own time limit applies first."""
    population: int | None = option(
        None, Range("at least 2", lambda v: v >= 2),
        fixed="the strategy derives its weights and learning rates from it when it is built",
    )  # fmt: skip
    """Candidates per generation (λ, at least 2); None: 4 + ⌊3 ln n⌋ for n policy
    parameters, rounded up so that every round of num_envs environments is full."""
    sigma0: float = option(
        1.0, POSITIVE, fixed="it is only the first step size: CMA-ES adapts sigma itself"
    )
    """Initial step size σ₀: the standard deviation of the first candidates' parameters
    around the policy's initial ones."""
    candidate_episodes: int | Schedule = option(4, AT_LEAST_ONE)
    """Episodes whose mean return is a candidate's fitness (schedule)."""
    deterministic: bool = True
    """Candidates act with each action distribution's mode (less noise in the fitness);
    False samples actions."""
    diagonal: bool = False
    """A diagonal covariance (sep-CMA-ES): memory and time linear in the number of
    parameters, for policies of thousands of them."""
    keep: str = "mean"
    """What the policy holds after each generation: 'mean' (the strategy's mean) or 'best'
    (the candidate with the best fitness so far, which noise favours)."""


class CMAES(Algorithm):
    """CMA-ES on any policy; one ``iteration()`` is one generation (see the module)."""

    name = "cmaes"
    data_parallel = False  # no gradients to average
    Config = CMAESConfig
    config: CMAESConfig

    def __init__(self, agent: Agent, policy: Parametric, config: CMAESConfig) -> None:
        super().__init__(agent, policy, config)
        if config.keep not in ("best", "mean"):
            raise ValueError(f"--keep must be 'best' or 'mean', got {config.keep!r}.")
        start = parameters_to_vector(policy.parameters()).detach().cpu()
        n = start.numel()
        if n == 0:
            raise ValueError("CMA-ES searches a policy's parameters, and this policy has none.")
        if n > 20_000 and not config.diagonal:
            raise ValueError(
                f"the policy has {n:,} parameters: a full covariance would be {n:,} x {n:,}. "
                "Use --diagonal (sep-CMA-ES) or a smaller policy (CMAES.default_policy)."
            )
        self.strategy = CMA(
            start, config.sigma0, self.population_size(n), config.diagonal, self.generator
        )
        self.population = Population(policy, min(self.strategy.population, agent.num_envs))
        self.best = start.to(torch.float64)
        self.best_return = -math.inf

    @classmethod
    def default_policy(
        cls, observation_space: spaces.Space, action_space: spaces.Space, config: CMAESConfig,
        kind: str = "mlp", hidden: int = 64, squash: bool = False,
        previous_action_reward: bool = False,
    ) -> Parametric:  # fmt: skip
        """An actor without a critic (:class:`rlx.policies.actor.ActorPolicy`) with one
        tanh layer of ``hidden`` units, as CMA-ES pays for every parameter (450 for
        CartPole-v1 at width 64, against 9,000 for PPO's 2×64 actor-critic). Recurrent
        kinds get :func:`rlx.policies.make_policy`'s shared-cell policy."""
        from rlx.policies import make_policy
        from rlx.policies.actor import ActorPolicy

        if kind == "mlp":
            refuse_previous(previous_action_reward, cls.name)
            return ActorPolicy(observation_space, action_space, (hidden,), squash=squash)
        return make_policy(
            observation_space, action_space, kind, hidden=hidden, squash=squash, shared=True,
            previous_action_reward=previous_action_reward,
        )  # fmt: skip

    def population_size(self, n: int) -> int:
        """λ: the configured one, or 4 + ⌊3 ln n⌋ rounded up to fill every round."""
        if self.config.population is not None:
            return self.config.population
        episodes = as_count(schedules.value(self.config.candidate_episodes, 0))
        fill = self.agent.num_envs // math.gcd(self.agent.num_envs, episodes)
        return -(-default_population(n) // fill) * fill

    def evaluate(self, candidates: torch.Tensor, episodes: int, horizon: int) -> torch.Tensor:
        """Each candidate's mean return over ``episodes`` episodes, ``[λ]`` (float64),
        dealt to the B environments in rounds. Spare environments of a last round replay
        the last candidate, not counted in its fitness (but in ``agent.total_steps``)."""
        B = self.agent.num_envs
        owners = torch.arange(len(candidates)).repeat_interleave(episodes)  # episode -> candidate
        totals = torch.zeros(len(candidates), dtype=torch.float64)
        for start in range(0, len(owners), B):
            rows = owners[start : start + B]
            padded = torch.cat([rows, rows[-1:].expand(B - len(rows))])
            self.population.assign(candidates, padded)
            with torch.no_grad():
                rollout = self.agent(self.population).episode(
                    horizon, dry=True, deterministic=self.config.deterministic
                )
            returns = rollout.rewards.double().sum(0).cpu()  # invalid steps are zero: [B]
            totals.index_add_(0, rows, returns[: len(rows)])
        return totals / episodes

    def _iterate(self) -> dict[str, float]:
        before = self._debug_fitness_loss()
        candidates = self.strategy.ask()
        episodes = as_count(self.setting("candidate_episodes"))
        returns = self.evaluate(candidates, episodes, as_count(self.setting("horizon")))
        self.strategy.tell(candidates, returns)
        top = int(returns.argmax())
        if returns[top] > self.best_return:
            self.best, self.best_return = candidates[top].clone(), float(returns[top])
        load_vector(self.policy, self.best if self.config.keep == "best" else self.strategy.mean)
        if before is not None:
            self.log_change("loss", before, self._debug_fitness_loss())
        self.iterations += 1
        return {
            "BestReturn": self.best_return,
            "GenerationBest": float(returns[top]),
            "MeanReturn": float(returns.mean()),
            "Sigma": self.strategy.sigma,
            "Population": float(self.strategy.population),
            **self.scheduled(),
        }

    def _debug_fitness_loss(self) -> float | None:
        """At DEBUG level, the loss CMA-ES lowers, for the policy as it stands: minus its
        mean return over ``candidate_episodes`` episodes; else None (nothing played).
        Played from where sampling stands, which is then restored with torch's
        generator, so before and after an update play the same episodes and training is
        unchanged (except where the environments' state cannot be restored: those in
        worker processes, C++ or emulators, see :meth:`rlx.Agent.state_dict`)."""
        if not log.isEnabledFor(logging.DEBUG):
            return None
        saved = self.agent.state_dict()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.iterations)
            vector = parameters_to_vector(self.policy.parameters()).detach().cpu().double()
            episodes = as_count(self.setting("candidate_episodes"))
            returns = self.evaluate(vector[None], episodes, as_count(self.setting("horizon")))
        self.agent.load_state_dict(saved)
        return -float(returns[0])

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "iterations": self.iterations,
            "progress": self.progress,
            "strategy": self.strategy.state_dict(),  # holds self.generator's state
            "best": self.best.clone(),
            "best_return": self.best_return,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.strategy.load_state_dict(state["strategy"])
        self.policy.load_state_dict(state["policy"])
        self.iterations = int(state["iterations"])
        self.progress = float(state["progress"])
        self.best = state["best"].to(torch.float64).clone()
        self.best_return = float(state["best_return"])

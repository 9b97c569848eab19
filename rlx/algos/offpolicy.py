"""What the replay-based algorithms share: act, store, learn from samples.

Each iteration samples ``steps`` steps of every environment (uniformly random actions
until ``learning_starts`` environment steps, then the algorithm's exploring policy),
adds them to the replay (uniform or prioritized, with n-step returns: :mod:`rlx.replay`)
and, once learning has started, takes ``gradient_steps`` updates on batches of
``batch_size`` transitions. Every numeric option but ``num_envs``, ``buffer_size``,
``learning_starts`` and ``frame_stack`` may be a schedule (:mod:`rlx.schedules`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from rlx import schedules
from rlx.algos.base import Algorithm
from rlx.algos.config import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    AlgorithmConfig,
    as_count,
    option,
)
from rlx.core.agent import Agent
from rlx.core.parametric import Parametric
from rlx.core.rollout import Rollout
from rlx.policies.random import RandomPolicy
from rlx.replay import PrioritizedReplay, ReplayBuffer, SequenceReplay
from rlx.schedules import Schedule


@dataclass
class OffPolicyConfig(AlgorithmConfig):
    num_envs: int = option(1, AT_LEAST_ONE)
    steps: int | Schedule = option(1, AT_LEAST_ONE)
    """Environment steps per environment between updates (the update frequency; schedule)."""
    gradient_steps: int | Schedule = option(1, AT_LEAST_ONE)
    """Updates after each sampling (schedule)."""
    batch_size: int | Schedule = option(64, AT_LEAST_ONE)
    """Transitions per update (schedule)."""
    buffer_size: int = option(
        100_000, AT_LEAST_ONE, fixed="the replay's storage is allocated at this size"
    )
    """Transitions the replay keeps."""
    learning_starts: int = option(
        1_000, NON_NEGATIVE,
        fixed="it is itself a step count (where learning begins), not a value over the steps",
    )  # fmt: skip
    """Environment steps of random actions before the first update."""
    n_step: int | Schedule = option(1, AT_LEAST_ONE)
    """Steps summed into each return (bootstrapping after truncation, never termination;
    schedule: returns are formed as the replay is sampled)."""
    prioritized: bool = False
    """Prioritized replay (proportional, Schaul et al. 2016)."""
    priority_alpha: float | Schedule = option(0.6, FRACTION)
    """How strongly priorities shape sampling (schedule; applies to priorities set after
    a change)."""
    priority_beta: float | Schedule = option(0.4, FRACTION)
    """Importance-weight correction, usually raised to 1 (schedule)."""
    grad_clip: float | Schedule | None = option(10.0, POSITIVE)
    replay_device: str = "cpu"
    """Where the replay's storage lives."""
    replay_obs_dtype: str | None = None
    """Store float observations narrower, e.g. float16 (half the memory); None: as they are."""
    frame_stack: int = option(0, fixed="the replay is built for this many stacked frames")
    """Observations are this many stacked frames (Atari): store each frame once and
    rebuild the stacks when sampling (:class:`rlx.replay.FrameReplay`); 0: off."""


class OffPolicyAlgorithm(Algorithm):
    """Base of the replay-based algorithms; subclasses define ``learn(batch) -> dict`` (one
    update on a replay sample) and may add exploration (``acting_policy``,
    ``set_exploration``)."""

    Config = OffPolicyConfig
    config: OffPolicyConfig

    def __init__(self, agent: Agent, policy: Parametric, config: OffPolicyConfig) -> None:
        super().__init__(agent, policy, config)
        self.random_policy = RandomPolicy(agent.action_space)
        self.replay = self.make_replay()
        self.updates = 0  # gradient steps taken

    def make_replay(self) -> ReplayBuffer:
        c = self.config
        kwargs: dict[str, Any] = dict(
            n_step=as_count(self.setting("n_step")), gamma=self.setting("gamma"),
            device=c.replay_device,
        )  # fmt: skip
        if c.replay_obs_dtype is not None:
            dtype = getattr(torch, c.replay_obs_dtype, None)
            if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
                raise ValueError(
                    f"--replay-obs-dtype must be a float dtype such as float16 or bfloat16, "
                    f"got {c.replay_obs_dtype!r}."
                )
            kwargs["obs_dtype"] = dtype
        priority = dict(alpha=self.setting("priority_alpha"), beta=self.setting("priority_beta"))
        if c.frame_stack:
            from rlx.replay.frames import FrameReplay

            kwargs.update(priority, prioritized=c.prioritized)
            return FrameReplay(c.buffer_size, c.frame_stack, **kwargs)
        if c.prioritized:
            return PrioritizedReplay(c.buffer_size, **priority, **kwargs)
        return ReplayBuffer(c.buffer_size, **kwargs)

    logs_each_gradient_step = True  # batch_loss: the loss on each replay sample
    acts_randomly_first: ClassVar[bool] = True
    """Act with uniformly random actions until ``learning_starts`` (else the exploring
    policy acts from the start)."""

    def acting_policy(self) -> Parametric:
        """The module that acts once learning has started: the policy itself, or a
        wrapper that adds exploration to it (DDPG's noise)."""
        return self.policy

    @classmethod
    def set_exploration(cls, config: OffPolicyConfig, acting: Parametric, step: int) -> None:
        """Give ``acting`` its exploration for ``step`` (ε, noise: their schedules' values).
        A class method of the config alone, so a sampling process can call it too."""

    @classmethod
    def steps_per_iteration(cls, config: OffPolicyConfig, step: int) -> int:
        """Steps per environment of the sampling at ``step``."""
        return as_count(schedules.value(config.steps, step))

    @property
    def learning(self) -> bool:
        return self.step >= self.config.learning_starts

    def sample(self, dry: bool = True) -> Rollout | None:
        if self.sampler is not None:  # the sampling process adds to the shared replay
            steps, episodes = self.sampler.arrived()
            self.agent.record(steps, episodes)
            return None
        if self.acts_randomly_first and not self.learning:
            policy = self.random_policy
        else:
            policy = self.acting_policy()
            self.set_exploration(self.config, policy, self.step)
        steps = self.steps_per_iteration(self.config, self.step)
        with torch.no_grad():
            return self.agent(policy).steps(steps, dry=True)

    def update(self, rollout: Rollout | None) -> dict[str, float]:
        if rollout is not None:
            if (rollout.recurrent_states is not None and self.acting_policy() is self.policy
                    and not isinstance(self.replay, SequenceReplay)):  # fmt: skip
                raise ValueError(
                    f"{type(self.policy).__name__} is recurrent, and {self.name} learns from "
                    "single transitions here, which lose its state: learn from sequences "
                    "(r2d2 for Q-learning; sequence_length for ddpg, td3 and sac)."
                )
            self.replay.add(rollout)
        info: dict[str, float] = {"ReplaySize": float(len(self.replay))}
        if not self.learning:
            return info
        self.follow_schedules(self.replay)
        totals: dict[str, float] = {}
        count = as_count(self.setting("gradient_steps"))
        for _ in range(count):
            size = as_count(self.setting("batch_size"))
            if self.sampler is not None:  # keep to the replay ratio
                self.sampler.throttle(size, self.config.learning_starts)
            batch = self.replay.sample(size)
            before = self._debug_loss(batch)
            for k, v in self.learn(batch).items():
                totals[k] = totals.get(k, 0.0) + float(v)
            if before is not None:
                self.log_change("loss", before, self._debug_loss(batch))
            self.updates += 1
        info.update({k: v / count for k, v in totals.items()})
        info["Updates"] = float(self.updates)
        return info

    def follow_schedules(self, replay: Any) -> None:
        """Give the replay this iteration's PER alpha and beta and, where it forms n-step
        returns as it is sampled (not a sequence replay), n and the discount."""
        if hasattr(replay, "beta"):  # prioritized
            replay.alpha = self.setting("priority_alpha")
            replay.beta = self.setting("priority_beta")
        if not isinstance(replay, SequenceReplay):
            n = as_count(self.setting("n_step"))
            if replay.T and n + 1 > replay.T:  # T: 0 until the first rollout
                raise ValueError(
                    f"--n-step reaches {n}, but the replay holds {replay.T} steps of each "
                    f"environment: n-step returns need at least n + 1."
                )
            replay.n_step, replay.gamma = n, self.setting("gamma")

    def learn(self, batch: Rollout) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define learn(batch).")

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.updates = int(state["updates"])

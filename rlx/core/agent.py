"""``Agent``: environments plus an optional optimizer; bind any policy to sample with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch

from rlx.core.collect import Alternating, Collector
from rlx.core.evaluate import evaluate
from rlx.core.optim import step as optimizer_step
from rlx.core.rollout import Rollout
from rlx.core.spaces import check_supported
from rlx.envs.vector import make_vector_env

SAMPLERS = ("serial", "parallel", "alternating")


class Agent:
    """B environments that any policy can act in, and optionally the optimizer to train it.

    The agent holds no network: ``agent(policy)`` binds one (the learner, a behaviour
    policy, an old copy) without copying it.

    Args:
        env: a gymnasium id, an ``Env``, a function returning an ``Env``, or a
            ``gymnasium.vector.VectorEnv`` of B environments.
        optimizer: used by :meth:`step` and :meth:`zero_grad`.
        grad_clip: if set, :meth:`step` clips the gradient norm of the optimizer's
            parameters to this value first.
        num_envs: B, for ids and env functions.
        seed: seeds the environments' first reset and the action space, so that with
            ``torch.manual_seed`` sampling is reproducible. Policies sample with torch's
            global RNG.
        clip_actions: clip Box actions to the space's bounds before the environment sees
            them (the rollout keeps the sampled, unclipped action, whose log-prob it has).
        validate_args: keep torch.distributions argument validation on while rlx runs the
            policy (off by default: it costs about as much as a small network's forward).
        vectorization: ``None`` (an id's own vector implementation if it has one and
            ``num_envs >= 5``, where it is faster; else sync), ``"sync"``, ``"async"`` or
            ``"envpool"`` (EnvPool's C++ environments, when installed).
        sampler: ``"serial"`` steps the environments in this process; ``"parallel"``
            steps them in ``workers`` processes (shared memory, see
            :class:`rlx.envs.ParallelVectorEnv`) while the policy acts for all of them in
            one batched forward here. Rollouts are the same either way.
            ``"alternating"`` splits them into two halves, each spread over the
            ``workers`` processes: the policy acts for one half while the workers step
            the other (:class:`rlx.core.collect.Alternating`); it pays where acting costs
            about as much as stepping, and gives the parallel sampler's rollouts (see
            there).
        workers: worker processes of the parallel and alternating samplers.
        env_kwargs: passed to the environment constructor.
    """

    def __init__(
        self,
        env: str | gym.Env | gym.vector.VectorEnv | Callable[[], gym.Env],
        optimizer: torch.optim.Optimizer | None = None,
        grad_clip: float | None = None,
        *,
        num_envs: int = 1,
        seed: int | None = None,
        clip_actions: bool = True,
        validate_args: bool = False,
        vectorization: str | None = None,
        sampler: str = "serial",
        workers: int = 2,
        **env_kwargs: Any,
    ) -> None:
        if grad_clip is not None and grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive, got {grad_clip}.")
        if sampler not in SAMPLERS:
            raise ValueError(
                f"sampler must be 'serial', 'parallel' or 'alternating', got {sampler!r}."
            )
        alternating = sampler == "alternating"
        if sampler != "serial":
            if vectorization is not None:
                raise ValueError(
                    f"sampler={sampler!r} makes its own worker processes; leave vectorization out."
                )
            vectorization = "parallel"
        if alternating and num_envs < 2:
            raise ValueError(
                "sampler='alternating' splits the environments into two halves: it needs "
                f"num_envs >= 2, got num_envs={num_envs}."
            )
        self.sampler = sampler
        self.env = make_vector_env(env, num_envs, vectorization, workers=workers,
                                   parts=2 if alternating else 1, **env_kwargs)  # fmt: skip
        self.num_envs = self.env.num_envs
        self.observation_space = self.env.single_observation_space
        self.action_space = self.env.single_action_space
        check_supported(self.observation_space, "observation")
        check_supported(self.action_space, "action")
        self.optimizer = optimizer
        self.grad_clip = grad_clip
        self.seed = seed
        kind = Alternating if alternating else Collector
        self.collector = kind(self.env, seed, clip_actions, validate_args)
        if seed is not None:
            self.env.action_space.seed(seed)

    @property
    def total_steps(self) -> int:
        """Valid transitions sampled so far (and counted by :meth:`record`)."""
        return self.collector.total_steps

    @property
    def validate_args(self) -> bool:
        """Whether torch.distributions argument validation stays on while rlx runs policies."""
        return self.collector.validate_args

    @validate_args.setter
    def validate_args(self, value: bool) -> None:
        self.collector.validate_args = bool(value)

    def __call__(self, policy: torch.nn.Module) -> BoundAgent:
        """Bind ``policy`` (any ``rlx.Parametric``) for sampling and evaluation."""
        if not isinstance(policy, torch.nn.Module):
            raise TypeError(
                f"agent(policy) takes an rlx.Parametric (a torch.nn.Module), got "
                f"{type(policy).__name__}."
            )
        return BoundAgent(self, policy)

    # ------------------------------------------------------------ optimisation
    def zero_grad(self) -> None:
        """Clear the optimizer's gradients."""
        self._optimizer().zero_grad(set_to_none=True)

    def step(self) -> torch.Tensor | None:
        """Clip gradients (if ``grad_clip``) and take an optimizer step
        (:func:`rlx.core.optim.step`); returns the gradient norm before clipping when
        ``grad_clip`` is set."""
        return optimizer_step(self._optimizer(), self.grad_clip, norm=False)

    def _optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            raise RuntimeError(
                "this Agent has no optimizer: create it with rlx.Agent(env, optimizer=...) "
                "or assign agent.optimizer."
            )
        return self.optimizer

    # ------------------------------------------------------------ environments
    def reset(self) -> None:
        """Start fresh episodes in every environment at the next ``steps`` call."""
        self.collector.reset()

    def state_dict(self, policy: torch.nn.Module | None = None) -> dict[str, Any]:
        """Where sampling stands, as plain data for a checkpoint.

        Holds the pending observations, episode bookkeeping, step counter, ``policy``'s
        carried recurrent state, and a best-effort snapshot of the environments
        (:mod:`rlx.envs.snapshot`), so that a resumed run continues the same episodes.
        """
        return self.collector.state_dict(policy)

    def load_state_dict(self, state: dict[str, Any], policy: torch.nn.Module | None = None) -> bool:
        """Restore :meth:`state_dict`. Returns False when the environments could not be
        restored exactly; they then start new episodes at the next sampling call."""
        return self.collector.load_state_dict(state, policy)

    def pop_episodes(self) -> list[tuple[float, int]]:
        """(return, length) of every episode finished since the last call, oldest first."""
        return self.collector.pop_episodes()

    def record(self, steps: int, episodes: list[tuple[float, int]]) -> None:
        """Count experience sampled elsewhere (by an asynchronous sampler for this agent's
        learner) in ``total_steps`` and ``pop_episodes()``."""
        self.collector.record(steps, episodes)

    def close(self) -> None:
        self.env.close()

    def __repr__(self) -> str:
        name = self.env.spec.id if self.env.spec else type(self.env).__name__
        opt = type(self.optimizer).__name__ if self.optimizer else None
        return f"Agent({name!r}, num_envs={self.num_envs}, optimizer={opt})"


class BoundAgent:
    """An :class:`Agent` with a policy bound: ``agent(policy)``."""

    __slots__ = ("agent", "policy")

    def __init__(self, agent: Agent, policy: torch.nn.Module) -> None:
        self.agent = agent
        self.policy = policy

    def episode(self, horizon: int, dry: bool = False, deterministic: bool = False) -> Rollout:
        """Every environment from reset until its episode ends or ``horizon`` steps.

        Returns a ``[T, B]`` rollout, T the longest episode (at most ``horizon``); steps
        after an environment's end are invalid and zero. An episode cut by the horizon is
        marked truncated at its last step (and counted by :meth:`Agent.pop_episodes`).
        ``deterministic`` acts with the distribution's ``mode()`` instead of sampling (for
        evaluation).
        """
        return self.agent.collector.collect(self.policy, horizon, dry, True, deterministic)

    def steps(self, n: int, dry: bool = False, deterministic: bool = False) -> Rollout:
        """``n`` more steps of every environment, continuing where the last call stopped.

        Finished environments reset themselves (and their recurrent state). The rollout
        keeps what bootstrapping needs: ``next_observations`` and, unless dry,
        ``next_others``.
        """
        return self.agent.collector.collect(self.policy, n, dry, False, deterministic)

    def evaluate(self, rollout: Rollout, burn_in: int = 0, actions: str = "stored") -> Rollout:
        """Re-run the bound policy over ``rollout``; keeps the graph when gradients are on.

        ``burn_in``: run the first ``burn_in`` steps only to warm up the recurrent state
        (no gradient) and return the evaluation of the rest, as R2D2 does with stored
        states that the current network would no longer produce.

        ``actions``: ``"stored"`` (the rollout's own), ``"sample"`` (new ones, drawn with
        reparameterisation where possible so gradients flow through them) or ``"mode"``
        (each distribution's mode, e.g. a deterministic actor's, with gradient); the
        result's ``actions`` and ``logprobs`` are then the new ones.
        """
        return evaluate(self.agent, self.policy, rollout, burn_in, actions)

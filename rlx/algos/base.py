"""What every algorithm shares: sampling, optimiser steps, scheduled hyper-parameters,
learning-rate annealing and checkpoint state; the update itself is each algorithm's own."""

from __future__ import annotations

import ast
import logging
from typing import Any, ClassVar

import torch

from rlx import schedules
from rlx.algos.config import AlgorithmConfig, as_count, validate_config
from rlx.core.agent import Agent
from rlx.core.optim import adam, minimize
from rlx.core.parametric import Parametric
from rlx.core.rollout import Rollout

log = logging.getLogger("rlx")


def make_lr_scheduler(spec: Any, optimizer: torch.optim.Optimizer) -> Any:
    """A torch LR scheduler from ``'StepLR(step_size=100, gamma=0.5)'`` or a function
    ``optimizer -> scheduler``; None for None."""
    if spec is None:
        return None
    if callable(spec):
        return spec(optimizer)
    node = ast.parse(str(spec), mode="eval").body if isinstance(spec, str) else None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise ValueError(
            f"--lr-scheduler must read like 'StepLR(step_size=100, gamma=0.5)', got {spec!r}."
        )
    cls = getattr(torch.optim.lr_scheduler, node.func.id, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.lr_scheduler.LRScheduler)):
        raise ValueError(
            f"--lr-scheduler: {node.func.id!r} is not a scheduler of torch.optim.lr_scheduler "
            "(e.g. StepLR, ExponentialLR, CosineAnnealingLR)."
        )
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        return cls(optimizer, *args, **kwargs)
    except (ValueError, TypeError) as err:
        raise ValueError(f"--lr-scheduler {spec!r}: {err}") from None


class Means:
    """The scalars an update logs, averaged over its steps: ``add(Loss=...)`` per step
    (0-d tensors are kept as they are and read out once, in :meth:`means`)."""

    def __init__(self) -> None:
        self.values: dict[str, list[torch.Tensor | float]] = {}

    def add(self, **scalars: torch.Tensor | float) -> None:
        for name, value in scalars.items():
            if isinstance(value, torch.Tensor):
                value = value.detach()
            self.values.setdefault(name, []).append(value)

    def means(self) -> dict[str, float]:
        return {
            name: torch.stack([torch.as_tensor(v) for v in values]).double().mean().item()
            for name, values in self.values.items()
        }


def refuse_previous(previous_action_reward: bool, algo: str) -> None:
    """The error for asking a policy without a recurrent core for the previous action
    and reward."""
    if previous_action_reward:
        raise ValueError(
            f"--previous-action-reward feeds the previous action and reward to a recurrent "
            f"core: give {algo} a recurrent policy (--policy gru or lstm)."
        )


class Algorithm:
    """Base of the algorithms: subclasses define ``update(rollout) -> dict`` of scalars to
    log; ``iteration()`` samples a batch with the agent and calls it."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[AlgorithmConfig]] = AlgorithmConfig
    reevaluates: ClassVar[bool] = False
    """``update`` evaluates each batch itself, so it is sampled dry."""
    data_parallel: ClassVar[bool] = True
    """Trains by gradient steps, which a data-parallel run averages over its processes."""
    replay: Any = None
    """A replay, saved in checkpoints unless ``checkpoint_replay`` is turned off."""

    def __init__(self, agent: Agent, policy: Parametric, config: AlgorithmConfig) -> None:
        validate_config(config)
        self.agent = agent
        self.policy = policy
        self.config = config
        # Adam's eps follows its option only in an optimizer made here.
        self._owns_optimizer = agent.optimizer is None
        if agent.optimizer is None:
            agent.optimizer = adam(policy.parameters(), lr=schedules.value(config.lr, 0),
                                   eps=schedules.value(config.adam_eps, 0))  # fmt: skip
        # A scheduled grad_clip is the agent's from each iteration's step (not where the
        # agent has its own).
        self._schedules_clip = agent.grad_clip is None and callable(config.grad_clip)
        if agent.grad_clip is None:
            agent.grad_clip = schedules.value(config.grad_clip, agent.total_steps)
        if config.lr_scheduler is not None and (callable(config.lr) or config.anneal_lr):
            raise ValueError(
                "--lr-scheduler sets the learning rate itself: give a constant --lr and "
                "leave --anneal-lr off (or use a schedule for --lr instead)."
            )
        self.lr_scheduler = make_lr_scheduler(config.lr_scheduler, agent.optimizer)
        self.iterations = 0
        self.checkpoint_replay = True
        self.progress = 0.0  # fraction of the run done, set by the runner (for annealing)
        self.generator = torch.Generator().manual_seed(0)  # minibatch shuffling
        self.sampler: Any = None  # an rlx.sampling.AsyncSampler, to sample asynchronously
        self.policy_lag = 0  # updates between the sampling policy and this one
        self._feed_forward: bool | None = None  # learned from the first batch
        self._iteration_step: int | None = None  # the step an iteration began at
        # Steps sampled by the other processes of a data-parallel run (set by the
        # runner): schedules follow the run's steps, the same in every process.
        self.step_offset = 0

    @classmethod
    def default_policy(
        cls, observation_space: Any, action_space: Any, config: AlgorithmConfig,
        kind: str = "mlp", hidden: int = 64, squash: bool = False,
        previous_action_reward: bool = False,
    ) -> Parametric:  # fmt: skip
        """The ready policy this algorithm trains when none is given (``rlx train``):
        here a policy-value network (:func:`rlx.policies.make_policy`); a recurrent one
        may also take the previous action and reward."""
        from rlx.policies import make_policy

        if kind == "mlp":
            refuse_previous(previous_action_reward, cls.name)
            return make_policy(observation_space, action_space, kind, hidden=(hidden, hidden),
                               squash=squash)  # fmt: skip
        return make_policy(observation_space, action_space, kind, hidden=hidden, squash=squash,
                           previous_action_reward=previous_action_reward)  # fmt: skip

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.agent.optimizer

    def sample(self, dry: bool = False) -> Rollout:
        """One batch from the current policy (no gradient), or from the asynchronous
        sampler's queue when ``self.sampler`` is set: dry for algorithms that re-evaluate
        it (``reevaluates``); otherwise a feed-forward policy acts dry and is evaluated over
        the whole batch in one forward (cheaper than step by step), and a recurrent policy
        keeps what it computed while acting."""
        if self.sampler is not None:
            if self.config.episodes:
                raise ValueError(
                    f"{self.name} samples whole episodes; the asynchronous samplers sample "
                    "fixed-length segments. Use them with a2c or ppo (or episodes=False)."
                )
            if callable(self.config.steps):
                raise ValueError(
                    f"--steps is a schedule ({self.config.steps}), but the asynchronous "
                    "sampler samples segments of the length it was made with: give --steps "
                    "a number with it."
                )
            rollout, version = self.sampler.get()
            self.policy_lag = self.sampler.version - version
            self.agent.record(rollout.num_steps, self.sampler.pop_episodes())
            return rollout
        dry = dry or self.reevaluates
        act_dry = dry or self._feed_forward is True
        bound = self.agent(self.policy)
        with torch.no_grad():
            if self.config.episodes:
                rollout = bound.episode(as_count(self.setting("horizon")), dry=act_dry)
            else:
                rollout = bound.steps(as_count(self.setting("steps")), dry=act_dry)
            self._feed_forward = rollout.recurrent_states is None
            if act_dry and not dry:
                rollout = bound.evaluate(rollout)
        return rollout

    def seed(self, seed: int) -> None:
        """Seed the algorithm's own randomness (minibatch order)."""
        self.generator.manual_seed(seed)

    @property
    def step(self) -> int:
        """The step schedules are functions of: environment steps sampled when the current
        iteration began (so its sampling and update use the values it logs), by every
        process of a data-parallel run (:attr:`step_offset`)."""
        if self._iteration_step is not None:
            return self._iteration_step
        return self.agent.total_steps + self.step_offset

    def setting(self, name: str) -> float:
        """Hyper-parameter ``name`` now: its schedule at :attr:`step`, or the constant."""
        return schedules.value(getattr(self.config, name), self.step)

    def scheduled(self) -> dict[str, float]:
        """``{"Schedule/<option>": value}`` for every option given as a schedule (logged)."""
        return {
            f"Schedule/{name}": float(self.setting(name))
            for name, value in vars(self.config).items()
            if callable(value) and name != "lr_scheduler"
        }

    def learning_rate(self) -> float:
        """The scheduled learning rate, annealed linearly over the run with ``anneal_lr``."""
        lr = self.setting("lr")
        if self.config.anneal_lr:
            lr *= max(0.0, 1.0 - self.progress)
        return lr

    def optimize(self, loss: torch.Tensor, as_tensor: bool = False) -> float | torch.Tensor:
        """One step of the agent's optimizer on ``loss``, clipped to the agent's ``grad_clip``
        (:func:`rlx.core.optim.minimize`); returns the gradient norm before clipping (a
        float, or a 0-d tensor with ``as_tensor``: no read-out per minibatch)."""
        norm = minimize(loss, self.optimizer, self.agent.grad_clip)
        return norm if as_tensor else float(norm)

    def iteration(self) -> dict[str, float]:
        """Sample one batch and update on it; returns the scalars to log."""
        self._iteration_step = self.agent.total_steps + self.step_offset
        try:
            if self._schedules_clip:
                self.agent.grad_clip = self.setting("grad_clip")
            return self._iterate()
        finally:
            self._iteration_step = None

    def set_learning_rates(self) -> None:
        """Give the optimizer(s) the current learning rate, unless an LR scheduler sets it,
        and the one made here the current ``adam_eps``."""
        if self.lr_scheduler is None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate()
        if self._owns_optimizer:
            for group in self.optimizer.param_groups:
                group["eps"] = self.setting("adam_eps")

    def _iterate(self) -> dict[str, float]:
        self.set_learning_rates()
        rollout = self.sample()
        before = None if self.logs_each_gradient_step else self._debug_loss(rollout)
        info = self.update(rollout)
        if before is not None:
            self.log_change("loss", before, self._debug_loss(rollout))
        if self.sampler is not None:
            self.sampler.publish()
            info["PolicyLag"] = float(self.policy_lag)
        self.iterations += 1
        info["LearningRate"] = self.optimizer.param_groups[0]["lr"]
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
        info.update(self.scheduled())
        return info

    logs_each_gradient_step: ClassVar[bool] = False
    """Whether :meth:`batch_loss` is logged around each gradient step on its own batch
    (the replay-based algorithms) instead of around each iteration's update."""

    def batch_loss(self, rollout: Rollout) -> torch.Tensor | None:
        """The loss ``update`` minimises on ``rollout`` (called without gradient), logged at
        DEBUG level before and after every update as rlmodels does; None: nothing to log."""
        return None

    def _debug_loss(self, rollout: Rollout | None) -> float | None:
        """:meth:`batch_loss` at DEBUG level, else None (nothing computed). It draws from
        torch's CPU generator seeded alike before and after an update, and leaves the
        generator as it was: the log compares like with like and changes no training
        (except where a policy's forward itself draws, as NoisyNet's does: the first
        evaluation of a policy draws differently from later ones)."""
        if rollout is None or not log.isEnabledFor(logging.DEBUG):
            return None
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.iterations)
            loss = self.batch_loss(rollout)
        return None if loss is None else float(loss)

    def log_change(self, name: str, before: float, after: float) -> None:
        """Log the loss on a batch before and after the update (DEBUG level)."""
        log.debug("iteration %d: %s %.6g -> %.6g", self.iterations + 1, name, before, after)

    def update(self, rollout: Rollout) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define update(rollout).")

    def state_dict(self) -> dict[str, Any]:
        state = {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iterations": self.iterations,
            "progress": self.progress,
            "generator": self.generator.get_state(),
            "lr_scheduler": None if self.lr_scheduler is None else self.lr_scheduler.state_dict(),
            # How the policy is sampled (dry or not) decides how sampling draws from torch's
            # generator (rlx.Parametric.numpy_actor): a resumed run samples as it did.
            "feed_forward": self._feed_forward,
        }
        if self.replay is not None and self.checkpoint_replay:
            state["replay"] = self.replay.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iterations = int(state["iterations"])
        self.progress = float(state["progress"])
        self.generator.set_state(state["generator"])
        self._feed_forward = state.get("feed_forward")
        if self.lr_scheduler is not None and state.get("lr_scheduler") is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        if "replay" in state:
            self.replay.load_state_dict(state["replay"])

    def total(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss minimised: ``PolicyLoss``, plus ``ValueLoss`` weighted by ``value_coef``
        and minus the ``Entropy`` bonus weighted by ``entropy_coef``, where present."""
        loss = losses["PolicyLoss"]
        if "ValueLoss" in losses:
            loss = loss + self.setting("value_coef") * losses["ValueLoss"]
        if "Entropy" in losses:
            loss = loss - self.setting("entropy_coef") * losses["Entropy"]
        return loss


class OneStepAlgorithm(Algorithm):
    """An algorithm that takes one gradient step per batch on the :meth:`total` of what
    :meth:`losses` returns."""

    def losses(self, rollout: Rollout) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must define losses(rollout).")

    def update(self, rollout: Rollout) -> dict[str, float]:
        losses = self.losses(rollout)
        info = {k: v.item() for k, v in losses.items()}
        info["GradNorm"] = self.optimize(self.total(losses))
        return info

    def batch_loss(self, rollout: Rollout) -> torch.Tensor:
        return self.total(self.losses(rollout))

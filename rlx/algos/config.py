"""Algorithm options: typed dataclass fields, each numeric one carrying the range it must
lie in (in its field metadata), checked once when an algorithm is built.

Every numeric option takes a constant or a schedule (:mod:`rlx.schedules`), which an
algorithm reads with ``Algorithm.setting`` at the step its iteration began (so the value
is fixed for an iteration; a count is rounded with :func:`as_count`). The few that cannot
change during a run, because they size what is built with the algorithm, are declared
``option(..., fixed="why")`` and refuse a schedule with that reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlx import schedules
from rlx.schedules import Schedule


@dataclass(frozen=True)
class Range:
    """Where an option's values must lie, and how to say so in an error."""

    description: str
    contains: Callable[[float], bool]


AT_LEAST_ONE = Range("at least 1", lambda v: v >= 1)
POSITIVE = Range("positive", lambda v: v > 0)
NON_NEGATIVE = Range("0 or positive", lambda v: v >= 0)
DISCOUNT = Range("in (0, 1]", lambda v: 0 < v <= 1)
FRACTION = Range("in [0, 1]", lambda v: 0 <= v <= 1)


def as_count(value: float) -> int:
    """A scheduled count (batch size, steps, episodes...) as a positive integer."""
    return max(1, int(round(value)))


def option(default: Any, valid: Range | None = None, fixed: str | None = None) -> Any:
    """A config field with ``default`` whose values (or a schedule's) must be ``valid``;
    ``fixed`` says why it cannot change during a run (it then refuses a schedule). A
    subclass that declares the field again inherits both unless it gives its own."""
    metadata: dict[str, Any] = {}
    if valid is not None:
        metadata["range"] = valid
    if fixed is not None:
        metadata["fixed"] = fixed
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class AlgorithmConfig:
    """Hyper-parameters every algorithm here has."""

    num_envs: int = option(
        8, AT_LEAST_ONE, fixed="the agent makes its environments once, before training"
    )
    """Environments sampled in parallel (B)."""
    steps: int | Schedule = option(128, AT_LEAST_ONE)
    """Steps per environment per iteration, with ``agent(policy).steps(n)``."""
    episodes: bool = False
    """Sample whole episodes (``agent(policy).episode(horizon)``) instead of ``steps``."""
    horizon: int | Schedule = option(500, AT_LEAST_ONE)
    """Longest episode when ``episodes`` is set."""
    lr: float | Schedule = option(3e-4, POSITIVE)
    """Adam learning rate."""
    adam_eps: float | Schedule = option(1e-5, POSITIVE)
    """Adam's epsilon, added to the root of its second-moment estimate, in the optimizer
    the algorithm makes for the policy (not one given to the agent; DDPG/TD3/SAC's
    critic keeps torch's 1e-8). 1e-8 is torch's default and Stable-Baselines3's DQN's."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the run."""
    lr_scheduler: str | None = None
    """A torch LR scheduler stepped after every iteration, written as its call, e.g.
    'StepLR(step_size=100, gamma=0.5)' (from Python also a function optimizer ->
    scheduler); instead of a scheduled lr or anneal_lr."""
    gamma: float | Schedule = option(0.99, DISCOUNT)
    """Discount factor."""
    grad_clip: float | Schedule | None = option(0.5, POSITIVE)
    """Clip the gradient norm to this value (None: no clipping)."""
    entropy_coef: float | Schedule = option(0.0, NON_NEGATIVE)
    """Weight of the entropy bonus."""


def _declared(config: Any, name: str, key: str) -> Any:
    """What the config's class (an instance or the class) declares as ``key`` for option
    ``name`` or, where a subclass only changes the default, the nearest base class that
    declares it; None if none does."""
    cls = config if isinstance(config, type) else type(config)
    for klass in cls.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and key in declared.metadata:
            return declared.metadata[key]
    return None


def _range(config: Any, name: str) -> Range | None:
    return _declared(config, name, "range")


def fixed_reason(config: Any, name: str) -> str | None:
    """Why option ``name`` of ``config`` (an instance or its class) cannot be a schedule,
    or None where it can."""
    return _declared(config, name, "fixed")


def fixed_options(config: Any) -> dict[str, str]:
    """``{option: why it is fixed}`` for the options of ``config`` that refuse a schedule."""
    reasons = {f.name: fixed_reason(config, f.name) for f in dataclasses.fields(config)}
    return {name: reason for name, reason in reasons.items() if reason}


def validate_config(config: Any) -> None:
    """Raise ValueError naming the first option out of its range, or given a schedule
    where it cannot change during a run; a schedule is checked at the values it passes
    through (a plain function at step 0)."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        reason = fixed_reason(config, field.name)
        if reason and callable(value):
            raise ValueError(
                f"--{field.name.replace('_', '-')} cannot be a schedule, got {value}: {reason}."
            )
        valid = _range(config, field.name)
        if value is None or isinstance(value, bool) or valid is None:
            continue
        points = value.values() if isinstance(value, Schedule) else [schedules.value(value, 0)]
        for point in points:
            number = isinstance(point, (int, float)) and not isinstance(point, bool)
            if not (number and valid.contains(point)):
                shown = value if callable(value) else point
                raise ValueError(
                    f"--{field.name.replace('_', '-')} must be {valid.description}, got {shown}"
                    + (f" (it reaches {point})" if callable(value) else "")
                    + "."
                )

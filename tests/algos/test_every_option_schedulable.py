"""Every numeric option of every registered algorithm takes a schedule, read at the step
its iteration began (so fixed for the iteration) and logged as ``Schedule/<option>``; or
it is declared fixed for the run, refuses a schedule saying why, and the README and
``--help`` list it. The options are walked from the registry, so a new one is covered."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path

import pytest
import torch

import rlx
from rlx import schedules
from rlx.algos.config import fixed_options, fixed_reason, validate_config
from rlx.algos.registry import ALGORITHMS
from rlx.runner.config import schedulable

README = Path(__file__).resolve().parents[2] / "README.md"

# A small problem for each algorithm: (environment, config, policy width).
TINY: dict[str, tuple[str, dict, int]] = {
    "reinforce": ("CartPole-v1", dict(num_envs=2, horizon=20), 8),
    "reinforce-baseline": ("CartPole-v1", dict(num_envs=2, horizon=20), 8),
    "a2c": ("CartPole-v1", dict(num_envs=2, steps=4), 8),
    "ppo": ("CartPole-v1", dict(num_envs=2, steps=8, epochs=2, minibatches=2), 8),
    "offpac": ("CartPole-v1", dict(num_envs=2, horizon=20, updates=2, batch_episodes=2), 8),
    "dqn": ("CartPole-v1", dict(learning_starts=4, buffer_size=64, batch_size=4, n_step=2), 8),
    "c51": ("CartPole-v1", dict(learning_starts=4, buffer_size=64, batch_size=4, atoms=5), 8),
    "rainbow": ("CartPole-v1", dict(learning_starts=4, buffer_size=64, batch_size=4, atoms=5), 8),
    "r2d2": ("CartPole-v1", dict(num_envs=2, steps=4, sequence_length=3, burn_in=1,
                                 learning_starts=16, buffer_size=64, batch_size=2), 8),
    "ddpg": ("Pendulum-v1", dict(learning_starts=4, buffer_size=64, batch_size=4,
                                 critic_hidden=8), 8),
    "td3": ("Pendulum-v1", dict(learning_starts=4, buffer_size=64, batch_size=4,
                                critic_hidden=8), 8),
    "sac": ("Pendulum-v1", dict(learning_starts=4, buffer_size=64, batch_size=4,
                                critic_hidden=8), 8),
    "cmaes": ("CartPole-v1", dict(num_envs=2, horizon=10, candidate_episodes=1), 4),
}  # fmt: skip

# Options an algorithm inherits from a shared config but does not read, whatever their
# value (a schedule there is accepted and ignored, as a constant is).
IGNORED: dict[str, set[str]] = {
    "reinforce": {"value_coef"},  # no baseline, so no value loss
    "offpac": {"steps"},  # always samples whole episodes
    "cmaes": {"steps", "lr", "adam_eps", "gamma", "grad_clip", "entropy_coef"},  # no gradients
    **{name: {"horizon", "entropy_coef"} for name in ("dqn", "c51", "rainbow", "r2d2")},
    **{name: {"horizon", "entropy_coef"} for name in ("ddpg", "td3")},
    "sac": {"horizon"},  # its temperature is entropy_coef, read; horizon is not
}

# What an option needs to be read at all (beside the tiny config); "policy": its kind.
NEEDS: dict[str, dict] = {
    "steps": dict(episodes=False),
    "horizon": dict(episodes=True),
    "priority_alpha": dict(prioritized=True),
    "priority_beta": dict(prioritized=True),
    "noise_clip": dict(target_noise=0.1),
    "tau": dict(target_update_interval=1, policy_delay=1),  # a target update each time
    "sequence_length": dict(policy="gru"),
}

# A value to start from where the default is None ("off").
WHEN_NONE = {"value_clip": 0.2, "critic_lr": 1e-3, "entropy_coef": 0.1, "grad_clip": 1.0,
             "target_entropy": -1.0}  # fmt: skip


def numeric_kind(annotation) -> type | None:
    """int or float for a numeric option's annotation (bool is not), else None."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (
        typing.Union, type(int | None)) else (annotation,)  # fmt: skip
    kinds = [a for a in args if a in (int, float)]
    return kinds[0] if kinds else None


def numeric_options(name: str) -> list[tuple[str, type]]:
    config = ALGORITHMS[name].Config
    hints = typing.get_type_hints(config)
    fields = [(f.name, numeric_kind(hints[f.name])) for f in dataclasses.fields(config)]
    return [(field, kind) for field, kind in fields if kind is not None]


CASES = [(name, field, kind) for name in ALGORITHMS for field, kind in numeric_options(name)]


class Probe(schedules.Schedule):
    """``before`` until step ``switch``, then ``after``; remembers the steps it is read at
    (except while ``muted``: the logging of scheduled values)."""

    def __init__(self, before: float, after: float) -> None:
        super().__init__(before, after)
        self.before, self.after, self.switch = before, after, math.inf
        self.calls: list[int] = []
        self.muted = False

    def __call__(self, step: int) -> float:
        if not self.muted:
            self.calls.append(step)
        return self.before if step < self.switch else self.after

    def values(self) -> list[float]:
        return [self.before, self.after]


def build(name: str, constants_as_schedules: bool = False, **options):
    """The algorithm on its tiny problem, with ``options``; with
    ``constants_as_schedules`` each numeric option that takes a schedule and is set to a
    number gets ``constant(number)`` instead."""
    env, tiny, hidden = TINY[name]
    cls = ALGORITHMS[name]
    options = {**tiny, **options}
    kind = options.pop("policy", "mlp")
    torch.manual_seed(0)
    config = cls.Config(**options)
    if constants_as_schedules:
        hints = typing.get_type_hints(cls.Config)
        for field, _ in numeric_options(name):
            value = getattr(config, field)
            if schedulable(hints[field]) and value is not None and not callable(value):
                setattr(config, field, schedules.constant(value))
    agent = rlx.Agent(env, num_envs=config.num_envs, seed=0)
    policy = cls.default_policy(agent.observation_space, agent.action_space, config,
                                kind=kind, hidden=hidden)  # fmt: skip
    algo = cls(agent, policy, config)
    algo.seed(0)
    return algo


def warm_up(algo) -> None:
    """Iterate until a replay-based algorithm learns (everything is read from then on)."""
    for _ in range(50):
        if getattr(algo, "learning", True):
            return
        algo.iteration()
    raise AssertionError(f"{algo.name} did not start learning")


def test_every_algorithm_has_a_tiny_problem():
    assert set(TINY) == set(ALGORITHMS) and set(IGNORED) <= set(ALGORITHMS)


@pytest.mark.parametrize(("name", "field", "kind"), CASES, ids=[f"{n}-{f}" for n, f, _ in CASES])
def test_numeric_option_takes_a_schedule_or_is_fixed(name, field, kind):
    cls = ALGORITHMS[name]
    hints = typing.get_type_hints(cls.Config)
    default = getattr(cls.Config(), field)
    reason = fixed_reason(cls.Config, field)
    flag = "--" + field.replace("_", "-")
    if reason:  # refused at validation, saying why; not offered as a schedule
        assert not schedulable(hints[field]), f"{name}.{field} is fixed but typed as a schedule"
        config = cls.Config(**{field: schedules.constant(1 if default is None else default)})
        with pytest.raises(ValueError, match=re.escape(f"{flag} cannot be a schedule")) as err:
            validate_config(config)
        assert reason in str(err.value)
        return
    assert schedulable(hints[field]), f"{name}.{field}: type it {kind.__name__} | Schedule"
    if field in IGNORED.get(name, ()):
        return
    known = {f.name for f in dataclasses.fields(cls.Config)} | {"policy"}
    needs = {k: v for k, v in NEEDS.get(field, {}).items() if k in known}
    base = TINY[name][1].get(field, needs.get(field, default))
    base = WHEN_NONE.get(field, 1) if base is None else schedules.value(base, 0)
    if kind is int:  # a count that is not whole is rounded: 0.3 more, then 1.4 more
        before, after = base + 0.3, base + 1.4
    else:
        before, after = base, base / 2 if base else 0.1
    probe = Probe(before, after)
    algo = build(name, **{**needs, field: probe})
    logged = algo.scheduled

    def scheduled():
        probe.muted = True
        try:
            return logged()
        finally:
            probe.muted = False

    algo.scheduled = scheduled
    warm_up(algo)
    for expected in (before, after):
        if expected == after:
            probe.switch = algo.agent.total_steps  # from the next iteration on
        step, probe.calls = algo.agent.total_steps, []
        info = algo.iteration()
        assert probe.calls, f"{name} never read {field} in an iteration"
        assert set(probe.calls) == {step}, f"{name} read {field} at other steps: {probe.calls}"
        assert info[f"Schedule/{field}"] == expected


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_constant_schedules_train_exactly_as_constants(name):
    """Every schedulable option given as ``constant(value)`` trains as the value does."""

    def run(wrap: bool):
        algo = build(name, constants_as_schedules=wrap)
        warm_up(algo)
        infos = [algo.iteration() for _ in range(3)]
        logs = [
            sorted((k, v) for k, v in i.items() if not k.startswith("Schedule/")) for i in infos
        ]
        return repr(logs), [p.detach().clone() for p in algo.policy.parameters()]

    (plain_logs, plain), (wrapped_logs, wrapped) = run(False), run(True)
    assert plain_logs == wrapped_logs
    assert all(torch.equal(a, b) for a, b in zip(plain, wrapped, strict=True))


def test_fixed_options_are_listed_in_the_readme_and_help(capsys):
    from rlx.cli import train_parser

    section = README.read_text().split("### Hyper-parameters as functions of the step")[1]
    section = section.split("\n### ")[0]
    for name, cls in ALGORITHMS.items():
        help_text = " ".join(train_parser(name).format_help().split())
        for field, reason in fixed_options(cls.Config).items():
            assert f"`{field}`" in section, f"README: fixed option {field} is not listed"
            assert f"fixed for the run, not a schedule: {reason}" in help_text, (name, field)


def test_a_fixed_option_written_as_a_schedule_is_refused_on_the_command_line(capsys):
    from rlx.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "dqn", "CartPole-v1", "--buffer-size", "linear(1000, 2000, 100)"])
    err = capsys.readouterr().err
    assert (
        exit_info.value.code == 2
        and "--buffer-size: cannot be a schedule" in err
        and "allocated" in err
    )


def test_a_scheduled_n_step_beyond_the_replay_is_refused():
    algo = build("dqn", n_step=schedules.piecewise([(0, 2), (20, 100)], interpolate=False))
    while algo.agent.total_steps < 20:
        algo.iteration()
    with pytest.raises(ValueError, match="--n-step reaches 100"):
        algo.iteration()


def test_scheduled_counts_shape_the_iteration():
    """PPO's rollout length, epochs and minibatches follow their schedules (rounded):
    the steps sampled and the optimizer steps taken per iteration."""
    late = schedules.piecewise([(0, 0.0), (16, 1.0)], interpolate=False)
    ppo = build("ppo", steps=lambda s: 4 + 4 * late(s), epochs=lambda s: 1.2 + late(s),
                minibatches=lambda s: 1 + 2.6 * late(s))  # fmt: skip
    sampled, taken = [], []
    for _ in range(3):
        before = ppo.agent.total_steps
        ppo.iteration()
        sampled.append(ppo.agent.total_steps - before)
        taken.append(int(ppo.optimizer.state[ppo.optimizer.param_groups[0]["params"][0]]["step"]))
    assert sampled == [8, 8, 16]  # 2 environments; from step 16 on, 8 steps each
    assert taken == [1, 2, 2 + 2 * 4]  # epochs x minibatches: 1 x 1, then 2 x 4
    dqn = build("dqn", n_step=schedules.piecewise([(0, 1), (8, 3)], interpolate=False))
    warm_up(dqn)
    while dqn.agent.total_steps < 8:
        dqn.iteration()
        assert dqn.replay.n_step == 1
    dqn.iteration()
    assert dqn.replay.n_step == 3

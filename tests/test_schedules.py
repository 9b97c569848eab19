"""Hyper-parameters as functions of the step: the schedules, their written form, the CLI,
config.json, logging in progress.csv and resume."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rlx
from rlx import schedules
from rlx.algos.config import validate_config
from rlx.algos.pg import PPO, PPOConfig
from rlx.policies import make_policy
from rlx.runner import RunConfig, Runner
from rlx.runner.config import from_dict, to_dict


def test_shapes_pass_through_their_points():
    lin = schedules.linear(1.0, 0.1, 100)
    assert (lin(0), lin(50), lin(100), lin(10**6)) == (1.0, pytest.approx(0.55), 0.1, 0.1)
    late = schedules.linear(1.0, 0.0, 10, begin=20)
    assert (late(0), late(20), late(25), late(30)) == (1.0, 1.0, 0.5, 0.0)
    exp = schedules.exponential(1.0, 0.0, half_life=10)
    assert exp(0) == 1.0 and exp(10) == pytest.approx(0.5) and exp(20) == pytest.approx(0.25)
    cos = schedules.cosine(2.0, 0.0, 100)
    assert (cos(0), cos(50), cos(100), cos(200)) == (2.0, pytest.approx(1.0), 0.0, 0.0)
    pw = schedules.piecewise([(0, 1.0), (10, 0.5), (20, 0.5), (30, 0.0)])
    assert [pw(s) for s in (-5, 0, 5, 15, 25, 40)] == [1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    steps = schedules.piecewise([(0, 64), (100, 128)], interpolate=False)
    assert (steps(99), steps(100)) == (64, 128)
    assert schedules.constant(3)(12345) == 3


@pytest.mark.parametrize(
    "text",
    [
        "linear(1.0, 0.05, 10000)",
        "linear(1.0, 0.0, 10, 20)",
        "exponential(0.001, 1e-05, 5000)",
        "cosine(0.0003, 0.0, 100000)",
        "piecewise([(0, 1.0), (5000, 0.1)])",
        "piecewise([(0, 32), (1000, 64)], False)",
        "constant(0.5)",
    ],
)
def test_written_form_round_trips(text):
    schedule = schedules.parse(text)
    assert isinstance(schedule, schedules.Schedule)
    assert schedules.parse(repr(schedule)) == schedule
    assert [schedule(s) for s in (0, 7, 5000, 10**6)] == [
        schedules.parse(repr(schedule))(s) for s in (0, 7, 5000, 10**6)
    ]


def test_parse_refuses_code_and_unknown_names():
    assert schedules.parse("3e-4") == 3e-4 and schedules.parse(" 7 ") == 7
    for bad, fragment in [
        ("__import__('os').system('true')", "cannot read"),
        ("print(1)", "unknown schedule"),
        ("linear(1.0, x, 10)", "literal"),
        ("sawtooth(1, 2)", "unknown schedule"),
        ("linear(1.0, 0.1, 0)", "steps > 0"),
        ("fast", "cannot read"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            schedules.parse(bad)


def test_config_checks_the_values_a_schedule_reaches():
    validate_config(PPOConfig(clip=schedules.linear(0.3, 0.1, 1000)))
    with pytest.raises(ValueError, match=r"--clip must be positive.*reaches -0.1"):
        validate_config(PPOConfig(clip=schedules.linear(0.3, -0.1, 1000)))
    with pytest.raises(ValueError, match="--entropy-coef must be 0 or positive"):
        validate_config(PPOConfig(entropy_coef=lambda step: -1.0))


def test_config_json_keeps_schedules_and_names_functions(tmp_path):
    config = PPOConfig(clip=schedules.linear(0.3, 0.1, 1000), lr=schedules.cosine(1e-3, 0, 10))
    values = json.loads(json.dumps(to_dict(config)))
    assert values["clip"] == "linear(0.3, 0.1, 1000)"
    assert from_dict(PPOConfig, values) == config
    values = to_dict(PPOConfig(entropy_coef=lambda step: 0.01))
    with pytest.raises(ValueError, match="Python function.*rlx.schedules"):
        from_dict(PPOConfig, values)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlx.cli", *args], cwd=cwd, capture_output=True, text=True
    )


def test_scheduled_values_are_logged_and_followed(tmp_path):
    """Each schedule's value at the iteration's step goes to progress.csv, and the
    algorithm uses it (the learning rate is read back from the optimizer)."""
    run = RunConfig(algo="ppo", total_steps=1024, run_dir=str(tmp_path), progress=False,
                    plot=False, tensorboard=False)  # fmt: skip
    lr = schedules.linear(1e-3, 1e-4, 1024)
    clip = schedules.piecewise([(0, 0.3), (512, 0.1)], interpolate=False)
    config = PPOConfig(num_envs=4, steps=32, epochs=1, minibatches=1, lr=lr, clip=clip)
    Runner(run, config).train()
    with open(tmp_path / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"Schedule/lr", "Schedule/clip"} <= set(rows[0])
    done = 0
    for row in rows:
        assert float(row["Schedule/clip"]) == clip(done)
        assert float(row["LearningRate"]) == pytest.approx(lr(done))
        done = int(row["CumSteps"])
    assert float(rows[-1]["Schedule/clip"]) == 0.1
    saved = json.loads((tmp_path / "config.json").read_text())["algo"]
    assert saved["clip"] == repr(clip) and saved["lr"] == repr(lr)


def test_cli_takes_schedules_and_resume_restores_them(tmp_path):
    out = run_cli("train", "ppo", "CartPole-v1", "--total-steps", "512", "--num-envs", "2",
                  "--steps", "64", "--epochs", "1", "--clip", "linear(0.3, 0.1, 1024)",
                  "--no-progress", "--no-plot", "--no-tensorboard", "--run-dir", "r",
                  cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = run_cli("train", "--resume", "r", "--total-steps", "1024", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with open(tmp_path / "r" / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    clip = schedules.linear(0.3, 0.1, 1024)
    previous = [0] + [int(r["CumSteps"]) for r in rows[:-1]]
    assert [float(r["Schedule/clip"]) for r in rows] == pytest.approx([clip(s) for s in previous])
    bad = run_cli("train", "ppo", "CartPole-v1", "--clip", "linear(0.3, 0.1)", cwd=tmp_path)
    assert bad.returncode == 2 and "linear" in bad.stderr and "Traceback" not in bad.stderr


def test_torch_lr_scheduler_is_stepped_and_checkpointed(tmp_path):
    run = RunConfig(algo="ppo", total_steps=640, run_dir=str(tmp_path), progress=False,
                    plot=False, tensorboard=False, checkpoint_every=2)  # fmt: skip
    config = PPOConfig(num_envs=2, steps=64, epochs=1, minibatches=1, lr=1e-3,
                       lr_scheduler="StepLR(step_size=2, gamma=0.5)")  # fmt: skip
    Runner(run, config).train()
    with open(tmp_path / "progress.csv", newline="") as f:
        lrs = [float(r["LearningRate"]) for r in csv.DictReader(f)]
    assert lrs == pytest.approx([1e-3 * 0.5 ** (i // 2) for i in range(len(lrs))])
    resumed = Runner.resume(tmp_path, total_steps=896)
    assert resumed.algorithm.lr_scheduler.last_epoch == len(lrs)
    resumed.train()
    with open(tmp_path / "progress.csv", newline="") as f:
        more = [float(r["LearningRate"]) for r in csv.DictReader(f)]
    assert more == pytest.approx([1e-3 * 0.5 ** (i // 2) for i in range(len(more))])
    with pytest.raises(ValueError, match="lr-scheduler sets the learning rate"):
        PPOConfig(lr_scheduler="StepLR(step_size=2)", anneal_lr=True)
        PPO(rlx.Agent("CartPole-v1"), make_policy(*_spaces()),
            PPOConfig(lr_scheduler="StepLR(step_size=2)", anneal_lr=True))  # fmt: skip
    with pytest.raises(ValueError, match="not a scheduler"):
        PPO(rlx.Agent("CartPole-v1"), make_policy(*_spaces()),
            PPOConfig(lr_scheduler="Adam(lr=1)"))  # fmt: skip


def _spaces():
    agent = rlx.Agent("CartPole-v1")
    return agent.observation_space, agent.action_space


def test_python_functions_work_as_schedules():
    torch.manual_seed(0)
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    config = PPOConfig(num_envs=2, steps=16, epochs=1, minibatches=1,
                       entropy_coef=lambda step: 0.0 if step < 32 else 0.5)  # fmt: skip
    ppo = PPO(agent, make_policy(agent.observation_space, agent.action_space), config)
    first, second, third = (ppo.iteration() for _ in range(3))
    assert first["Schedule/entropy_coef"] == 0.0 and third["Schedule/entropy_coef"] == 0.5
    assert math.isfinite(second["PolicyLoss"])

"""Data-parallel training: real gloo process groups on CPU, two processes."""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import rlx
from rlx.algos.pg import A2C, A2CConfig
from rlx.core import distributed
from rlx.core.optim import adam, minimize
from rlx.fast.shared_mean import available
from rlx.runner import RunConfig, Runner
from rlx.runner.data_parallel import free_port, run_processes

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def run_ranks(fn, world: int, shared: bool, *args) -> None:
    """Run ``fn(rank, *args)`` in ``world`` spawned processes of one gloo group; with
    ``shared``, they say they are on one machine (the shared-memory mean serves them)."""
    port = free_port()
    context = mp.get_context("spawn")
    processes = [
        context.Process(target=_rank_main, args=(fn, rank, world, port, shared, args))
        for rank in range(world)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * world


def _rank_main(fn, rank: int, world: int, port: int, shared: bool, args) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), LOCAL_WORLD_SIZE=str(world if shared else 1))  # fmt: skip
    torch.set_num_threads(1)
    assert rlx.distributed.init() == (rank, world)
    assert (distributed._shared is not None) == (shared and available(world, world))
    try:
        fn(rank, *args)
    finally:
        distributed.shutdown()


# ------------------------------------------------------------- one update, two ways
def a2c(num_envs: int, seed: int) -> A2C:
    agent = rlx.Agent("CartPole-v1", num_envs=num_envs, seed=seed, vectorization="sync")
    config = A2CConfig(num_envs=num_envs, steps=16, grad_clip=0.05)  # the clip acts
    torch.manual_seed(0)  # the same initial weights everywhere
    policy = A2C.default_policy(agent.observation_space, agent.action_space, config)
    return A2C(agent, policy, config)


def update_half(rank: int, out: str) -> None:
    algo = a2c(num_envs=4, seed=4 * rank)  # environments 0-3 and 4-7 of the whole
    rollout = algo.agent(algo.policy).steps(16, deterministic=True)
    assert bool(rollout.valid.all())  # equal halves: the mean of the means is the mean
    for _ in range(3):
        algo.update(rollout)
    torch.save(algo.policy.state_dict(), f"{out}.{rank}")


SHARED = pytest.mark.parametrize("shared", [True, False], ids=["shared-memory", "all-reduce"])


@SHARED
def test_two_processes_on_half_batches_take_the_single_process_step(tmp_path, shared):
    run_ranks(update_half, 2, shared, str(tmp_path / "params"))
    whole = a2c(num_envs=8, seed=0)
    rollout = whole.agent(whole.policy).steps(16, deterministic=True)
    before = {k: v.clone() for k, v in whole.policy.state_dict().items()}
    for _ in range(3):
        whole.update(rollout)
    ranks = [torch.load(tmp_path / f"params.{r}") for r in range(2)]
    for name, value in whole.policy.state_dict().items():
        assert not torch.equal(value, before[name]) or "log_std" in name
        for params in ranks:
            torch.testing.assert_close(params[name], value, rtol=0, atol=1e-6)


def minimize_half(rank: int, out: str) -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1), nn.Linear(1, 1))
    x, y = torch.randn(10, 3), torch.randn(10, 1)
    if rank == 1:  # another start, which broadcast replaces with rank 0's
        with torch.no_grad():
            net[0].weight.add_(1.0)
    rlx.distributed.broadcast(net)
    unused = net[3].weight  # gets no gradient: stays without one, in every process
    net[3].requires_grad_(False)
    optimizer = adam(net.parameters(), lr=0.1)
    part = slice(5 * rank, 5 * rank + 5)
    for _ in range(2):
        norm = minimize(((net(x[part]) - y[part]) ** 2).mean(), optimizer, max_norm=0.5)
    assert unused.grad is None
    torch.save({"params": net.state_dict(), "norm": norm}, f"{out}.{rank}")


@SHARED
def test_minimize_averages_gradients_before_clipping(tmp_path, shared):
    run_ranks(minimize_half, 2, shared, str(tmp_path / "net"))
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1), nn.Linear(1, 1))
    x, y = torch.randn(10, 3), torch.randn(10, 1)
    net[3].requires_grad_(False)
    optimizer = adam(net.parameters(), lr=0.1)
    for _ in range(2):
        norm = minimize(((net(x) - y) ** 2).mean(), optimizer, max_norm=0.5)
    for rank in range(2):
        saved = torch.load(tmp_path / f"net.{rank}")
        torch.testing.assert_close(saved["norm"], norm, rtol=0, atol=1e-6)
        for name, value in net.state_dict().items():
            torch.testing.assert_close(saved["params"][name], value, rtol=0, atol=1e-6)


def test_outside_a_data_parallel_run_nothing_is_averaged():
    assert not distributed.active() and distributed.world_size() == 1
    assert rlx.distributed.init() == (0, 1)  # no WORLD_SIZE: one process
    assert distributed.all_gather(3) == [3] and distributed.broadcast_object(4) == 4


# ------------------------------------------------------------- rlx train --nproc
def train(tmp_path: Path, name: str, *options: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "rlx.cli", "train", "a2c", "CartPole-v1", "--run-dir",
            str(tmp_path / name), "--no-progress", "--no-tensorboard", "--no-plot", *options]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv") as f:
        return list(csv.DictReader(f))


def test_a_two_process_run_counts_both_and_resumes_exactly(tmp_path):
    common = ("--nproc", "2", "--num-envs", "2", "--checkpoint-every", "5")
    whole = train(tmp_path, "whole", *common, "--total-steps", "1200")
    assert whole.returncode == 0, whole.stderr
    first = train(tmp_path, "resumed", *common, "--total-steps", "600")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "resumed" / "checkpoints-rank1").is_dir()
    again = subprocess.run(
        [sys.executable, "-m", "rlx.cli", "train", "--resume", str(tmp_path / "resumed"),
         "--total-steps", "1200"], capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    a, b = rows(tmp_path / "whole"), rows(tmp_path / "resumed")
    clock = ("CumTime", "StepsPerSecond")
    assert [{k: v for k, v in r.items() if k not in clock} for r in a] == [
        {k: v for k, v in r.items() if k not in clock} for r in b
    ]
    # Both processes' steps: each iteration samples 2 processes x 2 environments x 5 steps.
    assert [int(r["CumSteps"]) for r in a[:3]] == [20, 40, 60]
    policies = [
        torch.load(sorted((tmp_path / "whole" / d).glob("*.pt"))[-1])["algorithm"]["policy"]
        for d in ("checkpoints", "checkpoints-rank1")
    ]
    for name, value in policies[0].items():
        assert torch.equal(value, policies[1][name])  # one model in both processes


@pytest.mark.slow
def test_ppo_on_two_processes_learns_cartpole(tmp_path):
    # The README's PPO settings, per process; one seed reached 150 at 36k steps (of both).
    done = subprocess.run(
        [sys.executable, "-m", "rlx.cli", "train", "ppo", "CartPole-v1", "--nproc", "2",
         "--num-envs", "8", "--steps", "32", "--epochs", "20", "--minibatches", "1",
         "--lr", "1e-3", "--anneal-lr", "--gamma", "0.98", "--lam", "0.8",
         "--total-steps", "60000", "--target-return", "150", "--run-dir", str(tmp_path / "ppo"),
         "--no-progress", "--no-tensorboard", "--no-plot"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    last = rows(tmp_path / "ppo")[-1]
    assert float(last["ReturnAverage"]) >= 150, last


CRASH = """
import sys
from rlx.runner import RunConfig, Runner

def crash(runner, row):
    if runner.rank == 1 and runner.iteration == 3:
        raise RuntimeError("rank one fails here")

run = RunConfig(algo="a2c", env="CartPole-v1", nproc=2, total_steps=10**9, run_dir=sys.argv[1],
                progress=False, tensorboard=False, plot=False)
Runner(run).train(callbacks=[crash])
"""


def test_a_failing_process_stops_the_run_in_seconds_with_its_error(tmp_path, capfd):
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    start = time.monotonic()
    code = run_processes([sys.executable, str(script), str(tmp_path / "run")], 2)
    took = time.monotonic() - start
    err = capfd.readouterr().err
    assert code == 1
    assert "rank one fails here" in err and "process 1 of the data-parallel run stopped" in err
    assert took < 60  # start-up included; rank 0 would otherwise wait 10 minutes


@pytest.mark.parametrize(
    "options, message",
    [
        (("--nproc", "64"), "more than this machine's"),
        (("--nproc", "2", "--sampler", "async"), "do not go together"),
        (("--nproc", "0"), "--nproc must be positive"),
    ],
)
def test_bad_nproc_is_one_line_and_exit_2(tmp_path, options, message):
    done = train(tmp_path, "bad", *options)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_cmaes_and_a_python_runner_say_how_to_start_a_data_parallel_run():
    with pytest.raises(ValueError, match="no gradient steps"):
        Runner(RunConfig(algo="cmaes", env="CartPole-v1", nproc=2))
    with pytest.raises(ValueError, match="torchrun"):
        Runner(RunConfig(algo="a2c", env="CartPole-v1", nproc=2))

"""The parallel sampler: same rollouts as serial, faults surface, nothing is left behind."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import DictTupleEnv, DictTuplePolicy

import rlx
from rlx.envs import ParallelVectorEnv, WorkerError
from rlx.policies import make_policy


class Raising(gym.Env):
    """CartPole that raises on its ``at``-th step."""

    def __init__(self, at: int) -> None:
        self.inner = gym.make("CartPole-v1")
        self.observation_space, self.action_space = (
            self.inner.observation_space,
            self.inner.action_space,
        )
        self.at, self.t = at, 0

    def reset(self, *, seed=None, options=None):
        return self.inner.reset(seed=seed)

    def step(self, action):
        self.t += 1
        if self.t == self.at:
            raise ValueError("boom from the environment")
        return self.inner.step(action)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); it is gone once reaped, or when its state is Z
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] == "Z"


def released(names: list[str]) -> bool:
    return not any(os.path.exists(f"/dev/shm/{name}") for name in names)


def same(a: rlx.Rollout, b: rlx.Rollout) -> bool:
    fields = ("observations", "next_observations", "actions", "rewards", "terminations",
              "truncations", "valid", "starts")  # fmt: skip
    leaves = lambda r, f: rlx.tree.tree_leaves(getattr(r, f))  # noqa: E731
    return all(
        torch.equal(x, y) for f in fields for x, y in zip(leaves(a, f), leaves(b, f), strict=True)
    )


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1", "tuple"])
def test_parallel_and_serial_samplers_give_identical_rollouts(env):
    make = DictTupleEnv if env == "tuple" else env
    serial = rlx.Agent(make, num_envs=5, seed=3, vectorization="sync")
    parallel = rlx.Agent(make, num_envs=5, seed=3, sampler="parallel", workers=2)
    if env == "tuple":
        policy = DictTuplePolicy()
    else:
        policy = make_policy(serial.observation_space, serial.action_space)
    with torch.no_grad():
        for _ in range(3):  # consecutive segments, across episode ends
            torch.manual_seed(7)
            a = serial(policy).steps(64)
            torch.manual_seed(7)
            b = parallel(policy).steps(64)
            assert same(a, b)
        torch.manual_seed(8)
        a = serial(policy).episode(100)
        torch.manual_seed(8)
        b = parallel(policy).episode(100)
    assert same(a, b)
    assert serial.pop_episodes() == parallel.pop_episodes()
    names, pids = parallel.env.shared_memory_names, parallel.env.worker_pids
    parallel.close()
    assert released(names) and all(gone(pid) for pid in pids.values())


def test_an_environment_error_names_the_environment_and_keeps_its_traceback():
    fns = [lambda: gym.make("CartPole-v1")] * 3 + [lambda: Raising(at=5)]
    env = ParallelVectorEnv(fns, workers=2)
    names, pids = env.shared_memory_names, env.worker_pids
    env.reset(seed=0)
    start = time.monotonic()
    with pytest.raises(WorkerError) as info:
        for _ in range(10):
            env.step(np.zeros(4, dtype=np.int64))
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "environment 3 raised during step" in message
    assert "ValueError: boom from the environment" in message and "Traceback" in message
    assert released(names) and all(gone(pid) for pid in pids.values())
    with pytest.raises(WorkerError, match="closed"):
        env.step(np.zeros(4, dtype=np.int64))


def test_a_killed_worker_is_detected_at_once():
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0, sampler="parallel", workers=2)
    policy = make_policy(agent.observation_space, agent.action_space)
    names, pids = agent.env.shared_memory_names, agent.env.worker_pids
    with torch.no_grad():
        agent(policy).steps(5)
        os.kill(pids[1], signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(WorkerError, match=r"worker 1 \(environments 2-3\) died .*signal 9"):
            agent(policy).steps(5)
    assert time.monotonic() - start < 5
    assert released(names) and all(gone(pid) for pid in pids.values())


def test_interrupting_training_leaves_no_process_or_shared_memory(tmp_path):
    script = tmp_path / "train.py"
    record = tmp_path / "record.txt"
    script.write_text(
        textwrap.dedent(f"""
        import faulthandler, signal
        faulthandler.register(signal.SIGUSR1)  # the test asks for a stack dump if it hangs
        # Ctrl-C as in a terminal, even where this test runs with SIGINT ignored (a
        # background job inherits that, and Python then installs no handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import json, torch, rlx
        from rlx.algos.pg import PPO
        from rlx.policies import make_policy
        agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0, sampler="parallel", workers=2)
        policy = make_policy(agent.observation_space, agent.action_space)
        ppo = PPO(agent, policy, PPO.Config(num_envs=4, steps=32, epochs=1))
        ppo.iteration()
        with open({str(record)!r}, "w") as f:
            json.dump([agent.env.worker_pids, agent.env.shared_memory_names], f)
        while True:
            ppo.iteration()
    """)
    )
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, str(script)], stderr=stderr)
    deadline = time.monotonic() + 60
    while not record.exists() or not record.read_text():
        assert time.monotonic() < deadline and process.poll() is None, log.read_text()
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        time.sleep(1)
        process.kill()
        pids, _ = json.loads(record.read_text())
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail(f"no exit 30 s after Ctrl-C; its stacks:\n{log.read_text()}")
    assert "KeyboardInterrupt" in log.read_text()
    pids, names = json.loads(record.read_text())
    time.sleep(0.5)
    assert pids and all(gone(pid) for pid in pids.values())
    assert released(names)


def test_bad_sampler_options_are_refused():
    with pytest.raises(ValueError, match="sampler must be"):
        rlx.Agent("CartPole-v1", sampler="threads")
    with pytest.raises(ValueError, match="leave vectorization out"):
        rlx.Agent("CartPole-v1", sampler="parallel", vectorization="sync")


def test_rlx_train_runs_with_the_parallel_sampler(tmp_path):
    from rlx.cli import main

    argv = ["train", "a2c", "CartPole-v1", "--sampler", "parallel", "--workers", "2",
            "--num-envs", "4", "--total-steps", "2000", "--no-progress", "--no-tensorboard",
            "--no-plot", "--run-dir", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    rows = (tmp_path / "run" / "progress.csv").read_text().splitlines()
    assert len(rows) > 10
    assert not multiprocessing.active_children()  # the workers were stopped and joined


def test_an_error_in_the_inline_group_is_reported_the_same_way():
    fns = [lambda: Raising(at=3)] + [lambda: gym.make("CartPole-v1")] * 3
    env = ParallelVectorEnv(fns, workers=2)
    names, pids = env.shared_memory_names, env.worker_pids
    env.reset(seed=0)
    with pytest.raises(WorkerError, match=r"environment 0 raised during step \(in the main"):
        for _ in range(5):
            env.step(np.zeros(4, dtype=np.int64))
    assert released(names) and all(gone(pid) for pid in pids.values())

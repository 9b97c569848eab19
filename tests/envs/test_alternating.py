"""The alternating sampler: the parallel sampler's rollouts, two halves taking turns."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import DictTupleEnv, DictTuplePolicy, GaussianPolicy, GRUPolicy, MLPPolicy

import rlx
from rlx.envs import ParallelVectorEnv, WorkerError

from .test_parallel import Raising, gone, released, same


def agents(make, num_envs: int = 6, workers: int = 2, seed: int = 3):
    parallel = rlx.Agent(make, num_envs=num_envs, seed=seed, sampler="parallel", workers=workers)
    alternating = rlx.Agent(
        make, num_envs=num_envs, seed=seed, sampler="alternating", workers=workers
    )
    return parallel, alternating


@pytest.mark.parametrize(
    "env, policy",
    [("CartPole-v1", MLPPolicy), ("CartPole-v1", GRUPolicy), ("Pendulum-v1", None)],
)
@pytest.mark.parametrize("dry", [False, True])
def test_same_rollouts_as_the_parallel_sampler(env, policy, dry):
    # Pendulum's Normal draws 3 values per half, 6 in all: fewer than 16, drawn value
    # after value either way.
    parallel, alternating = agents(env)
    net = policy() if policy is not None else GaussianPolicy(3, 1)
    with torch.no_grad():
        for _ in range(3):  # consecutive segments, across episode ends
            torch.manual_seed(7)
            a = parallel(net).steps(40, dry=dry)
            torch.manual_seed(7)
            b = alternating(net).steps(40, dry=dry)
            assert same(a, b)
            if not dry:  # forwards at half the batch: equal up to float rounding
                torch.testing.assert_close(a.logprobs, b.logprobs)
                if a.others:
                    torch.testing.assert_close(a.others[0], b.others[0])
                    torch.testing.assert_close(a.next_others[0], b.next_others[0])
                assert b.distributions.batch_shape == (40, 6)
        torch.manual_seed(8)
        a = parallel(net).episode(60)
        torch.manual_seed(8)
        b = alternating(net).episode(60)
    assert same(a, b)
    assert parallel.total_steps == alternating.total_steps
    assert sorted(parallel.pop_episodes()) == sorted(alternating.pop_episodes())
    names, pids = alternating.env.shared_memory_names, alternating.env.worker_pids
    assert len(pids) == 2  # no inline group: two workers, each with a share of both halves
    assert alternating.env.groups == [[range(0, 2), range(3, 4)], [range(2, 3), range(4, 6)]]
    for agent in (parallel, alternating):
        agent.close()
    assert released(names) and all(gone(pid) for pid in pids.values())


def test_several_action_components_sample_the_same_distribution():
    # Each half draws its Categorical, then its Normal: the order of the draws differs
    # from one batched call, so the actions do, but everything else is the same.
    parallel, alternating = agents(DictTupleEnv, num_envs=4)
    net = DictTuplePolicy()
    with torch.no_grad():
        torch.manual_seed(2)
        a = parallel(net).steps(12)
        torch.manual_seed(2)
        b = alternating(net).steps(12)
    assert b.distributions.batch_shape == (12, 4) and len(b.distributions.components) == 2
    torch.testing.assert_close(b.distributions.log_prob(b.actions), b.logprobs)
    torch.testing.assert_close(a.observations["position"][0], b.observations["position"][0])
    parallel.close()
    alternating.close()


@pytest.mark.parametrize(
    "num_envs, workers, groups",
    [
        # 7 environments: halves of 4 and 3, so 3 workers (each holds a share of both)
        (7, 4, [[range(0, 1), range(4, 5)], [range(1, 3), range(5, 6)],
                [range(3, 4), range(6, 7)]]),
        # one worker steps one half while the policy acts for the other
        (4, 1, [[range(0, 2), range(2, 4)]]),
    ],
    ids=["odd-sizes", "one-worker"],
)  # fmt: skip
def test_other_sizes_and_worker_counts(num_envs, workers, groups):
    parallel, alternating = agents("CartPole-v1", num_envs=num_envs, workers=workers)
    assert alternating.env.groups == groups
    net = MLPPolicy()
    with torch.no_grad():
        torch.manual_seed(1)
        a = parallel(net).steps(30)
        torch.manual_seed(1)
        b = alternating(net).steps(30)
    assert same(a, b)
    parallel.close()
    alternating.close()


def test_gradient_sampling_and_checkpoints_continue_the_same_episodes():
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0, sampler="alternating", workers=2)
    net = GRUPolicy()
    rollout = agent(net).steps(10)
    rollout.logprobs.sum().backward()  # sampled with gradient through both halves
    assert net.cell.weight_ih.grad is not None
    state = agent.state_dict(net)
    assert len(state["halves"]) == 2
    assert agent.load_state_dict(state, net) is False  # worker environments: not captured
    serial_state = rlx.Agent("CartPole-v1", num_envs=4).state_dict()
    with pytest.raises(ValueError, match="another sampler"):
        agent.load_state_dict(serial_state)
    agent.close()


def test_an_environment_error_or_a_killed_worker_stops_it_at_once():
    fns = [lambda: gym.make("CartPole-v1")] * 3 + [lambda: Raising(at=5)]
    env = ParallelVectorEnv(fns, workers=2, inline=False, parts=2)
    first, second = env.halves()
    names, pids = env.shared_memory_names, env.worker_pids
    first.reset(seed=0)
    second.reset(seed=0)
    with pytest.raises(WorkerError, match="environment 3 raised during step"):
        for _ in range(10):
            first.step_async(np.zeros(2, dtype=np.int64))
            second.step_async(np.zeros(2, dtype=np.int64))
            first.step_wait()
            second.step_wait()
    assert released(names) and all(gone(pid) for pid in pids.values())

    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0, sampler="alternating", workers=2)
    pids = agent.env.worker_pids
    with torch.no_grad():
        agent(MLPPolicy()).steps(5)
        os.kill(pids[0], signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(WorkerError, match=r"worker 0 \(environments 0, 2\) died"):
            agent(MLPPolicy()).steps(5)
    assert time.monotonic() - start < 5
    assert all(gone(pid) for pid in pids.values())


def test_per_environment_values_come_back_in_the_environments_order():
    fns = [lambda i=i: gym.make("CartPole-v1", max_episode_steps=10 + i) for i in range(5)]
    env = ParallelVectorEnv(fns, workers=2, inline=False, parts=2)
    # worker 0 holds environments 0, 2, 3; worker 1 holds 1, 4
    assert env.groups == [[range(0, 1), range(2, 4)], [range(1, 2), range(4, 5)]]
    assert [spec.max_episode_steps for spec in env.get_attr("spec")] == [10, 11, 12, 13, 14]
    env.close()


def test_views_are_seeded_like_the_whole():
    fns = [lambda: gym.make("CartPole-v1")] * 4
    whole = ParallelVectorEnv(fns, workers=2)
    split = ParallelVectorEnv(fns, workers=2, inline=False, parts=2)
    obs, _ = whole.reset(seed=11)
    first, second = split.halves()
    np.testing.assert_array_equal(np.concatenate([first.reset(seed=11)[0],
                                                  second.reset(seed=11)[0]]), obs)  # fmt: skip
    with pytest.raises(ValueError, match="parts=2"):
        whole.halves()
    with pytest.raises(ValueError, match="only with inline=False"):
        ParallelVectorEnv(fns, workers=2, parts=2)
    whole.close()
    split.close()


def test_bad_alternating_options_are_refused():
    with pytest.raises(ValueError, match="num_envs >= 2"):
        rlx.Agent("CartPole-v1", num_envs=1, sampler="alternating")
    with pytest.raises(ValueError, match="leave vectorization out"):
        rlx.Agent("CartPole-v1", num_envs=4, sampler="alternating", vectorization="sync")


def test_rlx_train_runs_with_the_alternating_sampler(tmp_path):
    from rlx.cli import main

    argv = ["train", "ppo", "CartPole-v1", "--sampler", "alternating", "--workers", "2",
            "--num-envs", "4", "--total-steps", "2000", "--no-progress", "--no-tensorboard",
            "--no-plot", "--run-dir", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    rows = (tmp_path / "run" / "progress.csv").read_text().splitlines()
    assert len(rows) > 2
    assert not multiprocessing.active_children()

"""Asynchronous sampling: batches tagged with versions, new weights reach the sampler,
faults surface, nothing is left running."""

from __future__ import annotations

import multiprocessing
import queue
import time

import pytest
import torch

import rlx
from rlx.algos.pg import PPO
from rlx.policies import make_policy
from rlx.sampling import AsyncSampler, SamplerError


def make_agent() -> rlx.Agent:
    return rlx.Agent("CartPole-v1", num_envs=2, seed=0)


def broken_agent() -> rlx.Agent:
    raise RuntimeError("no such environment here")


def always(policy: torch.nn.Module, action: int) -> None:
    """Make the ready MLP policy pick ``action`` with probability ~1."""
    with torch.no_grad():
        policy.head.linear.weight.zero_()
        policy.head.linear.bias.copy_(torch.tensor([50.0, -50.0][:: 1 if action == 0 else -1]))


def test_batches_carry_versions_and_published_weights_reach_the_sampler():
    agent = make_agent()
    policy = make_policy(agent.observation_space, agent.action_space)
    always(policy, 0)
    sampler = AsyncSampler(make_agent, policy, steps=16, max_queue=1)
    try:
        rollout, version = sampler.get()
        assert version == 0 and rollout.shape == (16, 2)
        assert (rollout.actions[rollout.valid] == 0).all()
        always(policy, 1)
        sampler.publish()
        # at most max_queue + 1 batches were sampled before the new weights arrived
        for _ in range(4):
            rollout, version = sampler.get()
            if version == 1:
                break
        assert version == 1
        assert (rollout.actions[rollout.valid] == 1).all()
        assert torch.isfinite(rollout.logprobs).all() and sampler.total_steps > 0
    finally:
        sampler.close()
    assert not multiprocessing.active_children()


def test_ppo_trains_from_the_asynchronous_sampler():
    agent = make_agent()
    policy = make_policy(agent.observation_space, agent.action_space)
    ppo = PPO(agent, policy, PPO.Config(num_envs=2, steps=32, epochs=2, minibatches=2))
    ppo.sampler = AsyncSampler(make_agent, policy, steps=32)
    try:
        before = [p.clone() for p in policy.parameters()]
        for _ in range(3):
            info = ppo.iteration()
        assert 0 <= info["PolicyLag"] <= 3
        assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))
    finally:
        ppo.sampler.close()


def test_a_failing_sampler_raises_in_the_learner():
    agent = make_agent()
    policy = make_policy(agent.observation_space, agent.action_space)
    sampler = AsyncSampler(broken_agent, policy, steps=8)
    with pytest.raises(SamplerError, match="no such environment here"):
        sampler.get(timeout=60)
    assert sampler.closed


def make_group(index: int) -> rlx.Agent:
    return rlx.Agent("CartPole-v1", num_envs=2, seed=100 * index)


def test_workers_that_act_return_one_joined_rollout_from_the_latest_weights():
    from rlx.sampling import WorkerSampler

    agent = make_agent()
    policy = make_policy(agent.observation_space, agent.action_space)
    always(policy, 1)
    sampler = WorkerSampler(make_group, policy, steps=12, workers=2)
    try:
        rollout, version = sampler.get()
        assert rollout.shape == (12, 4) and version == 0
        assert (rollout.actions[rollout.valid] == 1).all()
        always(policy, 0)
        sampler.publish()
        rollout, version = sampler.get()  # synchronous: the new weights at once
        assert version == 1 and (rollout.actions[rollout.valid] == 0).all()
        # the two groups were seeded apart, so their first observations differ
        assert not torch.equal(rollout.observations[0, :2], rollout.observations[0, 2:])
    finally:
        sampler.close()
    assert not multiprocessing.active_children()


def test_rlx_train_with_the_asynchronous_sampler(tmp_path, capsys):
    from rlx.cli import main

    base = ["--num-envs", "2", "--steps", "32", "--no-progress", "--no-tensorboard",
            "--no-plot"]  # fmt: skip
    run_dir = tmp_path / "async"
    argv = ["train", "ppo", "CartPole-v1", "--sampler", "async", "--total-steps", "640",
            "--epochs", "2", "--run-dir", str(run_dir), *base]  # fmt: skip
    assert main(argv) == 0
    header, *rows = (run_dir / "progress.csv").read_text().splitlines()
    steps = [int(r.split(",")[header.split(",").index("CumSteps")]) for r in rows]
    assert steps[-1] >= 640 and steps == sorted(steps)
    assert "PolicyLag" in header
    assert not multiprocessing.active_children()
    assert main(["train", "offpac", "CartPole-v1", "--sampler", "async", *base]) == 2
    assert "--sampler async samples fixed-length segments" in capsys.readouterr().err


class FlakyQueue:
    """A queue whose first batch cannot be read back (its sender has exited) and whose
    second can."""

    def __init__(self) -> None:
        self.items: list = [EOFError(), "batch"]
        self.closed = False

    def get_nowait(self):
        if not self.items:
            raise queue.Empty
        item = self.items.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self.closed = True

    def cancel_join_thread(self) -> None:
        pass


def test_closing_drains_past_batches_whose_sender_has_exited():
    # A batch's tensors come through a file descriptor their sending process hands over;
    # if it is exiting, reading the batch fails (EOFError). Closing drops it, drains the
    # rest and stops the process.
    from rlx.sampling.asynchronous import ProcessSampler

    ctx = torch.multiprocessing.get_context("spawn")
    stop, out = ctx.Event(), FlakyQueue()
    process = ctx.Process(target=time.sleep, args=(0,))
    process.start()
    sampler = object.__new__(ProcessSampler)
    sampler.closed = False
    sampler._stop_process(process, out, stop)
    assert sampler.closed and stop.is_set() and out.closed
    assert out.items == [] and not process.is_alive()

"""Asynchronous sampling into a shared replay: the replay ratio kept, faults surface,
nothing is left running."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import torch

import rlx
from rlx.sampling import SamplerError


def broken_agent() -> rlx.Agent:
    raise RuntimeError("no such environment here")


def make_one() -> rlx.Agent:
    return rlx.Agent("CartPole-v1", num_envs=1, seed=0)


def test_a_replay_sampler_fills_the_shared_replay_and_keeps_the_replay_ratio():
    from rlx.algos.dqn import DQN, DQNConfig
    from rlx.sampling import ReplaySampler

    agent = make_one()
    config = DQNConfig(learning_starts=200, steps=4, batch_size=16, prioritized=True)
    dqn = DQN(agent, DQN.default_policy(agent.observation_space, agent.action_space, config,
                                        hidden=16), config)  # fmt: skip
    dqn.sampler = ReplaySampler(make_one, dqn, replay_ratio=2.0, lead=100)
    try:
        before = [p.clone() for p in dqn.policy.parameters()]
        while dqn.updates < 100:
            info = dqn.iteration()
        produced, consumed = (int(x) for x in dqn.sampler.counts)
        assert consumed == 16 * dqn.updates  # every update drew one batch
        assert consumed <= 2.0 * (produced - 200) + 16  # never above the ratio
        assert produced - 200 <= consumed / 2.0 + 100 + 4 + 16  # nor the sampler far ahead
        assert len(dqn.replay) >= produced - 4 and agent.total_steps <= produced
        assert info["Epsilon"] < 1.0 and info["Loss"] == info["Loss"]
        assert any(not torch.equal(a, b) for a, b in zip(before, dqn.policy.parameters(),
                                                         strict=True))  # fmt: skip
        assert dqn.replay.tree.total > 0  # the sampler's priorities reach the learner's tree
    finally:
        dqn.sampler.close()
    assert not multiprocessing.active_children()


def test_a_failing_replay_sampler_raises_in_the_learner():
    from rlx.algos.dqn import DQN, DQNConfig
    from rlx.sampling import ReplaySampler

    agent = make_one()
    config = DQNConfig(learning_starts=10)
    dqn = DQN(agent, DQN.default_policy(agent.observation_space, agent.action_space, config,
                                        hidden=8), config)  # fmt: skip
    dqn.sampler = ReplaySampler(broken_agent, dqn)
    with pytest.raises(SamplerError, match="no such environment here"):
        for _ in range(2000):
            dqn.iteration()
            time.sleep(0.01)
    assert dqn.sampler.closed


def test_rlx_train_a_replay_based_algorithm_asynchronously(tmp_path):
    from rlx.cli import main

    run_dir = tmp_path / "sac"
    argv = ["train", "sac", "Pendulum-v1", "--sampler", "async", "--total-steps", "400",
            "--learning-starts", "100", "--batch-size", "32", "--hidden", "16",
            "--critic-hidden", "16", "--no-progress", "--no-tensorboard", "--no-plot",
            "--run-dir", str(run_dir)]  # fmt: skip
    assert main(argv) == 0
    header, *rows = (run_dir / "progress.csv").read_text().splitlines()
    assert "CriticLoss" in header and len(rows) > 1
    assert not multiprocessing.active_children()

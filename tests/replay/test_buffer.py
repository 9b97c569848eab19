"""Transition replay: n-step windows, uniform and prioritized draws, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import MLPPolicy, counting_vec

import rlx
from rlx.replay import PrioritizedReplay, ReplayBuffer, SumTree


def counting_rollout(lengths: list[int], steps: int, truncate: bool = False) -> rlx.Rollout:
    """CountingEnv columns: observation [step, env], reward = step, episodes of ``lengths``."""
    agent = rlx.Agent(counting_vec(lengths, truncate, mode="SameStep"), seed=0)
    with torch.no_grad():
        return agent(MLPPolicy(obs_dim=2)).steps(steps)


def test_sum_tree_samples_in_proportion_and_updates_in_batches():
    tree = SumTree(5)
    tree.update(np.arange(5), np.array([1.0, 2.0, 3.0, 0.0, 4.0]))
    assert tree.total == 10.0
    assert tree.find(np.array([0.5, 1.0, 1.5, 3.0, 6.0, 6.01, 10.0])).tolist() == [
        0,
        0,
        1,
        1,
        2,
        4,
        4,
    ]
    draws = tree.sample(100_000, np.random.default_rng(0))
    np.testing.assert_allclose(
        np.bincount(draws, minlength=5) / 1e5, [0.1, 0.2, 0.3, 0, 0.4], atol=0.01
    )
    tree.update(np.array([4, 4]), np.array([5.0, 1.0]))  # the last value wins
    assert tree.total == 7.0
    with pytest.raises(ValueError, match="non-negative"):
        tree.update(np.array([0]), np.array([-1.0]))


@pytest.mark.parametrize("truncate", [False, True])
def test_n_step_returns_stop_at_episode_ends_and_bootstrap_only_after_truncation(truncate):
    rollout = counting_rollout([3], steps=6, truncate=truncate)  # rewards 1 2 3 | 1 2 3
    buffer = ReplayBuffer(100, n_step=3, gamma=0.5)
    buffer.add(rollout)
    batch = buffer.sample(500)
    first_obs = batch.observations[0, :, 0]  # the step count at the sampled observation
    for i in range(500):
        k = int(first_obs[i])  # 0, 1 or 2 steps into its episode
        rewards = [float(r) for r in range(k + 1, 4)]  # to the episode's end (within 3)
        expected = sum(r * 0.5**j for j, r in enumerate(rewards))
        assert batch.rewards[0, i].item() == pytest.approx(expected)
        assert batch.discounts[0, i].item() == pytest.approx(0.5 ** len(rewards))
        assert batch.next_observations[0, i, 0].item() == 3  # where the episode ended
        assert bool(batch.terminations[0, i]) is not truncate
        assert bool(batch.truncations[0, i]) is truncate


def test_windows_stop_at_the_newest_step_and_skip_overwritten_data():
    buffer = ReplayBuffer(6, n_step=4, gamma=1.0)  # 6 steps of one environment
    buffer.add(counting_rollout([100], steps=4))  # rewards 1..4
    # a second agent's rollout: it starts a new episode and wraps around the ring
    buffer.add(counting_rollout([100], steps=4))
    batch = buffer.sample(300)
    for i in range(300):
        start = int(batch.observations[0, i, 0])
        # a window ends at its rollout's last step: the newest one, or the next's start
        assert batch.rewards[0, i].item() == sum(range(start + 1, min(start + 4, 4) + 1))


def test_prioritized_replay_prefers_large_errors_and_weights_correct_for_it():
    buffer = PrioritizedReplay(64, alpha=1.0, beta=1.0)
    buffer.add(counting_rollout([8, 8], steps=16))
    batch = buffer.sample(32)
    assert (batch.weights == 1).all()  # all priorities equal at first
    assert sorted(batch.indices.tolist()) == list(range(32))  # stratified: each once
    errors = np.where(np.arange(32) == 0, 100.0, 1.0)
    buffer.update_priorities(batch.indices, errors)
    again = buffer.sample(4000)
    favourite = again.indices == batch.indices[0]
    assert np.mean(favourite) == pytest.approx(100 / 131, abs=0.03)
    w = again.weights[0]
    # P(favourite) is 100 times another's: its weight (N P)^-1 is 100 times smaller
    assert w[torch.as_tensor(~favourite)].min().item() == pytest.approx(1.0)
    assert w[torch.as_tensor(favourite)].max().item() == pytest.approx(0.01, rel=1e-3)


def test_a_buffer_round_trips_through_a_weights_only_checkpoint(tmp_path):
    buffer = PrioritizedReplay(64, n_step=2)
    buffer.add(counting_rollout([5, 7], steps=10))
    buffer.update_priorities(np.array([0, 3]), np.array([5.0, 2.0]))
    torch.save(buffer.state_dict(), tmp_path / "replay.pt")
    copy = PrioritizedReplay(64, n_step=2, seed=123)
    copy.load_state_dict(torch.load(tmp_path / "replay.pt", weights_only=True))
    a, b = buffer.sample(50), copy.sample(50)
    assert np.array_equal(a.indices, b.indices)
    torch.testing.assert_close(a.rewards, b.rewards)
    torch.testing.assert_close(a.observations, b.observations)


def test_sampled_batches_evaluate_like_rollouts():
    buffer = ReplayBuffer(64)
    buffer.add(counting_rollout([5, 7], steps=10))
    batch = buffer.sample(16)
    assert batch.shape == (1, 16) and batch.dry
    agent = rlx.Agent(counting_vec([5, 7], mode="SameStep"))
    evaluated = agent(MLPPolicy(obs_dim=2)).evaluate(batch)
    assert evaluated.logprobs.shape == (1, 16)


def test_clear_errors():
    with pytest.raises(ValueError, match="no transition yet"):
        ReplayBuffer(10).sample(4)
    buffer = ReplayBuffer(10, n_step=3)
    buffer.add(counting_rollout([5, 7], steps=2))
    with pytest.raises(ValueError, match="stores 2 environments"):
        buffer.add(counting_rollout([5], steps=2))
    with pytest.raises(ValueError, match="need at least 4"):
        ReplayBuffer(6, n_step=3).add(counting_rollout([5, 7], steps=2))


def test_one_step_samples_are_the_stored_transitions():
    buffer = ReplayBuffer(64, gamma=0.9)
    buffer.add(counting_rollout([5, 7], steps=10))
    batch = buffer.sample(64)
    step = batch.observations[0, :, 0]
    torch.testing.assert_close(batch.rewards[0], step + 1)  # CountingEnv: reward = step + 1
    torch.testing.assert_close(batch.next_observations[0, :, 0], step + 1)
    assert torch.allclose(batch.discounts, torch.tensor(0.9))
    ended = batch.terminations[0]
    assert bool((ended == (step + 1 == torch.where(batch.observations[0, :, 1] == 0, 5, 7))).all())


def test_observations_may_be_stored_narrower_and_come_back_in_their_dtype():
    rollout = counting_rollout([7], steps=20)
    wide, narrow = ReplayBuffer(40), ReplayBuffer(40, obs_dtype=torch.float16)
    wide.add(rollout)
    narrow.add(rollout)
    assert narrow.storage["observations"].dtype == torch.float16
    assert narrow.storage["observations"].nbytes * 2 == wide.storage["observations"].nbytes
    batch = narrow.sample(32)
    assert batch.observations.dtype == batch.next_observations.dtype == torch.float32
    exact = wide.storage["observations"].reshape(-1, 2)[torch.as_tensor(batch.indices)]
    torch.testing.assert_close(batch.observations[0], exact)  # small integers: exact in half
    clone = ReplayBuffer(40, obs_dtype=torch.float16)
    clone.load_state_dict(torch.load(_saved(narrow.state_dict()), weights_only=True))
    assert clone.sample(4).observations.dtype == torch.float32


def _saved(state):
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer

"""Sequence replay for recurrent agents, and evaluating with a burn-in."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import GRUPolicy, MLPPolicy, counting_vec

import rlx
from rlx.replay import SequenceReplay, sequence_priority


def gru_rollouts(lengths: list[int], steps: int, chunks: int, policy=None):
    """Consecutive ``steps()`` segments of CountingEnv columns (observation [step, env])."""
    agent = rlx.Agent(counting_vec(lengths, mode="SameStep"), seed=0)
    policy = policy or GRUPolicy(obs_dim=2)
    with torch.no_grad():
        return policy, agent, [agent(policy).steps(steps) for _ in range(chunks)]


def test_sequences_are_consecutive_steps_with_the_state_that_entered_them():
    policy, _, segments = gru_rollouts([5, 7], steps=6, chunks=5)  # 30 steps, 2 envs
    replay = SequenceReplay(1000, length=4, burn_in=2, stride=3)
    for segment in segments:
        replay.add(segment)
    full = rlx.cat(segments, dim=0)
    batch = replay.sample(200)
    assert batch.shape == (6, 200) and batch.dry
    assert len(replay) == 2 * 9  # starts 0, 3, ..., 24 whose 6 steps are all stored
    for i in range(200):
        slot, env = divmod(int(batch.indices[i]), 2)
        start = slot * 3
        expected = full[start : start + 6, env]
        for name in ("observations", "actions", "rewards", "starts", "terminations"):
            assert torch.equal(getattr(batch, name)[:, i], getattr(expected, name)[:, 0]), name
        torch.testing.assert_close(batch.recurrent_states[0, i], full.recurrent_states[start, env])
        assert torch.isnan(batch.recurrent_states[1:, i]).all()  # only the first is stored


def test_sequences_are_overwritten_in_order_and_never_sampled_half_written():
    _, _, segments = gru_rollouts([4], steps=5, chunks=8)  # 40 steps of one env
    replay = SequenceReplay(12, length=3, burn_in=0, stride=3)  # a ring of 12 steps
    for k, segment in enumerate(segments):
        replay.add(segment)
        written = 5 * (k + 1)
        starts = replay.sample(500).observations[0, :, 0]  # step counter within episodes
        slots = set(replay.sample(500).indices.tolist())
        assert all(written - 12 <= replay.slot_start[s] <= written - 3 for s in slots)
        assert len(starts) == 500


def test_burn_in_evaluates_the_rest_from_the_policy_s_own_state():
    policy, agent, (rollout,) = gru_rollouts([6, 9], steps=20, chunks=1)
    full = agent(policy).evaluate(rollout)
    burned = agent(policy).evaluate(rollout, burn_in=5)
    torch.testing.assert_close(burned.logprobs, full.logprobs[5:])
    torch.testing.assert_close(burned.others[0], full.others[0][5:])
    # With other weights the stored states are stale: burn-in recomputes them, as a
    # full evaluation from the first stored state would.
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn_like(p))
    stale = agent(policy).evaluate(rollout[5:])
    fresh = agent(policy).evaluate(rollout, burn_in=5)
    again = agent(policy).evaluate(rollout)
    torch.testing.assert_close(fresh.logprobs, again.logprobs[5:])
    assert not torch.allclose(stale.logprobs, again.logprobs[5:])
    assert torch.equal(fresh.observations, rollout.observations[5:])
    with pytest.raises(ValueError, match="burn_in"):
        agent(policy).evaluate(rollout, burn_in=20)
    # a feed-forward policy just skips the first steps
    mlp = MLPPolicy(obs_dim=2)
    torch.testing.assert_close(
        agent(mlp).evaluate(rollout.as_dry(), burn_in=3).logprobs,
        agent(mlp).evaluate(rollout.as_dry()).logprobs[3:],
    )


def test_prioritized_sequences_follow_their_priorities_and_survive_a_checkpoint():
    _, _, segments = gru_rollouts([50], steps=20, chunks=2)
    replay = SequenceReplay(200, length=5, prioritized=True, alpha=1.0, beta=1.0)
    for segment in segments:
        replay.add(segment)
    assert len(replay) == 8
    ids = np.arange(8)
    replay.update_priorities(ids, torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 3.0]))
    batch = replay.sample(4000)
    counts = np.bincount(batch.indices, minlength=8)
    assert counts[1:7].sum() < 20 and abs(counts[7] / counts[0] - 3) < 0.4
    assert batch.weights[batch.indices == 7].max() < batch.weights[batch.indices == 0].min()
    clone = SequenceReplay(200, length=5, prioritized=True, alpha=1.0, beta=1.0)
    clone.load_state_dict(replay.state_dict())
    a, b = replay.sample(64), clone.sample(64)
    assert np.array_equal(a.indices, b.indices) and torch.equal(a.observations, b.observations)


def test_sequence_priority_mixes_the_largest_and_mean_error_over_valid_steps():
    errors = torch.tensor([[1.0, -2.0], [3.0, 0.0], [100.0, 1.0]])
    valid = torch.tensor([[True, True], [True, True], [False, True]])
    torch.testing.assert_close(
        sequence_priority(errors, valid, eta=0.9),
        torch.tensor([0.9 * 3 + 0.1 * 2, 0.9 * 2 + 0.1 * 1]),
    )


def test_clear_errors():
    replay = SequenceReplay(100, length=5)
    with pytest.raises(ValueError, match="no complete sequence"):
        replay.sample(1)
    agent = rlx.Agent(counting_vec([4]), seed=0)
    with torch.no_grad():
        flat = agent(MLPPolicy(obs_dim=2)).steps(4)
    with pytest.raises(ValueError, match="recurrent states"):
        replay.add(flat)
    with pytest.raises(ValueError, match="need at least"):
        SequenceReplay(10, length=8).add(gru_rollouts([4], 4, 1)[2][0])


@pytest.mark.parametrize("recurrent", [True, False])
def test_sequences_keep_states_only_when_the_agent_has_them_also_after_a_checkpoint(recurrent):
    policy = GRUPolicy(obs_dim=2) if recurrent else MLPPolicy(obs_dim=2)
    _, agent, segments = gru_rollouts([50], steps=10, chunks=2, policy=policy)
    replay = SequenceReplay(200, length=5, states=None)
    replay.add(segments[0])
    clone = SequenceReplay(200, length=5, states=None)
    clone.load_state_dict(replay.state_dict())
    with torch.no_grad():
        later = agent(policy).steps(10)
    for buffer in (replay, clone):
        buffer.add(segments[1])
        buffer.add(later)
    a, b = replay.sample(16), clone.sample(16)
    assert torch.equal(a.observations, b.observations)
    if recurrent:  # the states written after the checkpoint are there too
        assert len(replay) == 6 and torch.equal(clone.states, replay.states)
        assert clone.states.data_ptr() != replay.states.data_ptr()  # loaded as a copy
        torch.testing.assert_close(b.recurrent_states[0], a.recurrent_states[0])
    else:
        assert a.recurrent_states is None and b.recurrent_states is None

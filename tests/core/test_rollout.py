"""Rollout operations keep every field aligned (hypothesis) and behave as documented."""

import numpy as np
import pytest
import torch
from helpers import GRUPolicy, MLPPolicy, counting_vec
from hypothesis import given, settings
from hypothesis import strategies as st

import rlx
from rlx.core.deferred import Deferred


def tagged(T: int, B: int, offset: int = 0, dry: bool = False) -> rlx.Rollout:
    """A rollout whose every per-step field encodes its own (t, b): id = 1000 * t + b + offset."""
    ids = (torch.arange(T)[:, None] * 1000 + torch.arange(B)[None, :] + offset).float()
    valid = (ids.long() % 7) != 3
    z = lambda x: torch.where(valid, x, torch.zeros(()))
    extras = dict(
        logprobs=z(ids + 0.1),
        entropy=z(ids + 0.2),
        others=(z(ids + 0.3), (z(ids + 0.4), z(ids)[..., None].expand(T, B, 2))),
        next_others=(z(ids + 0.5), (z(ids), z(ids)[..., None].expand(T, B, 2))),
        returns=z(ids + 0.6),
        advantages=z(ids + 0.7),
    )
    return rlx.Rollout(
        observations={
            "a": z(ids)[..., None],
            "b": (z(ids).long(), z(ids)[..., None, None].expand(T, B, 2, 2)),
        },
        next_observations={
            "a": z(ids + 1)[..., None],
            "b": (z(ids).long(), z(ids)[..., None, None].expand(T, B, 2, 2)),
        },
        actions=(z(ids).long(), z(ids)[..., None]),
        rewards=z(ids),
        terminations=valid & (ids.long() % 5 == 0),
        truncations=valid & (ids.long() % 5 == 1),
        valid=valid,
        starts=valid & (ids.long() % 5 == 2),
        recurrent_states=z(ids)[..., None].expand(T, B, 3).clone(),
        dry=dry,
        **({} if dry else extras),
    )


def assert_aligned(r: rlx.Rollout) -> None:
    """Every field at (t, b) carries the same id as r.rewards[t, b]."""
    ids = r.rewards
    v = r.valid
    assert torch.equal(r.observations["a"][..., 0], ids)
    assert torch.equal(r.observations["b"][0].float(), ids)
    assert torch.equal(r.observations["b"][1][..., 1, 1], ids)
    assert torch.equal(r.next_observations["a"][..., 0][v], ids[v] + 1)
    assert torch.equal(r.actions[0].float(), ids) and torch.equal(r.actions[1][..., 0], ids)
    assert torch.equal(r.recurrent_states[..., 2], ids)
    i = ids.long()
    assert torch.equal(r.terminations, v & (i % 5 == 0))
    assert torch.equal(r.truncations, v & (i % 5 == 1))
    assert torch.equal(r.starts, v & (i % 5 == 2))
    if not r.dry:
        torch.testing.assert_close(r.logprobs[v], ids[v] + 0.1)
        torch.testing.assert_close(r.entropy[v], ids[v] + 0.2)
        torch.testing.assert_close(r.others[0][v], ids[v] + 0.3)
        torch.testing.assert_close(r.others[1][0][v], ids[v] + 0.4)
        assert torch.equal(r.others[1][1][..., 1], ids)
        torch.testing.assert_close(r.next_others[0][v], ids[v] + 0.5)
        torch.testing.assert_close(r.returns[v], ids[v] + 0.6)
        torch.testing.assert_close(r.advantages[v], ids[v] + 0.7)


shapes = st.tuples(st.integers(1, 9), st.integers(1, 6))


@settings(max_examples=40, deadline=None)
@given(shapes, st.data())
def test_slicing_keeps_fields_aligned(shape, data):
    T, B = shape
    r = tagged(T, B)
    t0 = data.draw(st.integers(-T, T - 1))
    t1 = data.draw(st.integers(-T, T))
    b_idx = data.draw(st.lists(st.integers(0, B - 1), min_size=1, max_size=B))
    for part in (r[t0:t1], r[t0], r[:, b_idx], r[t0:t1, torch.tensor(b_idx)], r[:-1], r[:100]):
        assert_aligned(part)
        assert part.rewards.dim() == 2
    assert len(r[t0]) == 1 and len(r[:100]) == T


@settings(max_examples=40, deadline=None)
@given(shapes, shapes, st.booleans())
def test_concatenation_keeps_fields_aligned(s1, s2, dry):
    r1, r2 = tagged(*s1, dry=dry), tagged(*s2, offset=500, dry=dry)
    joined = r1 + r2  # along environments, padded in time
    assert joined.shape == (max(s1[0], s2[0]), s1[1] + s2[1])
    assert_aligned(joined)
    assert joined.num_steps == r1.num_steps + r2.num_steps
    assert not joined.valid[s1[0] :, : s1[1]].any()
    if s1[1] == s2[1]:
        along_time = rlx.cat([r1, r2], dim=0)
        assert along_time.shape == (s1[0] + s2[0], s1[1])
        assert_aligned(along_time)


@settings(max_examples=40, deadline=None)
@given(shapes, st.integers(0, 2**31), st.booleans())
def test_shuffle_and_vectorize_keep_fields_aligned(shape, seed, dry):
    r = tagged(*shape, dry=dry)
    before = torch.random.get_rng_state()
    g = torch.Generator().manual_seed(seed)
    shuffled = tagged(*shape, dry=dry).shuffle(generator=g)
    assert torch.equal(torch.random.get_rng_state(), before)  # global RNG untouched
    assert_aligned(shuffled)
    assert sorted(shuffled.rewards[0].tolist()) == sorted(r.rewards[0].tolist())
    again = tagged(*shape, dry=dry).shuffle(generator=torch.Generator().manual_seed(seed))
    assert torch.equal(again.rewards, shuffled.rewards)  # reproducible with a generator
    flat = r.vectorize()
    assert flat.shape == (1, r.num_steps) and flat.valid.all()
    assert_aligned(flat)
    assert_aligned(flat.shuffle())
    batches = list(flat.minibatches(3, generator=torch.Generator().manual_seed(seed)))
    assert sum(b.batch_size for b in batches) == r.num_steps
    for b in batches:
        assert_aligned(b)


def test_minibatches_by_count_are_as_many_of_nearly_equal_size():
    flat = tagged(4, 5).vectorize()
    n = flat.batch_size
    assert n % 4 and n > 8  # sizes that do not divide
    sizes = [b.batch_size for b in flat.minibatches(count=4)]
    assert len(sizes) == 4 and max(sizes) - min(sizes) == 1 and sum(sizes) == n
    assert len(list(flat.minibatches(n // 4))) == 5  # by size: a smaller fifth one
    assert len(list(flat.minibatches(count=50))) == n  # no empty minibatch
    seen = torch.cat([b.rewards[0] for b in flat.minibatches(count=4)])
    assert sorted(seen.tolist()) == sorted(flat.rewards[0].tolist())
    with pytest.raises(ValueError, match="a size or a count"):
        next(flat.minibatches(3, count=2))
    with pytest.raises(ValueError, match="at least 1"):
        next(flat.minibatches(count=0))


def test_shuffle_is_in_place_and_returns_the_rollout():
    r = tagged(3, 5)
    assert r.shuffle() is r
    assert_aligned(r)


def test_to_detach_len_repr():
    policy = MLPPolicy()
    r = rlx.Agent("CartPole-v1", num_envs=2)(policy).steps(6)
    assert r.logprobs.requires_grad
    d = r.detach()
    assert not d.logprobs.requires_grad and not d.others[0].requires_grad
    assert len(r) == 6 and r.batch_size == 2 and r.num_steps == 12
    moved = r.to("cpu")
    assert moved.device == torch.device("cpu") and torch.equal(moved.rewards, r.rewards)
    assert "T=6, B=2" in repr(r)


def test_incompatible_rollouts_refuse_to_concatenate():
    a = rlx.Agent("CartPole-v1")(MLPPolicy()).episode(5)
    b = rlx.Agent("Acrobot-v1")(MLPPolicy(6, 3)).episode(5)
    with pytest.raises(ValueError, match="observations"):
        _ = a + b
    with pytest.raises(ValueError, match="dry"):
        _ = a + a.detach().__class__(**{**_data(a), "dry": True})
    c = rlx.Agent("CartPole-v1", num_envs=2)(MLPPolicy()).episode(5)
    with pytest.raises(ValueError, match="along time"):
        rlx.cat([a, c], dim=0)
    g = rlx.Agent(counting_vec([3]))(GRUPolicy(2)).episode(5)
    m = rlx.Agent(counting_vec([3]))(MLPPolicy(2)).episode(5)
    with pytest.raises(ValueError, match="recurrent_states"):
        _ = g + m


def _data(r):
    from rlx.core.rollout import DATA_FIELDS

    return {k: getattr(r, k) for k in DATA_FIELDS}


def test_returns_before_computation_explains():
    r = tagged(2, 2, dry=True)
    with pytest.raises(AttributeError, match="mc_returns"):
        _ = r.returns


@settings(max_examples=30, deadline=None)
@given(shapes, st.integers(1, 5), st.booleans())
def test_chunks_keep_fields_aligned(shape, length, dry):
    r = tagged(*shape, dry=dry)
    c = r.chunks(length)
    pieces = -(-shape[0] // length)
    assert c.shape == (length, shape[1] * pieces)
    assert_aligned(c)
    assert c.num_steps == r.num_steps


def test_recurrent_chunks_reevaluate_exactly():
    agent = rlx.Agent(counting_vec([5, 7]))
    policy = GRUPolicy(obs_dim=2)
    with torch.no_grad():
        r = agent(policy).steps(12)
        c = r.chunks(5)
        e = agent(policy).evaluate(c)
    torch.testing.assert_close(e.logprobs, c.logprobs, rtol=0, atol=1e-6)
    assert c.shape == (5, 6)


def test_indexing_an_evaluated_rollout_leaves_entropy_and_bootstrap_uncomputed():
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0)
    policy = MLPPolicy()
    with torch.no_grad():
        rollout = agent(policy).steps(16)
    evaluated = agent(policy).evaluate(rollout)
    part = evaluated.vectorize()[:, torch.tensor([3, 0, 7])]
    assert isinstance(evaluated._entropy, Deferred) and isinstance(part._entropy, Deferred)
    assert isinstance(evaluated._next_others, Deferred)
    flat = evaluated.vectorize()
    torch.testing.assert_close(part.entropy, flat.entropy[:, [3, 0, 7]])
    torch.testing.assert_close(part.next_others[0], flat.next_others[0][:, [3, 0, 7]])
    torch.testing.assert_close(part.logprobs, flat.logprobs[:, [3, 0, 7]])


def test_step_mean_and_standardize_agree_with_and_without_invalid_steps():
    agent = rlx.Agent(counting_vec([2, 5]), seed=0)
    with torch.no_grad():
        r = agent(MLPPolicy(obs_dim=2)).episode(5)  # env 0: 2 valid steps, then 3 padded
    x = torch.arange(10.0).view(5, 2)
    assert not bool(r.valid.all())
    torch.testing.assert_close(r.step_mean(x), x[r.valid].mean())
    full = r[:2]
    assert bool(full.valid.all())
    torch.testing.assert_close(full.step_mean(x[:2]), x[:2].mean())
    s = r.standardize(x)
    torch.testing.assert_close(s[r.valid], (x[r.valid] - x[r.valid].mean()) / x[r.valid].std())
    assert (s[~r.valid] == 0).all()
    # the all-valid flag follows in-place edits of valid
    full.valid[0, 0] = False
    torch.testing.assert_close(full.step_mean(x[:2]), x[:2][full.valid].mean())


def test_rollout_indexing_like_torch():
    r = rlx.Agent("CartPole-v1", num_envs=4)(MLPPolicy()).steps(6)
    assert torch.equal(r[:, [0, -1]].rewards, r.rewards[:, [0, 3]])
    assert torch.equal(r[np.int64(2)].observations, r.observations[2:3])
    assert torch.equal(r[torch.tensor(-1)].actions, r.actions[-1:])
    for bad in (lambda: r[6], lambda: r[:, 4], lambda: r[:, [0, 9]], lambda: r[..., 0]):
        with pytest.raises(IndexError):
            bad()


def test_as_dry_lets_evaluated_and_dry_rollouts_join():
    agent = rlx.Agent("CartPole-v1")
    policy = MLPPolicy()
    evaluated = agent(policy).episode(5)
    dry = agent(policy).episode(5, dry=True)
    joined = evaluated.as_dry() + dry
    assert joined.dry and joined.batch_size == 2
    with pytest.raises(rlx.DryRolloutError):
        joined.logprobs

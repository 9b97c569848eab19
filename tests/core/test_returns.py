"""Returns math against naive per-(t, b) references written independently."""

import numpy as np
import pytest
import torch
from helpers import MLPPolicy
from hypothesis import given, settings
from hypothesis import strategies as st

import rlx
from rlx.core import returns as R


def make_rollout(rewards, terminations, truncations, valid=None):
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    T, B = rewards.shape
    valid = torch.ones(T, B, dtype=torch.bool) if valid is None else torch.as_tensor(valid)
    zeros = torch.zeros(T, B)
    return rlx.Rollout(
        observations=zeros,
        next_observations=zeros,
        actions=zeros,
        rewards=rewards,
        terminations=torch.as_tensor(terminations, dtype=torch.bool),
        truncations=torch.as_tensor(truncations, dtype=torch.bool),
        valid=valid,
        starts=torch.zeros(T, B, dtype=torch.bool),
    )


def ref_mc(r, term, trunc, gamma):
    T, B = r.shape
    out = np.zeros((T, B))
    for b in range(B):
        for t in range(T):
            g, k = 0.0, t
            while k < T:
                g += gamma ** (k - t) * r[k, b]
                if term[k, b] or trunc[k, b]:
                    break
                k += 1
            out[t, b] = g
    return out


def ref_nstep(r, nv, term, trunc, n, gamma):
    T, B = r.shape
    out = np.zeros((T, B))
    for b in range(B):
        for t in range(T):
            g = 0.0
            for k in range(n):
                s = t + k
                g += gamma**k * r[s, b]
                ended = term[s, b] or trunc[s, b]
                if ended or k == n - 1 or s == T - 1:
                    if not term[s, b]:
                        g += gamma ** (k + 1) * nv[s, b]
                    break
            out[t, b] = g
    return out


def ref_gae(r, v, nv, term, trunc, gamma, lam):
    T, B = r.shape
    out = np.zeros((T, B))
    for b in range(B):
        for t in range(T):
            a, k = 0.0, t
            while k < T:
                delta = r[k, b] + gamma * (0.0 if term[k, b] else nv[k, b]) - v[k, b]
                a += (gamma * lam) ** (k - t) * delta
                if term[k, b] or trunc[k, b]:
                    break
                k += 1
            out[t, b] = a
    return out


def test_mc_returns_by_hand():
    # one env, episode of 3 terminating, then 2 steps of an unfinished one
    r = make_rollout([[1.0], [1.0], [1.0], [2.0], [2.0]], [[0], [0], [1], [0], [0]], [[0]] * 5)
    g = r.mc_returns(gamma=0.5)
    assert g.flatten().tolist() == [1.75, 1.5, 1.0, 3.0, 2.0]
    assert r.returns is g


def test_gae_bootstraps_truncation_not_termination():
    # env 0 terminates at t=1; env 1 is truncated at t=1. next value at the end = 10.
    r = make_rollout([[1.0, 1.0], [1.0, 1.0]], [[0, 0], [1, 0]], [[0, 0], [0, 1]])
    values = torch.zeros(2, 2)
    next_values = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    adv = r.gae(values, gamma=0.5, lam=1.0, next_values=next_values)
    assert adv[:, 0].tolist() == [1.5, 1.0]  # no bootstrap after termination
    assert adv[:, 1].tolist() == [1.5 + 0.25 * 10, 1.0 + 0.5 * 10]
    torch.testing.assert_close(r.returns, adv + values)


def test_nstep_by_hand():
    r = make_rollout([[1.0], [1.0], [1.0], [1.0]], [[0]] * 4, [[0]] * 4)
    nv = torch.tensor([[5.0], [6.0], [7.0], [8.0]])
    g = r.nstep_returns(torch.zeros(4, 1), n=2, gamma=0.5, next_values=nv)
    assert g.flatten().tolist() == [
        1 + 0.5 + 0.25 * 6,
        1 + 0.5 + 0.25 * 7,
        1 + 0.5 + 0.25 * 8,
        1 + 0.5 * 8,
    ]


@st.composite
def episodes(draw):
    T = draw(st.integers(1, 12))
    B = draw(st.integers(1, 4))
    ends = st.lists(
        st.lists(st.sampled_from([0, 0, 0, 1, 2]), min_size=B, max_size=B), min_size=T, max_size=T
    )
    e = np.array(draw(ends))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    return rng.normal(size=(T, B)), e == 1, e == 2, rng.normal(size=(T, B)), rng.normal(size=(T, B))


@settings(max_examples=60, deadline=None)
@given(
    episodes(),
    st.sampled_from([0.0, 0.5, 0.99]),
    st.sampled_from([0.0, 0.9, 1.0]),
    st.integers(1, 5),
)
def test_returns_match_references(data, gamma, lam, n):
    r, term, trunc, v, nv = data
    f = lambda x: torch.as_tensor(x, dtype=torch.float64)
    tt, tr = torch.as_tensor(term), torch.as_tensor(trunc)
    dones = tt | tr
    np.testing.assert_allclose(
        R.discounted_returns(f(r), dones, gamma).numpy(), ref_mc(r, term, trunc, gamma), atol=1e-9
    )
    got = R.gae(f(r), f(v), f(nv), tt, dones, gamma, lam).numpy()
    np.testing.assert_allclose(got, ref_gae(r, v, nv, term, trunc, gamma, lam), atol=1e-9)
    got = R.nstep_returns(f(r), f(nv), tt, dones, n, gamma).numpy()
    np.testing.assert_allclose(got, ref_nstep(r, nv, term, trunc, n, gamma), atol=1e-9)


def test_gae_equals_nstep_and_mc_limits():
    rng = np.random.default_rng(0)
    r = torch.as_tensor(rng.normal(size=(9, 3)))
    v = torch.as_tensor(rng.normal(size=(9, 3)))
    nv = torch.cat([v[1:], torch.as_tensor(rng.normal(size=(1, 3)))])
    term = torch.zeros(9, 3, dtype=torch.bool)
    term[4, 1] = True
    dones = term.clone()
    # lambda = 0: one-step TD error, i.e. the 1-step return minus the value
    torch.testing.assert_close(
        R.gae(r, v, nv, term, dones, 0.9, 0.0) + v, R.nstep_returns(r, nv, term, dones, 1, 0.9)
    )
    # lambda = 1: the return bootstrapped at the segment's end
    torch.testing.assert_close(
        R.gae(r, v, nv, term, dones, 0.9, 1.0) + v, R.nstep_returns(r, nv, term, dones, 9, 0.9)
    )


def test_invalid_steps_are_zero_and_cut_the_recursion():
    valid = torch.tensor([[True], [True], [False], [True]])
    r = make_rollout([[1.0], [1.0], [0.0], [1.0]], [[0], [1], [0], [0]], [[0]] * 4, valid)
    assert r.mc_returns(1.0).flatten().tolist() == [2.0, 1.0, 0.0, 1.0]


def test_gae_finds_next_values_of_its_own_extra_and_explains_otherwise():
    r = make_rollout([[1.0]], [[0]], [[0]])
    with pytest.raises(ValueError, match="next_values"):
        r.gae(torch.zeros(1, 1))
    with pytest.raises(ValueError, match=r"shape \[T, B\]"):
        r.gae(torch.zeros(3), next_values=torch.zeros(1, 1))
    with pytest.raises(ValueError, match="at least 1"):
        r.nstep_returns(torch.zeros(1, 1), n=0, next_values=torch.zeros(1, 1))


def test_vtrace_on_policy_equals_bootstrapped_returns():
    rng = np.random.default_rng(1)
    r = torch.as_tensor(rng.normal(size=(8, 3)))
    v = torch.as_tensor(rng.normal(size=(8, 3)))
    nv = torch.cat([v[1:], torch.as_tensor(rng.normal(size=(1, 3)))])
    term = torch.zeros(8, 3, dtype=torch.bool)
    term[3, 0] = True
    trunc = torch.zeros(8, 3, dtype=torch.bool)
    trunc[5, 2] = True
    nv[5, 2] = 7.0  # the final observation's value after the truncation
    dones = term | trunc
    targets, adv = R.vtrace(r, v, nv, torch.zeros(8, 3, dtype=torch.float64), term, dones, 0.9)
    torch.testing.assert_close(targets, R.gae(r, v, nv, term, dones, 0.9, 1.0) + v)
    torch.testing.assert_close(
        adv,
        R.gae(r, v, nv, term, dones, 0.9, 0.0)
        + 0.9
        * (
            torch.where(dones, nv, torch.cat([targets[1:], nv[-1:]]))
            - torch.where(dones, nv, torch.cat([v[1:], nv[-1:]]))
        )
        * (~term),
    )


def test_vtrace_truncates_importance_weights_by_hand():
    # one step, terminal: target = v + rho * (r - v); rho = min(2, 1) = 1 and 0.5 below 1
    r, v = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 0.0]])
    log_ratios = torch.log(torch.tensor([[2.0, 0.5]]))
    term = torch.ones(1, 2, dtype=torch.bool)
    targets, adv = R.vtrace(r, v, torch.zeros(1, 2), log_ratios, term, term, 0.9)
    assert targets.tolist() == [[1.0, 0.5]] and adv.tolist() == [[1.0, 0.5]]
    targets, _ = R.vtrace(r, v, torch.zeros(1, 2), log_ratios, term, term, 0.9, rho_clip=10.0)
    assert targets.tolist() == [[2.0, 0.5]]


def test_returns_do_not_cross_joined_unrelated_segments():
    agent = rlx.Agent("CartPole-v1", seed=0)
    policy = MLPPolicy()
    with torch.no_grad():
        e1, e2 = agent(policy).episode(5), agent(policy).episode(5)
    joined = rlx.cat([e1, e2])
    assert joined.mc_returns(1.0)[0, 0] == 5.0
    (values,) = joined.others
    torch.testing.assert_close(joined.gae(values)[:5], e1.gae(e1.others[0]))

import math

import pytest
import torch
from torch import nn
from torch.distributions import (
    AffineTransform,
    Bernoulli,
    Categorical,
    Independent,
    Normal,
    TanhTransform,
    TransformedDistribution,
)

import rlx


def test_joint_log_prob_sums_components_and_event_dims():
    mean = torch.randn(5, 3)
    normal = Normal(mean, torch.ones(5, 3))
    cat = Categorical(logits=torch.randn(5, 4))
    dist = rlx.ActionDistribution(normal, cat)
    action = dist.sample()
    assert isinstance(action, tuple) and action[0].shape == (5, 3) and action[1].shape == (5,)
    expected = normal.log_prob(action[0]).sum(-1) + cat.log_prob(action[1])
    assert dist.log_prob(action).shape == (5,)
    torch.testing.assert_close(dist.log_prob(action), expected)
    torch.testing.assert_close(dist.entropy(), normal.entropy().sum(-1) + cat.entropy())


def test_vector_normal_is_one_component_with_one_log_prob_per_step():
    dist = rlx.ActionDistribution(Normal(torch.zeros(7, 6), torch.ones(7, 6)))
    a = dist.sample()
    assert a.shape == (7, 6)
    assert dist.log_prob(a).shape == (7,)
    assert dist.entropy().shape == (7,)
    indep = rlx.ActionDistribution(Independent(Normal(torch.zeros(7, 6), torch.ones(7, 6)), 1))
    torch.testing.assert_close(indep.log_prob(a), dist.log_prob(a))


def test_named_components_give_dict_actions():
    dist = rlx.ActionDistribution(
        move=Normal(torch.zeros(2, 2), torch.ones(2, 2)), fire=Bernoulli(probs=torch.ones(2, 3))
    )
    a = dist.sample()
    assert set(a) == {"move", "fire"} and a["fire"].shape == (2, 3)
    assert dist.log_prob(a).shape == (2,)
    assert torch.equal(dist.mode()["fire"], torch.ones(2, 3))


def test_mode_is_deterministic():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]])
    dist = rlx.ActionDistribution(
        Categorical(logits=logits), Normal(torch.tensor([[0.5], [-1.0]]), 1.0)
    )
    choice, amount = dist.mode()
    assert choice.tolist() == [1, 0]
    assert amount.flatten().tolist() == [0.5, -1.0]


def test_fast_categorical_sampler_draws_the_right_distribution():
    probs = torch.tensor([[0.0, 0.2, 0.8, 0.0]]).expand(20000, 4)
    a = rlx.ActionDistribution(Categorical(probs=probs)).sample()
    assert a.dtype == torch.int64
    freq = torch.bincount(a, minlength=4).float() / len(a)
    assert freq[0] == 0 and freq[3] == 0  # zero-probability categories never drawn
    assert abs(freq[1].item() - 0.2) < 0.015 and abs(freq[2].item() - 0.8) < 0.015


def test_fast_normal_sampler_draws_the_right_distribution():
    dist = rlx.ActionDistribution(Normal(torch.full((50000, 1), 2.0), torch.full((50000, 1), 0.5)))
    a = dist.sample()
    assert abs(a.mean().item() - 2.0) < 0.02 and abs(a.std().item() - 0.5) < 0.02
    assert not a.requires_grad


def test_rsample_keeps_gradients():
    mean = torch.zeros(3, 2, requires_grad=True)
    a = rlx.ActionDistribution(Normal(mean, 1.0)).rsample()
    a.sum().backward()
    assert torch.equal(mean.grad, torch.ones(3, 2))


def test_bad_components_are_named():
    with pytest.raises(TypeError, match="not a torch.distributions.Distribution"):
        rlx.ActionDistribution(torch.zeros(3))
    with pytest.raises(TypeError, match="either positional"):
        rlx.ActionDistribution(
            Categorical(logits=torch.zeros(1, 2)), b=Categorical(logits=torch.zeros(1, 2))
        )
    with pytest.raises(TypeError, match="at least one"):
        rlx.ActionDistribution()
    dist = rlx.ActionDistribution(
        Categorical(logits=torch.zeros(1, 2)), Categorical(logits=torch.zeros(1, 2))
    )
    with pytest.raises(TypeError, match="one action per component"):
        dist.log_prob(torch.zeros(1, dtype=torch.long))


def test_tanh_normal_log_prob_is_the_squashed_and_rescaled_density():
    loc, scale = torch.tensor([[0.3, -1.0]]), torch.tensor([[0.5, 2.0]])
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    d = rlx.TanhNormal(loc, scale, low, high)
    u = torch.tensor([[0.7, -0.2]])
    action = (high + low) / 2 + (high - low) / 2 * torch.tanh(u)
    base = torch.distributions.Normal(loc, scale).log_prob(u)
    expected = base - torch.log1p(-(torch.tanh(u) ** 2)) - torch.log((high - low) / 2)
    torch.testing.assert_close(d.log_prob(action), expected)
    assert d.mode.shape == (1, 2) and bool(((d.mode >= low) & (d.mode <= high)).all())
    # actions that rounded onto the bound keep a finite log-prob
    assert torch.isfinite(d.log_prob(high.expand(1, 2))).all()
    with pytest.raises(ValueError, match="finite bounds"):
        rlx.TanhNormal(loc, scale, -float("inf"), 1.0)


def test_tanh_normal_sample_and_rsample():
    d = rlx.TanhNormal(torch.zeros(4, 3, requires_grad=True), torch.ones(4, 3))
    a = d.sample()
    assert a.shape == (4, 3) and not a.requires_grad and a.abs().max() < 1
    r = d.rsample()
    assert r.requires_grad
    joint = rlx.ActionDistribution(d)
    with pytest.raises(NotImplementedError, match="no closed-form entropy"):
        joint.entropy()


def test_tanh_normal_rsample_log_prob_is_the_transformed_gaussian_density():
    torch.manual_seed(0)
    loc = torch.randn(6, 2, requires_grad=True)
    scale = torch.rand(6, 2).add(0.3).requires_grad_()
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    d = rlx.TanhNormal(loc, scale, low, high)
    action = d.rsample()
    mine = d.log_prob(action)
    u = d._rsampled[1]
    reference = TransformedDistribution(
        Normal(loc, scale), [TanhTransform(), AffineTransform((high + low) / 2, (high - low) / 2)]
    )
    expected = reference.log_prob(reference.transforms[1](reference.transforms[0](u)))
    expected_exact = Normal(loc, scale).log_prob(u) - torch.log1p(-(torch.tanh(u) ** 2))
    expected_exact = expected_exact - torch.log((high - low) / 2)
    torch.testing.assert_close(mine, expected_exact, rtol=1e-4, atol=1e-4)
    assert torch.isfinite(expected).all()
    g_mine = torch.autograd.grad(mine.sum(), [loc, scale], retain_graph=True)
    g_ref = torch.autograd.grad(expected_exact.sum(), [loc, scale])
    for a, b in zip(g_mine, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
    assert bool(((action >= low) & (action <= high)).all())
    # a stored action (not the one just drawn) is inverted through atanh instead
    stored = action.detach().clone()
    torch.testing.assert_close(d.log_prob(stored), mine.detach(), rtol=1e-3, atol=1e-3)
    assert d.sample().shape == (6, 2) and d._rsampled is None
    with torch.no_grad():
        assert math.isfinite(float(rlx.TanhNormal(loc, scale).log_prob(torch.ones(6, 2)).sum()))


class Squashed(rlx.Parametric):
    def __init__(self):
        super().__init__()
        self.mean = nn.Linear(3, 1)

    def forward(self, *states):
        mean = self.mean(states[1])
        dist = TransformedDistribution(Normal(mean, torch.ones_like(mean)), [TanhTransform()])
        return None, rlx.ActionDistribution(dist)


def test_tanh_squashed_normal_samples_evaluates_and_explains_entropy():
    agent = rlx.Agent("Pendulum-v1", num_envs=2)
    r = agent(Squashed()).steps(5)
    assert r.logprobs.shape == (5, 2) and (r.actions.abs() < 1).all()
    with pytest.raises(NotImplementedError, match="no closed-form entropy.*-rollout.logprobs"):
        r.entropy
    e = agent(Squashed()).evaluate(r)
    assert e.logprobs.shape == (5, 2) and e[:2].logprobs.shape == (2, 2)
    det = agent(Squashed()).episode(3, deterministic=True)
    assert det.actions.abs().max() < 1


class QPolicy(rlx.Parametric):
    """Q-values as the extra, ε-greedy actions."""

    def __init__(self, epsilon: float) -> None:
        super().__init__()
        self.q = nn.Linear(4, 2)
        self.epsilon = epsilon

    def forward(self, *states):
        _, obs = states
        q = self.q(obs)
        return None, rlx.ActionDistribution(rlx.EpsilonGreedy(q, self.epsilon)), q


def test_epsilon_greedy_mixes_the_greedy_and_uniform_actions():
    q = torch.tensor([[0.0, 3.0, 1.0, 2.0]]).expand(20_000, 4)
    d = rlx.EpsilonGreedy(q, 0.2)
    counts = torch.bincount(d.sample(), minlength=4).float() / 20_000
    torch.testing.assert_close(counts, torch.tensor([0.05, 0.85, 0.05, 0.05]), atol=0.01, rtol=0)
    assert (d.mode == 1).all()
    one = rlx.EpsilonGreedy(q[:1], 0.2)
    torch.testing.assert_close(one.log_prob(torch.tensor([1])), torch.log(torch.tensor([0.85])))
    assert rlx.EpsilonGreedy(q[:1], 0.0).entropy().item() == pytest.approx(0.0, abs=1e-6)


def test_a_q_network_samples_and_acts_greedily_through_the_agent():
    agent = rlx.Agent("CartPole-v1", num_envs=3, seed=0)
    policy = QPolicy(epsilon=0.5)
    with torch.no_grad():
        rollout = agent(policy).steps(40)
        greedy = agent(policy).steps(10, deterministic=True)
    (q,) = rollout.others
    assert q.shape == (40, 3, 2)
    chose_greedy = rollout.actions == q.argmax(-1)
    assert 0.6 < chose_greedy[rollout.valid].float().mean() < 0.9  # 0.75 expected
    (q2,) = greedy.others
    assert (greedy.actions == q2.argmax(-1))[greedy.valid].all()


def test_fast_and_plain_distributions_agree():
    """Each fast path of rlx.fast.distributions against torch's own way: the same
    log-probs, entropies and gradients, and samples from the same distribution."""
    import rlx
    from rlx.core.distribution import categorical, sample_component, stack_steps

    torch.manual_seed(0)
    logits = torch.randn(4, 3, requires_grad=True)
    loc, scale = torch.randn(4, 2), torch.rand(4, 2) + 0.5
    actions = torch.tensor([0, 2, 1, 2])
    found = {}
    for fast in (True, False):
        with rlx.fast_paths(fast):
            dists = [
                rlx.ActionDistribution(categorical(logits * (t + 1)), Normal(loc * t, scale))
                for t in range(3)
            ]
            joint = stack_steps(dists)
            assert (joint is not None) == fast
            per_step = [d.log_prob((actions, loc)) for d in dists]
            grad = torch.autograd.grad(sum(p.sum() for p in per_step), logits)[0]
            counts = torch.bincount(
                torch.stack([sample_component(dists[0].components[0]) for _ in range(4000)])[:, 0],
                minlength=3,
            )
            found[fast] = (torch.stack(per_step), grad, counts / 4000.0, dists[0].entropy())
            if fast:
                flat = (actions.repeat(3), loc.repeat(3, 1))
                torch.testing.assert_close(joint.log_prob(flat).view(3, 4), found[fast][0])
    torch.testing.assert_close(found[True][0], found[False][0])
    torch.testing.assert_close(found[True][1], found[False][1])
    torch.testing.assert_close(found[True][3], found[False][3])
    probs = torch.softmax(logits[0].detach(), -1)
    for fast in (True, False):  # 4000 draws: within 0.03 of the probabilities
        assert (found[fast][2] - probs).abs().max() < 0.03

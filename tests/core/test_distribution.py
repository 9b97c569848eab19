import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Independent, Normal

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

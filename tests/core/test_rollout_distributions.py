"""rollout.distributions: every step's ActionDistribution batched [T, B], and rlx.kl."""

from __future__ import annotations

import pytest
import torch
from helpers import DictTupleEnv, DictTuplePolicy, GaussianPolicy, GRUPolicy, MLPPolicy
from torch.distributions import Categorical, Independent, Normal, kl_divergence

import rlx
from rlx.core.distribution import ActionDistribution, stack


@pytest.fixture(params=[True, False], ids=["fast", "plain"])
def fast(request):
    with rlx.fast_paths(request.param):
        yield request.param


def test_sampled_distributions_give_the_sampled_logprobs_and_entropy(fast):
    agent = rlx.Agent("CartPole-v1", num_envs=3, seed=0)
    rollout = agent(MLPPolicy()).steps(6)
    assert isinstance(rollout._distributions, rlx.core.deferred.Deferred)  # built when read
    dists = rollout.distributions
    assert dists.batch_shape == (6, 3) and dists.batch_ndims == 2
    torch.testing.assert_close(dists.log_prob(rollout.actions), rollout.logprobs)
    torch.testing.assert_close(dists.entropy(), rollout.entropy)
    assert dists.sample().shape == (6, 3) and dists.mode().shape == (6, 3)


@pytest.mark.parametrize("policy_kind", ["feed-forward", "recurrent"])
def test_evaluated_distributions_match_the_evaluated_logprobs(fast, policy_kind):
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    policy = MLPPolicy() if policy_kind == "feed-forward" else GRUPolicy()
    with torch.no_grad():
        sampled = agent(policy).steps(5, dry=True)
    evaluated = agent(policy).evaluate(sampled)
    dists = evaluated.distributions
    assert dists.batch_shape == (5, 2)
    torch.testing.assert_close(dists.log_prob(evaluated.actions), evaluated.logprobs)


def test_nested_actions_and_a_shared_standard_deviation(fast):
    agent = rlx.Agent(DictTupleEnv, num_envs=2, seed=0)
    rollout = agent(DictTuplePolicy()).steps(4)
    dists = rollout.distributions
    assert len(dists.components) == 2 and dists.batch_shape == (4, 2)
    torch.testing.assert_close(dists.log_prob(rollout.actions), rollout.logprobs)

    pendulum = rlx.Agent("Pendulum-v1", num_envs=3, seed=0)
    policy = GaussianPolicy(3, 1)
    rollout = pendulum(policy).steps(4)
    torch.testing.assert_close(rollout.distributions.log_prob(rollout.actions), rollout.logprobs)


def test_distributions_follow_slices_shuffles_vectorize_chunks_and_joins():
    agent = rlx.Agent("Pendulum-v1", num_envs=4, seed=0)
    rollout = agent(GaussianPolicy(3, 1)).steps(6)

    def consistent(r: rlx.Rollout) -> None:
        assert r.distributions.batch_shape == r.shape
        # Padding steps (not transitions) have log-prob 0 in rollout.logprobs.
        logprobs = torch.where(r.valid, r.distributions.log_prob(r.actions), 0.0)
        torch.testing.assert_close(logprobs, r.logprobs)

    consistent(rollout[1:4])
    consistent(rollout[:, [3, 0]])
    consistent(rollout.vectorize())
    consistent(rollout.chunks(4))
    consistent(rlx.cat([rollout, rollout], dim=0))
    consistent(rollout.detach().to("cpu"))
    shuffled = agent(GaussianPolicy(3, 1)).steps(6).shuffle(torch.Generator().manual_seed(1))
    consistent(shuffled)
    # Joining along environments pads the shorter rollout with its last step's
    # parameters, not zeros: a Normal with scale 0 would make every KL infinite.
    joined = rollout[:3] + rollout
    consistent(joined)
    scale = joined.distributions.components[0].scale
    assert bool((scale > 0).all())
    assert torch.isfinite(rlx.kl(joined.distributions, joined.distributions)).all()


def test_dry_and_rebuilt_rollouts_say_how_to_get_distributions():
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    with pytest.raises(rlx.DryRolloutError, match="action distributions"):
        _ = agent(MLPPolicy()).steps(3, dry=True).distributions
    rebuilt = rlx.Rollout.from_dict(agent(MLPPolicy()).steps(3).to_dict())
    with pytest.raises(AttributeError, match="evaluate"):
        _ = rebuilt.distributions
    assert rebuilt.as_dry()._distributions is None


def test_kl_is_zero_for_the_same_policy_and_analytic_otherwise(fast):
    agent = rlx.Agent("CartPole-v1", num_envs=3, seed=0)
    old_policy, new_policy = MLPPolicy(), MLPPolicy()
    with torch.no_grad():
        rollout = agent(old_policy).steps(5)
    same = agent(old_policy).evaluate(rollout.as_dry())
    torch.testing.assert_close(
        rlx.kl(rollout.distributions, same.distributions), torch.zeros(5, 3), atol=1e-6, rtol=0
    )
    new = agent(new_policy).evaluate(rollout.as_dry())
    kl = rlx.kl(rollout.distributions, new.distributions)
    p = Categorical(logits=rollout.distributions.components[0].logits)
    q = Categorical(logits=new.distributions.components[0].logits)
    torch.testing.assert_close(kl, kl_divergence(p, q))
    assert bool((kl > 0).all())
    kl.sum().backward()  # gradients reach the new policy only
    assert new_policy.logits.weight.grad is not None and old_policy.logits.weight.grad is None


def test_kl_sums_action_dimensions_and_components():
    loc, scale = torch.randn(4, 3), torch.rand(4, 3) + 0.5
    old = ActionDistribution(Normal(loc, scale), Categorical(logits=torch.randn(4, 2)))
    new = ActionDistribution(Normal(loc + 1, scale), Categorical(logits=torch.randn(4, 2)))
    expected = kl_divergence(old.components[0], new.components[0]).sum(-1) + kl_divergence(
        old.components[1], new.components[1]
    )
    torch.testing.assert_close(rlx.kl(old, new), expected)
    independent = ActionDistribution(Independent(Normal(loc, scale), 1))
    shifted = ActionDistribution(Independent(Normal(loc + 1, scale), 1))
    torch.testing.assert_close(rlx.kl(independent, shifted), (0.5 / scale.pow(2)).sum(-1))


def test_kl_of_tanh_normals_is_the_gaussians_and_sampled_without_a_formula():
    loc, scale = torch.zeros(2000, 1), torch.ones(2000, 1)
    old = ActionDistribution(rlx.TanhNormal(loc, scale))
    new = ActionDistribution(rlx.TanhNormal(loc + 0.5, scale))
    torch.testing.assert_close(rlx.kl(old, new), torch.full((2000,), 0.125))
    # Different bounds: no closed form, so a sampled estimate of the same quantity (the
    # bijections differ, so it is not 0.125; its mean over many rows is finite).
    wide = ActionDistribution(rlx.TanhNormal(loc + 0.5, scale, -2.0, 2.0))
    estimate = rlx.kl(old, wide, samples=4)
    assert estimate.shape == (2000,) and torch.isfinite(estimate).all()
    narrow_same = ActionDistribution(rlx.TanhNormal(loc, scale, -2.0, 2.0))
    # The same distribution under the estimate: exactly zero in every row.
    torch.testing.assert_close(
        rlx.kl(narrow_same, ActionDistribution(rlx.TanhNormal(loc, scale, -2.0, 2.0))),
        torch.zeros(2000),
    )


def test_kl_refuses_mismatched_distributions():
    a = ActionDistribution(Categorical(logits=torch.zeros(3, 2)))
    with pytest.raises(TypeError, match="ActionDistribution"):
        rlx.kl(a, Categorical(logits=torch.zeros(3, 2)))
    with pytest.raises(ValueError, match="same batch"):
        rlx.kl(a, ActionDistribution(Categorical(logits=torch.zeros(4, 2))))
    with pytest.raises(ValueError, match="same components"):
        two = [Categorical(logits=torch.zeros(3, 2))] * 2
        rlx.kl(a, ActionDistribution(*two))


def test_stack_keeps_the_graph_and_the_kind():
    logits = torch.randn(3, 2, requires_grad=True)
    steps = [ActionDistribution(Categorical(logits=logits * (t + 1))) for t in range(4)]
    stacked = stack(steps)
    assert stacked.batch_shape == (4, 3) and type(stacked.components[0]) is Categorical
    stacked.entropy().sum().backward()
    assert logits.grad is not None


def test_kl_penalty_example_runs():
    import runpy
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "kl_ppo.py"
    final = runpy.run_path(str(example))["main"](["--iterations", "2"])
    assert final > 0  # episodes finished and were counted

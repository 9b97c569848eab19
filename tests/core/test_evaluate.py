"""agent(policy).evaluate(rollout): batched for feed-forward, exact for recurrent."""

import pytest
import torch
from helpers import CountingVectorEnv, GRUPolicy, MLPPolicy, counting_vec
from torch import nn

import rlx


class CountingMLP(MLPPolicy):
    calls = 0

    def forward(self, *states):
        type(self).calls += 1
        return super().forward(*states)


def test_feed_forward_evaluate_is_one_batched_forward_and_reproduces_sampling():
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0)
    policy = CountingMLP()
    with torch.no_grad():
        sampled = agent(policy).steps(32)
    dry = sampled.detach()
    CountingMLP.calls = 0
    evaluated = agent(policy).evaluate(dry)
    assert CountingMLP.calls == 0  # nothing computed before something is read
    torch.testing.assert_close(evaluated.logprobs, sampled.logprobs)
    assert CountingMLP.calls == 1  # all T*B steps at once
    torch.testing.assert_close(evaluated.entropy, sampled.entropy)
    torch.testing.assert_close(evaluated.others[0], sampled.others[0])
    assert CountingMLP.calls == 1
    torch.testing.assert_close(evaluated.next_others[0], sampled.next_others[0])
    assert CountingMLP.calls == 2  # the bootstrap rows, in one batch, when first read


def test_next_others_read_after_an_optimizer_step_raises():
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    policy = MLPPolicy()
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.1)
    with torch.no_grad():
        dry = agent(policy).steps(8, dry=True)
    read_first = agent(policy).evaluate(dry)
    values_before = read_first.next_others[0].detach().clone()
    late = agent(policy).evaluate(dry)
    late.others[0].sum().backward()
    optimizer.step()
    with pytest.raises(RuntimeError, match="before stepping"):
        late.next_others
    # read before the step, the values stay those of the evaluated policy
    torch.testing.assert_close(read_first.next_others[0], values_before)


def test_gradients_flow_through_evaluate():
    agent = rlx.Agent("CartPole-v1", num_envs=2)
    policy = MLPPolicy()
    with torch.no_grad():
        dry = agent(policy).episode(20, dry=True)
    r = agent(policy).evaluate(dry)
    assert r.logprobs.requires_grad and r.others[0].requires_grad
    (r.logprobs.sum() + r.entropy.sum() + r.others[0].sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())
    with torch.no_grad():
        assert not agent(policy).evaluate(dry).logprobs.requires_grad


@pytest.mark.parametrize("env", ["same", "holes"])
def test_recurrent_evaluate_reproduces_sampled_log_probs_exactly(env):
    """GRU on envs whose episodes end at different times; segments start mid-episode."""
    make = {"same": lambda: counting_vec([3, 5, 7]), "holes": lambda: CountingVectorEnv([3, 5, 7])}
    agent = rlx.Agent(make[env]())
    policy = GRUPolicy(obs_dim=2)
    with torch.no_grad():
        segments = [agent(policy).steps(6) for _ in range(3)]
    assert not segments[1].starts[0].all()  # later segments begin mid-episode
    assert segments[1].recurrent_states[0].ne(0).any()
    for seg in segments:
        e = agent(policy).evaluate(seg.detach())
        assert torch.equal(e.logprobs, seg.logprobs)
        assert torch.equal(e.entropy, seg.entropy)
        assert torch.equal(e.others[0], seg.others[0])
        assert torch.equal(e.next_others[0], seg.next_others[0])


def test_recurrent_evaluate_of_slices_episodes_and_vectorized_rollouts():
    agent = rlx.Agent(counting_vec([4, 6]))
    policy = GRUPolicy(obs_dim=2)
    with torch.no_grad():
        r = agent(policy).steps(10)
        for part in (r[3:], r[:5], r[2:7, [1]], r.vectorize()):
            torch.testing.assert_close(
                agent(policy).evaluate(part).logprobs, part.logprobs, rtol=0, atol=1e-6
            )
        ep = agent(policy).episode(8)
        torch.testing.assert_close(
            agent(policy).evaluate(ep).logprobs, ep.logprobs, rtol=0, atol=1e-6
        )


def test_recurrent_evaluate_backpropagates_through_time():
    agent = rlx.Agent(counting_vec([5]))
    policy = GRUPolicy(obs_dim=2)
    with torch.no_grad():
        r = agent(policy).steps(5, dry=True)
    e = agent(policy).evaluate(r)
    e.logprobs[-1].sum().backward()  # the last step depends on the first through the state
    assert policy.cell.weight_ih.grad.abs().sum() > 0


def test_evaluate_under_another_policy_for_off_policy_ratios():
    agent = rlx.Agent("CartPole-v1", num_envs=2)
    behaviour, target = MLPPolicy(), MLPPolicy()
    with torch.no_grad():
        b = agent(behaviour).steps(16)
        t = agent(target).evaluate(b)
    ratios = (t.logprobs - b.logprobs).exp()
    assert ratios.shape == (16, 2) and not torch.allclose(ratios, torch.ones(16, 2))


def test_dry_rollouts_explain_how_to_get_log_probs():
    r = rlx.Agent("CartPole-v1")(MLPPolicy()).episode(10, dry=True)
    for name in ("logprobs", "entropy", "others", "next_others"):
        with pytest.raises(rlx.DryRolloutError, match=r"agent\(policy\).evaluate\(rollout\)"):
            getattr(r, name)
    assert r.rewards.sum() > 0


def test_readme_vectorize_then_evaluate():
    agent = rlx.Agent("CartPole-v1")
    policy = MLPPolicy()
    with torch.no_grad():
        dry_rollout = agent(policy).episode(50, dry=True)
    returns = dry_rollout.mc_returns()  # needs time order: before vectorizing
    dry_rollout_vec = dry_rollout.vectorize()
    rollout = agent(policy).evaluate(dry_rollout_vec)
    assert rollout.shape == (1, dry_rollout.num_steps)
    assert torch.equal(rollout.returns, returns[dry_rollout.valid].unsqueeze(0))
    loss = (rollout.logprobs * rollout.returns).mean()
    loss.backward()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_policy_and_cpu_sampling_with_a_gpu_learner():
    agent = rlx.Agent("CartPole-v1", num_envs=2)
    gpu_policy = MLPPolicy().cuda()
    with torch.no_grad():
        r = agent(gpu_policy).steps(8)
    assert r.device.type == "cuda" and r.observations.device.type == "cuda"
    cpu_policy = MLPPolicy()
    cpu_policy.load_state_dict(gpu_policy.state_dict())
    with torch.no_grad():
        dry = agent(cpu_policy).steps(8, dry=True)  # sampled on the CPU
    e = agent(gpu_policy).evaluate(dry)  # moved to the learner's device
    assert e.logprobs.device.type == "cuda"
    torch.testing.assert_close(e.to("cpu").logprobs, agent(cpu_policy).evaluate(dry).logprobs)


def test_bootstrap_of_a_replay_sample_needs_only_the_next_observations():
    """On a [1, N] batch every step bootstraps, so reading next_others runs the policy
    once, at the next observations, and never at the observations themselves."""
    agent = rlx.Agent("CartPole-v1", num_envs=3, seed=0)
    policy = CountingMLP()
    with torch.no_grad():
        sampled = agent(policy).steps(16)
        flat = sampled.as_dry().vectorize()
        CountingMLP.calls = 0
        evaluated = agent(policy).evaluate(flat)
        nxt = evaluated.next_others[0]
    assert CountingMLP.calls == 1 and nxt.shape == (1, flat.batch_size)
    with torch.no_grad():
        direct = policy(None, flat.next_observations[0])[2].squeeze(-1)
    torch.testing.assert_close(nxt[0], direct)
    torch.testing.assert_close(
        evaluated.others[0][0], policy(None, flat.observations[0])[2].squeeze(-1).detach()
    )


def test_evaluate_can_draw_new_actions_with_gradients_or_take_the_mode():
    from helpers import GaussianPolicy

    agent = rlx.Agent("Pendulum-v1", num_envs=2, seed=0)
    policy = GaussianPolicy(3, 1)
    with torch.no_grad():
        rollout = agent(policy).steps(6, dry=True)
    fresh = agent(policy).evaluate(rollout, actions="sample")
    assert fresh.actions.shape == rollout.actions.shape
    assert not torch.equal(fresh.actions, rollout.actions) and fresh.actions.requires_grad
    dist = policy(None, rollout.observations.reshape(12, 3))[1]
    torch.testing.assert_close(
        fresh.logprobs.reshape(12), dist.log_prob(fresh.actions.reshape(12, 1))
    )
    fresh.actions.sum().backward()  # reparameterised: the mean's weights get a gradient
    assert policy.mean.weight.grad is not None and policy.mean.weight.grad.abs().sum() > 0
    mode = agent(policy).evaluate(rollout, actions="mode")
    torch.testing.assert_close(
        mode.actions.reshape(12, 1), policy.mean(rollout.observations.reshape(12, 3))
    )
    with pytest.raises(ValueError, match="actions must be"):
        agent(policy).evaluate(rollout, actions="random")


def test_recurrent_policies_draw_new_actions_step_by_step():
    agent = rlx.Agent(counting_vec([4, 6]), seed=0)
    policy = GRUPolicy(obs_dim=2)
    with torch.no_grad():
        rollout = agent(policy).steps(8)
        torch.manual_seed(3)
        drawn = agent(policy).evaluate(rollout, actions="sample")
    assert drawn.actions.shape == (8, 2) and drawn.actions.dtype == rollout.actions.dtype
    stored = agent(policy).evaluate(rollout)
    assert not torch.equal(drawn.actions, rollout.actions)  # 16 coin flips all equal: ~1e-5
    torch.testing.assert_close(stored.logprobs, rollout.logprobs)


def test_shifted_rollouts_look_from_the_next_observations():
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    policy = MLPPolicy()
    with torch.no_grad():
        rollout = agent(policy).steps(5, dry=True)
    nxt = rollout.shifted()
    assert torch.equal(nxt.observations, rollout.next_observations) and nxt.dry
    with torch.no_grad():
        values = agent(policy).evaluate(nxt).others[0]
        expected = agent(policy).evaluate(rollout).next_others[0]
    torch.testing.assert_close(values, expected)
    gru_rollout = rlx.Agent(counting_vec([3]), seed=0)(GRUPolicy(obs_dim=2)).steps(3, dry=True)
    with pytest.raises(ValueError, match="recurrent"):
        gru_rollout.shifted()


class LearnedStart(GRUPolicy):
    def __init__(self):
        super().__init__(obs_dim=2)
        self.h0 = nn.Parameter(torch.full((16,), 0.3))

    def initial_state(self, batch_size):
        return self.h0.expand(batch_size, -1)


def test_learned_initial_state_gets_gradients_through_evaluate():
    agent = rlx.Agent(counting_vec([3, 4]))
    policy = LearnedStart()
    with torch.no_grad():
        r = agent(policy).episode(6)
    e = agent(policy).evaluate(r)
    torch.testing.assert_close(e.logprobs, r.logprobs)
    e.logprobs.sum().backward()
    assert policy.h0.grad is not None and policy.h0.grad.abs().sum() > 0

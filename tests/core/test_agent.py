"""Sampling: agent(policy).episode() and .steps()."""

import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import (
    CountingEnv,
    CountingVectorEnv,
    GRUPolicy,
    MLPPolicy,
    ReusingEnv,
    counting_vec,
)
from torch import nn
from torch.distributions import Categorical

import rlx
from rlx.policies import make_policy

MODES = ["SameStep", "NextStep", "Disabled", "holes"]


def counting_agent(mode: str, lengths=(2, 3), truncate=False) -> rlx.Agent:
    if mode == "holes":
        return rlx.Agent(CountingVectorEnv(list(lengths)))
    return rlx.Agent(counting_vec(list(lengths), truncate=truncate, mode=mode))


@pytest.mark.parametrize("mode", MODES)
def test_steps_hold_only_real_transitions(mode):
    """Every valid row is a real transition: reward = next step index, next obs = obs + 1."""
    agent = counting_agent(mode)
    policy = MLPPolicy(obs_dim=2)
    with torch.no_grad():
        rollouts = [agent(policy).steps(7) for _ in range(3)]
    for r in rollouts:
        v = r.valid
        obs, nxt = r.observations[..., 0], r.next_observations[..., 0]
        assert torch.equal(r.rewards[v], nxt[v])
        assert torch.equal(nxt[v], obs[v] + 1)
        assert (r.rewards[v] > 0).all()
        assert torch.equal(r.observations[..., 1][v], torch.arange(2.0).expand(7, 2)[v])
        # terminations exactly where an episode reaches its length
        lengths = torch.tensor([2.0, 3.0]).expand(7, 2)
        assert torch.equal(r.terminations, v & (nxt == lengths))
        # starts exactly at step-0 observations
        assert torch.equal(r.starts, v & (obs == 0))
        # invalid rows (next-step autoreset holes) are zero everywhere
        assert r.rewards[~v].eq(0).all() and r.observations[~v].eq(0).all()
        assert r.logprobs[~v].eq(0).all() and r.others[0][~v].eq(0).all()
    if mode != "holes":
        assert all(bool(r.valid.all()) for r in rollouts)
    all_obs = torch.cat([r.observations[..., 0][r.valid] for r in rollouts])
    assert len(all_obs) > 0


@pytest.mark.parametrize("mode", MODES)
def test_episode_marks_the_end_and_zeros_the_rest(mode):
    agent = counting_agent(mode, lengths=(2, 4))
    r = agent(MLPPolicy(obs_dim=2)).episode(horizon=10)
    assert r.shape == (4, 2)
    assert r.valid[:, 0].tolist() == [True, True, False, False]
    assert r.valid[:, 1].all()
    assert r.rewards.sum(0).tolist() == [3.0, 10.0]
    for field in (r.rewards, r.logprobs, r.entropy, r.others[0], r.observations[..., 1]):
        assert field[2:, 0].eq(0).all()
    assert r.logprobs[:2, 0].ne(0).all()
    assert r.terminations.sum().item() == 2
    # the horizon cuts episodes that go on
    r = agent(MLPPolicy(obs_dim=2)).episode(horizon=3)
    assert r.shape == (3, 2) and r.valid[:, 1].all()
    assert r.truncations[:, 1].tolist() == [False, False, True]  # cut by the horizon
    assert not r.terminations[:, 1].any()
    assert agent.pop_episodes() == [(3.0, 2), (10.0, 4), (3.0, 2), (6.0, 3)]


def test_steps_continue_and_reset_recurrent_state_at_episode_ends():
    agent = rlx.Agent(counting_vec([3, 5]))
    policy = GRUPolicy(obs_dim=2)
    with torch.no_grad():
        a = agent(policy).steps(4)
        b = agent(policy).steps(4)
    assert b.observations[0, :, 0].tolist() == [1.0, 4.0]  # env 0 restarted at t=3, env 1 goes on
    assert b.starts[0].tolist() == [False, False]
    assert a.starts[3].tolist() == [True, False]
    # the recurrent state entering a start is zero; otherwise it is carried over
    assert a.recurrent_states[3, 0].eq(0).all() and a.recurrent_states[3, 1].ne(0).any()
    assert b.recurrent_states[0].ne(0).any()


def test_next_observations_hold_the_final_observation_for_bootstrapping():
    agent = rlx.Agent(counting_vec([2, 3], truncate=True))

    class StepValue(MLPPolicy):
        def forward(self, *states):
            _, obs = states
            _, dist, _ = super().forward(None, obs)
            return None, dist, obs[:, 0] * 10  # "value" = 10 * step index

    with torch.no_grad():
        r = agent(StepValue(obs_dim=2)).steps(6)
    (values,) = r.others
    (next_values,) = r.next_others
    assert r.truncations[1, 0] and next_values[1, 0] == 20  # final obs of a 2-step episode
    assert r.truncations[2, 1] and next_values[2, 1] == 30
    assert next_values[5].tolist() == [20.0, 30.0]  # the segment's next observation
    torch.testing.assert_close(next_values[:-1][~r.dones[:-1]], values[1:][~r.dones[:-1]])
    adv = r.gae(values, gamma=1.0, lam=1.0)  # finds next_values itself
    assert adv[0, 0] == 1 + 2 + 20 - 0  # bootstrapped from the truncated episode's end


def test_reused_observation_arrays_are_copied():
    agent = rlx.Agent(ReusingEnv())
    r = agent(MLPPolicy(obs_dim=3)).episode(horizon=10)
    assert r.observations[:, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert r.next_observations[:, 0, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    agent = rlx.Agent(CountingVectorEnv([4, 4]))
    with torch.no_grad():
        r = agent(MLPPolicy(obs_dim=2)).steps(4)
    assert r.observations[:, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_seed_makes_sampling_reproducible():
    def run():
        torch.manual_seed(3)
        policy = MLPPolicy()
        agent = rlx.Agent("CartPole-v1", num_envs=3, seed=11)
        with torch.no_grad():
            return [agent(policy).steps(50) for _ in range(2)] + [agent(policy).episode(50)]

    for a, b in zip(run(), run(), strict=True):
        assert torch.equal(a.observations, b.observations)
        assert torch.equal(a.actions, b.actions)
        assert torch.equal(a.logprobs, b.logprobs)


def test_extras_of_shape_b1_are_stored_as_t_b_and_none_stays_none():
    class Extras(MLPPolicy):
        def forward(self, *states):
            _, dist, value = super().forward(*states)
            return None, dist, value, None, (value * 2, torch.ones(value.shape[0], 3))

    with torch.no_grad():
        r = rlx.Agent("CartPole-v1", num_envs=2).__call__(Extras()).steps(5)
    value, nothing, (double, wide) = r.others
    assert value.shape == (5, 2) and nothing is None
    assert double.shape == (5, 2) and wide.shape == (5, 2, 3)
    assert r.next_others[0].shape == (5, 2)


def test_previous_action_and_reward_inputs():
    seen = []

    class Prev(rlx.Parametric):
        previous_action_reward = True

        def __init__(self):
            super().__init__()
            self.logits = nn.Linear(2, 2)

        def forward(self, recur_state, obs, prev_action, prev_reward):
            seen.append((prev_action.clone(), prev_reward.clone()))
            return None, rlx.ActionDistribution(Categorical(logits=self.logits(obs)))

    agent = rlx.Agent(counting_vec([2, 3]))
    policy = Prev()
    with torch.no_grad():
        r = agent(policy).steps(5, dry=True)
    assert r.prev_rewards[:, 0].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert r.prev_rewards[:, 1].tolist() == [0.0, 1.0, 2.0, 0.0, 1.0]
    assert torch.equal(r.prev_actions[1:][~r.starts[1:]], r.actions[:-1][~r.starts[1:]])
    assert r.prev_actions[r.starts].eq(0).all()
    seen.clear()
    e = agent(policy).evaluate(r)
    assert e.logprobs.shape == (5, 2)  # the forward runs when the evaluation is first read
    assert len(seen) >= 1 and torch.equal(seen[0][1], r.prev_rewards.flatten())


def test_step_clips_gradients_and_reports_the_norm():
    policy = MLPPolicy()
    opt = torch.optim.SGD(policy.parameters(), lr=0.1)
    agent = rlx.Agent("CartPole-v1", optimizer=opt, grad_clip=0.01)
    r = agent(policy).episode(20)
    agent.zero_grad()
    (-(r.logprobs * r.mc_returns()).sum()).backward()
    before = [p.detach().clone() for p in policy.parameters()]
    norm = agent.step()
    assert norm > 0.01
    change = torch.sqrt(
        sum(((p - b) ** 2).sum() for p, b in zip(policy.parameters(), before, strict=True))
    )
    assert change.item() == pytest.approx(0.1 * 0.01, rel=1e-3)


def test_agent_without_optimizer_explains():
    agent = rlx.Agent("CartPole-v1")
    with pytest.raises(RuntimeError, match="optimizer="):
        agent.step()


def test_gymnasium_env_instance_and_factory():
    r = rlx.Agent(gym.make("CartPole-v1"))(MLPPolicy()).episode(10)
    assert r.batch_size == 1
    agent = rlx.Agent(lambda: CountingEnv(3), num_envs=4)
    with torch.no_grad():
        r = agent(MLPPolicy(obs_dim=2)).steps(3)
    assert r.shape == (3, 4) and r.terminations[2].all()


def test_grad_enabled_sampling_keeps_the_graph():
    policy = MLPPolicy()
    r = rlx.Agent("CartPole-v1", num_envs=2)(policy).steps(4)
    (r.logprobs.sum() + r.others[0].sum()).backward()
    assert all(p.grad is not None for p in policy.parameters())
    with torch.no_grad():
        r = rlx.Agent("CartPole-v1", num_envs=2)(policy).steps(4)
    assert not r.logprobs.requires_grad


@pytest.mark.parametrize("fast", [True, False])
def test_grad_enabled_sampling_backpropagates_on_both_paths_and_nested_observations(fast):
    """The rows written after a step must not be the ones the graph saved (the plain path
    writes them with torch, which autograd's version check sees)."""
    from helpers import DictTupleEnv, DictTuplePolicy

    with rlx.fast_paths(fast):
        for make, policy in ((lambda: "CartPole-v1", MLPPolicy()),
                             (lambda: DictTupleEnv, DictTuplePolicy())):  # fmt: skip
            r = rlx.Agent(make(), num_envs=2, seed=0)(policy).steps(8)
            r.logprobs.sum().backward()
            assert any(p.grad is not None for p in policy.parameters())


def test_box_actions_are_clipped_for_the_env_only():
    from helpers import GaussianPolicy

    seen = []

    class Recorder(gym.Wrapper):
        def step(self, action):
            seen.append(np.array(action))
            return super().step(action)

    policy = GaussianPolicy(3, 1)
    with torch.no_grad():
        policy.mean.bias.fill_(5.0)
    r = rlx.Agent(Recorder(gym.make("Pendulum-v1")))(policy).episode(5)
    assert (r.actions > 2).any()  # the rollout keeps the sampled action
    assert max(abs(a).max() for a in seen) <= 2.0  # the environment sees the clipped one


@pytest.mark.parametrize("num_envs, native", [(1, False), (4, False), (5, True), (8, True)])
def test_cartpole_uses_its_numpy_vector_env_only_where_it_is_faster(num_envs, native):
    agent = rlx.Agent("CartPole-v1", num_envs=num_envs)
    is_sync = isinstance(agent.env.unwrapped, gym.vector.SyncVectorEnv)
    assert is_sync is not native
    forced = rlx.Agent("CartPole-v1", num_envs=num_envs, vectorization="sync")
    assert isinstance(forced.env.unwrapped, gym.vector.SyncVectorEnv)


def test_a_policy_that_did_not_see_an_episode_start_begins_it_from_zero():
    agent = rlx.Agent(counting_vec([3]))
    a, b = GRUPolicy(obs_dim=2), GRUPolicy(obs_dim=2)
    with torch.no_grad():
        agent(a).steps(2)
        agent(b).steps(3)  # the episode ends under b; a new one begins
        r = agent(a).steps(1)
    assert r.observations[0, 0, 0] == 2 and not r.starts[0, 0]
    assert r.recurrent_states[0].eq(0).all()  # not a's stale state from the old episode


def test_agent_arguments_that_would_be_ignored_are_refused():
    vec = gym.make_vec("CartPole-v1", num_envs=2)
    with pytest.raises(ValueError, match="has 2 environments but num_envs=8"):
        rlx.Agent(vec, num_envs=8)
    with pytest.raises(ValueError, match="used as it is"):
        rlx.Agent(gym.make("CartPole-v1"), vectorization="async")


@pytest.mark.parametrize(
    ("env", "kind"), [("CartPole-v1", "rnn"), ("Pendulum-v1", "mlp"), (None, "rnn")]
)
def test_agent_state_dict_resumes_sampling_exactly(env, kind):
    def make():
        if env is None:
            return rlx.Agent(lambda: CountingEnv(7), num_envs=3, seed=0)
        return rlx.Agent(env, num_envs=3, seed=0)

    a = make()
    policy = make_policy(a.observation_space, a.action_space, kind)
    with torch.no_grad():
        a(policy).steps(45)
        buffer = io.BytesIO()
        torch.save(a.state_dict(policy), buffer)
        rng = torch.get_rng_state()
        expected = a(policy).steps(60)
        b = make()
        buffer.seek(0)
        assert b.load_state_dict(torch.load(buffer, weights_only=True), policy)
        torch.set_rng_state(rng)
        got = b(policy).steps(60)
    assert torch.equal(expected.observations, got.observations)
    assert torch.equal(expected.logprobs, got.logprobs)
    assert a.total_steps == b.total_steps and a.pop_episodes() == b.pop_episodes()

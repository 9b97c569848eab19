"""Cases found by trying rlx as a new user: each was a bug once."""

import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import CountingEnv, GRUPolicy, MLPPolicy, counting_vec
from torch import nn
from torch.distributions import Categorical, Normal, TanhTransform, TransformedDistribution

import rlx
from rlx.policies import make_policy


def test_returns_do_not_cross_joined_unrelated_segments():
    agent = rlx.Agent("CartPole-v1", seed=0)
    policy = MLPPolicy()
    with torch.no_grad():
        e1, e2 = agent(policy).episode(5), agent(policy).episode(5)
    joined = rlx.cat([e1, e2])
    assert joined.mc_returns(1.0)[0, 0] == 5.0
    (values,) = joined.others
    torch.testing.assert_close(joined.gae(values)[:5], e1.gae(e1.others[0]))


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


class PrevPolicy(rlx.Parametric):
    previous_action_reward = True

    def __init__(self, make):
        super().__init__()
        self.make = make
        self.lin = nn.Linear(3, 8)
        self.seen = []

    def forward(self, recur_state, obs, prev_action, prev_reward):
        self.seen.append(prev_action)
        return None, self.make(self.lin(obs))


@pytest.mark.parametrize(
    ("space", "make", "check"),
    [
        (spaces.MultiDiscrete([2, 3]),
         lambda x: rlx.ActionDistribution(Categorical(logits=x[:, :2]), Categorical(logits=x[:, 2:5])),
         lambda a: isinstance(a, torch.Tensor) and a.shape[-1] == 2),
        (spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Discrete(3)}),
         lambda x: rlx.ActionDistribution(Categorical(logits=x[:, :2]), Categorical(logits=x[:, 2:5])),
         lambda a: isinstance(a, dict) and set(a) == {"a", "b"}),
    ],
)  # fmt: skip
def test_previous_actions_follow_the_action_space_structure(space, make, check):
    class Env(gym.Env):
        observation_space = spaces.Box(-1, 1, (3,))
        action_space = space

        def reset(self, *, seed=None, options=None):
            return np.zeros(3, np.float32), {}

        def step(self, action):
            return np.zeros(3, np.float32), 1.0, False, False, {}

    policy = PrevPolicy(make)
    agent = rlx.Agent(lambda: Env(), num_envs=2)
    r = agent(policy).steps(4)
    assert all(check(a) for a in policy.seen)
    assert check(r.prev_actions)
    agent(policy).evaluate(r)


def test_a_policy_that_did_not_see_an_episode_start_begins_it_from_zero():
    agent = rlx.Agent(counting_vec([3]))
    a, b = GRUPolicy(obs_dim=2), GRUPolicy(obs_dim=2)
    with torch.no_grad():
        agent(a).steps(2)
        agent(b).steps(3)  # the episode ends under b; a new one begins
        r = agent(a).steps(1)
    assert r.observations[0, 0, 0] == 2 and not r.starts[0, 0]
    assert r.recurrent_states[0].eq(0).all()  # not a's stale state from the old episode


def test_rollout_indexing_like_torch():
    r = rlx.Agent("CartPole-v1", num_envs=4)(MLPPolicy()).steps(6)
    assert torch.equal(r[:, [0, -1]].rewards, r.rewards[:, [0, 3]])
    assert torch.equal(r[np.int64(2)].observations, r.observations[2:3])
    assert torch.equal(r[torch.tensor(-1)].actions, r.actions[-1:])
    for bad in (lambda: r[6], lambda: r[:, 4], lambda: r[:, [0, 9]], lambda: r[..., 0]):
        with pytest.raises(IndexError):
            bad()


def test_too_many_categories_are_caught_on_the_first_step():
    class Wide(rlx.Parametric):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, *states):
            logits = self.lin(states[1])
            logits = logits - torch.tensor([0.0, 0.0, 100.0])  # the third is never drawn
            return None, rlx.ActionDistribution(Categorical(logits=logits))

    with pytest.raises(ValueError, match="Categorical over 3 categories.*has 2"):
        rlx.Agent("CartPole-v1")(Wide()).steps(1)


def test_as_dry_lets_evaluated_and_dry_rollouts_join():
    agent = rlx.Agent("CartPole-v1")
    policy = MLPPolicy()
    evaluated = agent(policy).episode(5)
    dry = agent(policy).episode(5, dry=True)
    joined = evaluated.as_dry() + dry
    assert joined.dry and joined.batch_size == 2
    with pytest.raises(rlx.DryRolloutError):
        joined.logprobs


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


def test_episode_replay_keeps_whole_episodes_and_samples_padded_batches():
    from rlx.replay import EpisodeReplay

    agent = rlx.Agent(counting_vec([2, 4, 3]))
    with torch.no_grad():
        r = agent(MLPPolicy(obs_dim=2)).episode(10)
    replay = EpisodeReplay(capacity=4)
    replay.add(r)
    replay.add(r)
    assert len(replay) == 4 and [len(e) for e in replay.episodes] == [3, 2, 4, 3]
    batch = replay.sample(5, generator=torch.Generator().manual_seed(0))
    picks = torch.randint(4, (5,), generator=torch.Generator().manual_seed(0)).tolist()
    lengths = torch.tensor([len(replay.episodes[i]) for i in picks])
    assert batch.shape == (int(lengths.max()), 5)
    assert torch.equal(batch.valid.sum(0), lengths)
    assert torch.equal(batch.rewards.sum(0), (lengths * (lengths + 1) / 2).float())


@pytest.mark.parametrize(
    "env_id",
    ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1",
     "FrozenLake-v1", "CliffWalking-v1", "Taxi-v4", "Blackjack-v1"],
)  # fmt: skip
def test_environment_snapshots_survive_a_weights_only_round_trip(env_id):
    def make():
        return rlx.Agent(env_id, num_envs=2, seed=1)

    agent = make()
    policy = make_policy(agent.observation_space, agent.action_space, "mlp")
    with torch.no_grad():
        agent(policy).steps(30)
        buffer = io.BytesIO()
        torch.save(agent.state_dict(policy), buffer)
        rng = torch.get_rng_state()
        expected = agent(policy).steps(40)
        other = make()
        buffer.seek(0)
        assert other.load_state_dict(torch.load(buffer, weights_only=True), policy)
        torch.set_rng_state(rng)
        got = other(policy).steps(40)
    assert torch.equal(expected.rewards, got.rewards) and torch.equal(expected.actions, got.actions)

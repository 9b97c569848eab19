"""Nested observations and every supported action space, end to end."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import DictTupleEnv, DictTuplePolicy
from torch import nn
from torch.distributions import Bernoulli, Categorical, Normal

import rlx


def test_dict_observations_and_tuple_actions_train_end_to_end():
    torch.manual_seed(0)
    policy = DictTuplePolicy()
    agent = rlx.Agent(
        lambda: DictTupleEnv(),
        num_envs=4,
        seed=0,
        optimizer=torch.optim.Adam(policy.parameters(), lr=0.03),
    )
    first = None
    for _ in range(60):
        with torch.no_grad():
            dry = agent(policy).steps(12, dry=True)
        r = agent(policy).evaluate(dry)
        (values,) = r.others
        adv = r.gae(values, gamma=0.9, lam=0.95)
        loss = -(r.logprobs * adv).mean() + (r.returns - values).pow(2).mean()
        agent.zero_grad()
        loss.backward()
        agent.step()
        mean_reward = dry.rewards.mean().item()
        first = mean_reward if first is None else first
    obs = dry.observations
    assert set(obs) == {"position", "mode"}
    assert obs["position"].shape == (12, 4, 2) and obs["position"].dtype == torch.float32
    assert obs["mode"].shape == (12, 4) and obs["mode"].dtype == torch.int64
    choice, amount = dry.actions
    assert choice.shape == (12, 4) and amount.shape == (12, 4, 1)
    assert dry.truncations.any()  # episodes of 6 steps are truncated and bootstrapped
    # the policy learned to pick action 1 and an amount near 0.5 (best reward 1.0)
    assert mean_reward > first + 0.3 and mean_reward > 0.6


class Multi(rlx.Parametric):
    def __init__(self, make):
        super().__init__()
        self.make = make
        self.lin = nn.Linear(3, 8)

    def forward(self, *states):
        return None, self.make(self.lin(states[1]))


def constant_env(action_space: spaces.Space, seen: list | None = None) -> type[gym.Env]:
    """An environment with this action space and a constant 3-number observation that
    checks (and, given ``seen``, records) every action it receives."""

    class Env(gym.Env):
        observation_space = spaces.Box(-1, 1, (3,))

        def __init__(self):
            self.action_space = action_space

        def reset(self, *, seed=None, options=None):
            return np.zeros(3, np.float32), {}

        def step(self, action):
            assert self.action_space.contains(action), action
            if seen is not None:
                seen.append(action)
            return np.zeros(3, np.float32), 1.0, False, False, {}

    return Env


@pytest.mark.parametrize(
    ("space", "make", "check"),
    [
        (
            spaces.MultiDiscrete([3, 3]),
            lambda x: rlx.ActionDistribution(Categorical(logits=x.view(-1, 2, 4)[..., :3])),
            lambda a: a.shape == (2,),
        ),
        (
            spaces.MultiDiscrete([2, 4]),
            lambda x: rlx.ActionDistribution(
                Categorical(logits=x[:, :2]), Categorical(logits=x[:, 2:6])
            ),
            lambda a: a.shape == (2,) and a[0] < 2,
        ),
        (
            spaces.MultiBinary(5),
            lambda x: rlx.ActionDistribution(Bernoulli(logits=x[:, :5])),
            lambda a: a.shape == (5,) and set(np.unique(a)) <= {0, 1},
        ),
        (
            spaces.Dict({"go": spaces.Discrete(2), "speed": spaces.Box(0, 1, (2,))}),
            lambda x: rlx.ActionDistribution(
                speed=Normal(x[:, :2], 1.0), go=Categorical(logits=x[:, 2:4])
            ),
            lambda a: set(a) == {"go", "speed"} and a["speed"].min() >= 0 and a["speed"].max() <= 1,
        ),
        (
            spaces.Discrete(3, start=-1),
            lambda x: rlx.ActionDistribution(Categorical(logits=x[:, :3])),
            lambda a: -1 <= a <= 1,
        ),
    ],
)
def test_action_spaces_reach_the_env_as_it_expects(space, make, check):
    seen = []
    Env = constant_env(space, seen)
    agent = rlx.Agent(lambda: Env(), num_envs=2)
    r = agent(Multi(make)).steps(4)
    assert len(seen) == 8 and all(check(a) for a in seen)
    e = agent(Multi(make)).evaluate(r)
    assert e.logprobs.shape == (4, 2)


def test_tuple_observations_and_a_float64_policy():
    class Env(gym.Env):
        observation_space = spaces.Tuple((spaces.Box(-1, 1, (2,), np.float64), spaces.Discrete(4)))
        action_space = spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            self.t = 0
            return (np.full(2, 0.5), 1), {}

        def step(self, action):
            self.t += 1
            return (np.full(2, 0.5), self.t % 4), 1.0, self.t >= 3, False, {}

    class Policy(rlx.Parametric):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, *states):
            vec, index = states[1]
            x = torch.cat([vec, index[:, None].to(vec.dtype)], -1)
            return None, rlx.ActionDistribution(Categorical(logits=self.lin(x)))

    policy = Policy().double()
    agent = rlx.Agent(lambda: Env(), num_envs=2)
    r = agent(policy).episode(5)
    vec, index = r.observations
    assert vec.dtype == torch.float64 and index.dtype == torch.int64
    assert index[:, 0].tolist() == [1, 1, 2] and r.logprobs.dtype == torch.float64


def test_async_vector_env_gives_the_same_transitions():
    from helpers import CountingEnv

    fns = [lambda i=i: CountingEnv(2 + i, i) for i in range(2)]
    sync = rlx.Agent(gym.vector.SyncVectorEnv(fns))
    asyn = rlx.Agent(gym.vector.AsyncVectorEnv(fns))
    from helpers import MLPPolicy

    policy = MLPPolicy(obs_dim=2)
    with torch.no_grad():
        torch.manual_seed(1)
        a = sync(policy).steps(7)
        torch.manual_seed(1)
        b = asyn(policy).steps(7)
    asyn.close()
    assert torch.equal(a.next_observations, b.next_observations)
    assert torch.equal(a.rewards, b.rewards) and torch.equal(a.terminations, b.terminations)
    assert torch.equal(a.next_observations[..., 0][a.valid], a.observations[..., 0][a.valid] + 1)


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
    Env = constant_env(space)
    policy = PrevPolicy(make)
    agent = rlx.Agent(lambda: Env(), num_envs=2)
    r = agent(policy).steps(4)
    assert all(check(a) for a in policy.seen)
    assert check(r.prev_actions)
    agent(policy).evaluate(r)


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

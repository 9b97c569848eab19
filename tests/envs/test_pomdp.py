"""The partially observable environments registered on import."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlx  # noqa: F401  (registers the environments)
from rlx.policies import make_policy


@pytest.mark.parametrize(
    ("name", "base", "keep", "limit"),
    [
        ("IncompleteCartPole-v0", "CartPole-v0", [0, 1, 2], 200),
        ("IncompleteCartPole-v1", "CartPole-v1", [0, 1, 2], 500),
        ("PositionOnlyCartPole-v1", "CartPole-v1", [0, 2], 500),
        ("IncompletePendulum-v1", "Pendulum-v1", [0, 1], 200),
        ("IncompleteAcrobot-v1", "Acrobot-v1", [0, 1, 2, 3], 500),
    ],
)
def test_velocities_are_hidden(name, base, keep, limit):
    env, full = gym.make(name), gym.make(base)
    assert env.spec.max_episode_steps == limit
    assert env.observation_space.shape == (len(keep),)
    obs, _ = env.reset(seed=3)
    ref, _ = full.reset(seed=3)
    np.testing.assert_array_equal(obs, ref[keep])
    for _ in range(5):
        action = env.action_space.sample()
        obs, *_ = env.step(action)
        ref, *_ = full.step(action)
        np.testing.assert_array_equal(obs, ref[keep])
        assert env.observation_space.contains(obs)


def test_incomplete_cartpole_trains_through_the_agent():
    agent = rlx.Agent("IncompleteCartPole-v1", num_envs=2, seed=0)
    policy = make_policy(agent.observation_space, agent.action_space, "rnn")
    with torch.no_grad():
        r = agent(policy).episode(500)
    assert r.observations.shape[-1] == 3 and r.dones.sum() == 2

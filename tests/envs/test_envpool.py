"""EnvPool as a backend: the same Rollout out, its next-step resets never transitions."""

from __future__ import annotations

import pytest
import torch

import rlx
from rlx.algos.pg import PPO
from rlx.policies import make_policy

envpool = pytest.importorskip("envpool", reason="EnvPool is optional: pip install 'rlx[envpool]'")


def test_envpool_rollouts_hold_only_transitions():
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0, vectorization="envpool")
    policy = make_policy(agent.observation_space, agent.action_space)
    with torch.no_grad():
        rollout = agent(policy).steps(200)
    assert rollout.shape == (200, 4)
    invalid = ~rollout.valid
    assert invalid.any()  # the reset steps after each episode end
    assert (rollout.rewards[invalid] == 0).all()
    # every valid step of CartPole rewards 1, and each episode's length is its return
    assert (rollout.rewards[rollout.valid] == 1).all()
    episodes = agent.pop_episodes()
    assert episodes and all(ret == length for ret, length in episodes)
    done = rollout.terminations | rollout.truncations
    assert int(done.sum()) == len(episodes)


def test_ppo_trains_on_envpool():
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0, vectorization="envpool")
    policy = make_policy(agent.observation_space, agent.action_space)
    ppo = PPO(agent, policy, PPO.Config(num_envs=4, steps=32, epochs=2, minibatches=2))
    info = ppo.iteration()
    assert all(torch.isfinite(torch.tensor(v)) for v in info.values())


def test_envpool_needs_an_id():
    with pytest.raises(ValueError, match="needs an environment id"):
        rlx.Agent(lambda: None, vectorization="envpool")

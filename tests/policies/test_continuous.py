"""Ready actors for Box actions."""

import torch
from torch.distributions import Distribution

import rlx
from rlx.policies import DeterministicActor, GaussianExploration


def test_gaussian_exploration_with_its_noise_annealed_to_zero_acts_deterministically():
    """A std of 0 (exploration noise scheduled down to 0) is no Normal: torch's argument
    validation refuses a zero scale, so the actor's own action is taken."""
    agent = rlx.Agent("Pendulum-v1", num_envs=2, seed=0, validate_args=True)
    actor = DeterministicActor(agent.observation_space, agent.action_space)
    explorer = GaussianExploration(actor, std=0.0)
    saved = Distribution._validate_args
    Distribution.set_default_validate_args(True)
    try:
        with torch.no_grad():
            rollout = agent(explorer).steps(3)
            expected = actor.action(rollout.observations.reshape(6, -1)).reshape(3, 2, -1)
    finally:
        Distribution.set_default_validate_args(saved)
    torch.testing.assert_close(rollout.actions, expected)

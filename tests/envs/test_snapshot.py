"""Environment snapshots: an agent's state_dict round-trips through a weights-only load and
sampling resumes exactly."""

import io

import pytest
import torch

import rlx
from rlx.policies import make_policy


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

"""Ready recurrent networks that also take the previous action and reward (R2D1's input)."""

from __future__ import annotations

import pytest
import torch

import rlx
from rlx.policies import QNetwork, RecurrentPolicy


def networks(agent: rlx.Agent):
    obs, act = agent.observation_space, agent.action_space
    return [
        RecurrentPolicy(obs, act, hidden=16, previous_action_reward=True),
        RecurrentPolicy(obs, act, hidden=16, cell="lstm", shared=True,
                        previous_action_reward=True),
        QNetwork(obs, act, hidden=(16,), cell="gru", previous_action_reward=True, epsilon=0.5),
    ]  # fmt: skip


@pytest.mark.parametrize("index", [0, 1, 2], ids=["gru", "shared-lstm", "q-gru"])
def test_sampling_passes_them_and_evaluation_reproduces_the_log_probs(index):
    agent = rlx.Agent("IncompleteCartPole-v1", num_envs=3, seed=0)
    policy = networks(agent)[index]
    assert policy.previous_action_reward
    rollout = agent(policy).steps(30)
    assert rollout.prev_actions.shape == (30, 3) and rollout.prev_rewards.shape == (30, 3)
    # The previous action and reward of step t are the action and reward of step t - 1,
    # and zero where an episode starts.
    later = ~rollout.starts[1:]
    assert torch.equal(rollout.prev_actions[1:][later], rollout.actions[:-1][later])
    assert torch.equal(rollout.prev_rewards[1:][later], rollout.rewards[:-1][later])
    assert bool((rollout.prev_rewards[rollout.starts] == 0).all())
    evaluated = agent(policy).evaluate(rollout.as_dry())
    torch.testing.assert_close(evaluated.logprobs, rollout.logprobs)


def test_the_previous_action_and_reward_change_the_output():
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    for policy in networks(agent):
        obs = torch.zeros(2, 4)
        a = policy(None, obs, torch.tensor([0, 1]), torch.tensor([0.0, 1.0]))[1]
        b = policy(None, obs, torch.tensor([1, 0]), torch.tensor([1.0, 0.0]))[1]
        x, y = a.components[0], b.components[0]
        first = x.logits if hasattr(x, "logits") else x.values
        second = y.logits if hasattr(y, "logits") else y.values
        assert not torch.allclose(first, second)


def test_continuous_actions_enter_flat():
    agent = rlx.Agent("Pendulum-v1", num_envs=2, seed=0)
    policy = RecurrentPolicy(agent.observation_space, agent.action_space, hidden=8,
                             previous_action_reward=True)  # fmt: skip
    assert policy.actor.cell.input_size == 8 + 1 + 1  # features, a 1-D action, the reward
    rollout = agent(policy).steps(6)
    torch.testing.assert_close(agent(policy).evaluate(rollout.as_dry()).logprobs,
                               rollout.logprobs)  # fmt: skip


def test_a_q_network_without_a_cell_refuses_it():
    agent = rlx.Agent("CartPole-v1")
    with pytest.raises(ValueError, match="give a cell"):
        QNetwork(agent.observation_space, agent.action_space, previous_action_reward=True)


def test_r2d2_takes_them_by_default_and_learns_from_replayed_sequences():
    from rlx.algos.dqn import R2D2, R2D2Config

    agent = rlx.Agent("IncompleteCartPole-v1", num_envs=2, seed=0)
    config = R2D2Config(num_envs=2, steps=8, learning_starts=64, batch_size=4,
                        sequence_length=6, burn_in=2, gradient_steps=2)  # fmt: skip
    policy = R2D2.default_policy(agent.observation_space, agent.action_space, config, hidden=16)
    assert policy.previous_action_reward and policy.cell.input_size == 16 + 2 + 1
    r2d2 = R2D2(agent, policy, config)
    before = [p.detach().clone() for p in policy.parameters()]
    for _ in range(12):
        r2d2.iteration()
    batch = r2d2.replay.sample(4)
    assert batch.prev_actions is not None and batch.prev_rewards.shape == batch.rewards.shape
    assert r2d2.updates > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))
    off = R2D2.default_policy(agent.observation_space, agent.action_space, config, hidden=16,
                              previous_action_reward=False)  # fmt: skip
    assert not off.previous_action_reward and off.cell.input_size == 16


def test_the_command_line_option(tmp_path, capsys):
    import json

    from rlx.cli import main

    common = ["--total-steps", "300", "--no-progress", "--no-tensorboard", "--no-plot"]
    argv = ["train", "ppo", "IncompleteCartPole-v1", "--policy", "gru", "--num-envs", "2",
            "--steps", "32", "--previous-action-reward", "--run-dir", str(tmp_path / "ppo"),
            *common]  # fmt: skip
    assert main(argv) == 0
    saved = json.loads((tmp_path / "ppo" / "config.json").read_text())
    assert saved["run"]["previous_action_reward"] is True
    assert main(["eval", str(tmp_path / "ppo"), "--episodes", "1"]) == 0
    code = main(["train", "ppo", "CartPole-v1", "--previous-action-reward",
                 "--run-dir", str(tmp_path / "mlp"), *common])  # fmt: skip
    assert code != 0 and "give ppo a recurrent policy" in capsys.readouterr().err

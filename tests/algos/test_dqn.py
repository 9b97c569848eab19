"""The deep Q-learning family: targets, exploration, target networks, checkpoints."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from helpers import counting_vec
from torch import nn

import rlx
from rlx import schedules
from rlx.algos.dqn import C51, DQN, R2D2, C51Config, DQNConfig, R2D2Config, Rainbow, RainbowConfig
from rlx.core.returns import categorical_projection
from rlx.policies import QNetwork
from rlx.runner import RunConfig, Runner


def cartpole_dqn(**options) -> DQN:
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    config = DQNConfig(learning_starts=64, batch_size=32, steps=8, **options)
    policy = DQN.default_policy(agent.observation_space, agent.action_space, config, hidden=32)
    return DQN(agent, policy, config)


def fill(algo, steps: int) -> None:
    while algo.agent.total_steps < steps:
        algo.iteration()


@pytest.mark.parametrize("double", [False, True])
def test_the_loss_regresses_n_step_targets_that_bootstrap_only_after_truncation(double):
    torch.manual_seed(0)
    algo = cartpole_dqn(n_step=3, gamma=0.9, double=double, target_update_interval=10**6)
    fill(algo, 200)
    with torch.no_grad():  # make the target network differ from the online one
        for p in algo.target.parameters():
            p.add_(0.5 * torch.randn_like(p))
    batch = algo.replay.sample(256)
    obs, nxt = batch.observations[0], batch.next_observations[0]
    with torch.no_grad():
        online_next = algo.policy(None, nxt)[2]
        target_next = algo.target(None, nxt)[2]
        q = algo.policy(None, obs)[2].gather(1, batch.actions[0].long()[:, None])[:, 0]
    choice = online_next.argmax(1) if double else target_next.argmax(1)
    next_value = target_next.gather(1, choice[:, None])[:, 0]
    alive = (~batch.terminations[0]).float()
    target = batch.rewards[0] + batch.discounts[0] * alive * next_value
    expected = nn.functional.huber_loss(q, target)
    assert bool(batch.terminations.any())  # terminal transitions are in the sample
    info = algo.learn(batch)
    torch.testing.assert_close(info["Loss"], expected)


def test_epsilon_follows_its_schedule_and_the_target_network_its_interval():
    torch.manual_seed(0)
    epsilon = schedules.linear(1.0, 0.1, 400)
    algo = cartpole_dqn(epsilon=epsilon, target_update_interval=5, gradient_steps=1)
    for _ in range(30):
        start = algo.agent.total_steps
        info = algo.iteration()
        if start >= 64:
            assert algo.policy.epsilon == pytest.approx(epsilon(start))
            assert info["Schedule/epsilon"] == pytest.approx(epsilon(start))
        synced = all(torch.equal(a, b) for a, b in
                     zip(algo.target.parameters(), algo.policy.parameters(), strict=True))  # fmt: skip
        assert synced == (algo.updates % 5 == 0)


def test_c51_learns_the_cross_entropy_to_the_projected_target():
    torch.manual_seed(0)
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    config = C51Config(learning_starts=64, batch_size=32, steps=8, v_min=0.0, v_max=20.0,
                       atoms=11, gamma=0.9)  # fmt: skip
    policy = C51.default_policy(agent.observation_space, agent.action_space, config, hidden=32)
    algo = C51(agent, policy, config)
    fill(algo, 200)
    batch = algo.replay.sample(128)
    obs, nxt = batch.observations[0], batch.next_observations[0]
    with torch.no_grad():
        q_next, log_p_next = algo.target(None, nxt)[2:]
        best = q_next.argmax(1)
        probs = log_p_next[torch.arange(128), best].exp()
        alive = (~batch.terminations[0]).float()
        target = categorical_projection(probs, batch.rewards[0], batch.discounts[0] * alive,
                                        policy.support)  # fmt: skip
        log_p = policy(None, obs)[3][torch.arange(128), batch.actions[0].long()]
    expected = -(target * log_p).sum(1).mean()
    torch.testing.assert_close(algo.learn(batch)["Loss"], expected)


def test_categorical_projection_keeps_mass_and_moves_the_mean():
    support = torch.linspace(-5.0, 5.0, 21)
    probs = torch.softmax(torch.randn(6, 21), -1)
    rewards = torch.tensor([0.0, 1.0, -0.25, 2.0, 100.0, 0.3])
    discounts = torch.tensor([1.0, 0.5, 0.9, 0.0, 1.0, 0.7])
    target = categorical_projection(probs, rewards, discounts, support)
    torch.testing.assert_close(target.sum(1), torch.ones(6))
    moved = (rewards[:, None] + discounts[:, None] * support).clamp(-5, 5)
    torch.testing.assert_close((target * support).sum(1), (probs * moved).sum(1))
    assert target[4, -1] == pytest.approx(1.0)  # everything beyond the support lands on its end


def test_rainbow_and_r2d2_train_through_their_defaults():
    torch.manual_seed(0)
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    config = RainbowConfig(learning_starts=64, batch_size=16, steps=8, v_min=0.0, v_max=50.0)
    policy = Rainbow.default_policy(agent.observation_space, agent.action_space, config, hidden=16)
    assert policy.value is not None and any("sigma" in n for n, _ in policy.named_parameters())
    rainbow = Rainbow(agent, policy, config)
    fill(rainbow, 300)
    assert rainbow.updates > 0 and rainbow.replay.n_step == 3 and hasattr(rainbow.replay, "tree")

    agent = rlx.Agent("IncompleteCartPole-v1", num_envs=3, seed=0)
    config = R2D2Config(learning_starts=120, batch_size=4, steps=10, sequence_length=8,
                        burn_in=4, buffer_size=600, num_envs=3, n_step=2)  # fmt: skip
    policy = R2D2.default_policy(agent.observation_space, agent.action_space, config, hidden=16)
    r2d2 = R2D2(agent, policy, config)
    fill(r2d2, 400)
    batch = r2d2.replay.sample(4)
    assert batch.shape == (12, 4) and r2d2.updates > 0
    info = r2d2.learn(batch)
    assert torch.isfinite(info["Loss"]) and torch.isfinite(info["QMean"])


def test_a_q_network_refuses_continuous_actions():
    agent = rlx.Agent("Pendulum-v1")
    with pytest.raises(TypeError, match="Discrete action space"):
        QNetwork(agent.observation_space, agent.action_space)


def rows(path: Path) -> list[dict]:
    with open(path / "progress.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in ("CumTime", "StepsPerSecond")}
                for r in csv.DictReader(f)]  # fmt: skip


def test_dqn_runs_resume_exactly_with_their_replay(tmp_path):
    def config(total: int, name: str) -> tuple[RunConfig, DQNConfig]:
        run = RunConfig(algo="dqn", total_steps=total, run_dir=str(tmp_path / name),
                        progress=False, plot=False, tensorboard=False, checkpoint_every=7,
                        seed=2, hidden=16)  # fmt: skip
        return run, DQNConfig(num_envs=2, steps=16, learning_starts=100, batch_size=16,
                              prioritized=True, n_step=2,
                              epsilon=schedules.linear(1.0, 0.1, 1000))  # fmt: skip

    Runner(*config(1600, "full")).train()
    Runner(*config(900, "cut")).train()
    Runner.resume(tmp_path / "cut", total_steps=1600).train()
    assert rows(tmp_path / "cut") == rows(tmp_path / "full")
    assert {"Loss", "QMean", "Epsilon", "Schedule/epsilon"} <= set(rows(tmp_path / "full")[-1])


def test_rlx_train_dqn_from_the_command_line(tmp_path):
    from rlx.cli import main

    code = main(["train", "dqn", "CartPole-v1", "--total-steps", "600", "--learning-starts",
                 "100", "--epsilon", "linear(1.0, 0.1, 500)", "--dueling", "--no-progress",
                 "--no-plot", "--no-tensorboard", "--run-dir", str(tmp_path / "r")])  # fmt: skip
    assert code == 0
    last = rows(tmp_path / "r")[-1]
    assert float(last["Schedule/epsilon"]) < 1.0 and float(last["Updates"]) > 0


def test_counting_env_terminal_and_truncated_steps_reach_the_replay():
    agent = rlx.Agent(counting_vec([3], truncate=True, mode="SameStep"), seed=0)
    config = DQNConfig(learning_starts=10**6, steps=6)
    algo = DQN(agent, QNetwork(agent.observation_space, agent.action_space, hidden=(8,)), config)
    algo.iteration()
    assert int(algo.replay.storage["truncations"].sum()) == 2


def test_adam_eps_sets_the_optimizer_made_for_the_policy_and_follows_its_schedule():
    assert cartpole_dqn().optimizer.param_groups[0]["eps"] == 1e-5  # the default
    algo = cartpole_dqn(adam_eps=schedules.piecewise([(0, 1e-8), (16, 1e-3)], False))
    assert algo.optimizer.param_groups[0]["eps"] == 1e-8
    fill(algo, 32)  # the iteration that begins at step 16 reads 1e-3
    assert algo.optimizer.param_groups[0]["eps"] == 1e-3

    # An optimizer the user gave the agent keeps its own eps.
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    config = DQNConfig(learning_starts=64, batch_size=32, steps=8, adam_eps=1e-3)
    policy = DQN.default_policy(agent.observation_space, agent.action_space, config, hidden=32)
    agent.optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3, eps=0.5)
    algo = DQN(agent, policy, config)
    fill(algo, 32)
    assert algo.optimizer.param_groups[0]["eps"] == 0.5

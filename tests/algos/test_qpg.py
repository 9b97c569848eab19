"""DDPG, TD3 and SAC: targets, exploration, delayed and averaged updates, temperatures,
checkpoints, MuJoCo."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

import rlx
from rlx import schedules
from rlx.algos.qpg import DDPG, SAC, TD3, DDPGConfig, SACConfig, TD3Config
from rlx.policies import (
    Critic,
    DeterministicActor,
    GaussianActor,
    GaussianExploration,
    OUExploration,
    RecurrentCritic,
)
from rlx.runner import RunConfig, Runner


def pendulum(cls, **options):
    torch.manual_seed(0)
    agent = rlx.Agent("Pendulum-v1", num_envs=2, seed=0)
    config = cls.Config(learning_starts=64, batch_size=32, critic_hidden=32, **options)
    policy = cls.default_policy(agent.observation_space, agent.action_space, config, hidden=32)
    return cls(agent, policy, config)


def fill(algo, steps: int) -> None:
    while algo.agent.total_steps < steps:
        algo.iteration()


def test_td3_target_smooths_and_clips_and_takes_the_smaller_q():
    algo = pendulum(TD3, target_noise=0.2, noise_clip=0.5, gamma=0.9, policy_delay=10**6)
    fill(algo, 100)
    batch = algo.replay.sample(64)
    with torch.no_grad():
        mu = algo.actor_target.target.action(batch.next_observations[0])
        torch.manual_seed(5)
        noise = (torch.randn_like(mu) * 0.2).clamp(-0.5, 0.5) * 2.0  # Pendulum: half-width 2
        a = (mu + noise).clamp(-2.0, 2.0)
        q_next = algo.critic_target(batch.next_observations[0], a).min(0).values
        target = batch.rewards[0] + 0.9 * q_next * (~batch.terminations[0])
        q = algo.critic(batch.observations[0], batch.actions[0])
    expected = 0.5 * ((q - target) ** 2).mean(1).sum()
    torch.manual_seed(5)
    info = algo.learn(batch)
    torch.testing.assert_close(info["CriticLoss"], expected)
    assert "ActorLoss" not in info  # the actor waits for its delay


def test_td3_updates_actor_and_targets_every_policy_delay_steps():
    algo = pendulum(TD3, policy_delay=3, tau=0.5)
    fill(algo, 100)
    actor = [p.clone() for p in algo.policy.parameters()]
    target = [p.clone() for p in algo.actor_target.parameters()]
    changed = []
    for _ in range(6):
        algo.learn(algo.replay.sample(16))
        algo.updates += 1
        now = [p.clone() for p in algo.policy.parameters()]
        changed.append(any(not torch.equal(a, b) for a, b in zip(actor, now, strict=True)))
        actor = now
    assert changed == [False, False, True, False, False, True]
    assert not torch.equal(target[0], next(iter(algo.actor_target.parameters())))


def test_ddpg_actor_climbs_its_critic():
    algo = pendulum(DDPG, lr=1e-2)
    fill(algo, 200)
    batch = algo.replay.sample(128)
    before = algo.critic(batch.observations[0], algo.policy.action(batch.observations[0]))
    critic_grads = [p.grad.clone() for p in algo.critic.parameters()]
    for _ in range(30):  # actor steps only: the critic stays as it is
        actions = algo.agent(algo.policy).evaluate(batch, actions="mode").actions
        loss = -algo.critic(batch.observations, actions)[0].mean()
        rlx.core.optim.minimize(loss, algo.optimizer)
    after = algo.critic(batch.observations[0], algo.policy.action(batch.observations[0]))
    assert after[0].mean() > before[0].mean()
    # only the actor's gradients were computed: the critic's are as its last step left them
    pairs = zip(critic_grads, algo.critic.parameters(), strict=True)
    assert all(torch.equal(g, p.grad) for g, p in pairs)


def test_sac_temperature_moves_towards_the_target_entropy():
    for target, direction in ((-5.0, -1), (5.0, 1)):  # too much entropy: alpha falls
        algo = pendulum(SAC, target_entropy=target)
        fill(algo, 200)
        alphas = [float(algo.alpha())]
        for _ in range(20):
            algo.learn(algo.replay.sample(32))
            alphas.append(float(algo.alpha()))
        assert (alphas[-1] - alphas[0]) * direction > 0


def test_sac_actions_stay_in_bounds_and_log_probs_are_exact():
    algo = pendulum(SAC)
    fill(algo, 100)
    batch = algo.replay.sample(256)
    new = algo.agent(algo.policy).evaluate(batch, actions="sample")
    assert new.actions.abs().max() <= 2.0 and new.actions.requires_grad
    again = algo.agent(algo.policy).evaluate(batch.as_dry() if not batch.dry else batch)
    assert torch.isfinite(again.logprobs).all() and torch.isfinite(new.logprobs).all()
    stored = algo.replay.storage["actions"]
    assert stored.abs().max() <= 2.0


def test_discrete_sac_learns_on_cartpole_actions():
    torch.manual_seed(0)
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    config = SACConfig(learning_starts=64, batch_size=32, critic_hidden=32, lr=1e-3)
    policy = SAC.default_policy(agent.observation_space, agent.action_space, config, hidden=32)
    algo = SAC(agent, policy, config)
    assert algo.discrete and algo.target_entropy == pytest.approx(0.98 * 0.6931, rel=1e-3)
    fill(algo, 300)
    info = algo.learn(algo.replay.sample(32))
    assert torch.isfinite(info["CriticLoss"]) and info["QMean"] > 0


def test_exploration_noise_follows_its_schedule_and_ou_noise_restarts_with_episodes():
    algo = pendulum(DDPG, exploration_noise=schedules.linear(0.5, 0.1, 400))
    fill(algo, 300)
    assert algo.explorer.std == pytest.approx(0.5 + (0.1 - 0.5) * 298 / 400, abs=0.01)
    import gymnasium as gym

    agent = rlx.Agent(lambda: gym.make("Pendulum-v1", max_episode_steps=5), seed=0)
    actor = DeterministicActor(agent.observation_space, agent.action_space)
    ou = OUExploration(actor, sigma=0.3)
    with torch.no_grad():
        rollout = agent(ou).steps(12)
    noise = rollout.recurrent_states[:, 0, 0]
    assert noise[0] == 0 and noise[5] == 0 and noise[10] == 0  # episode starts
    assert (noise[1:5] != 0).all() and rollout.starts[[0, 5, 10], 0].all()
    gaussian = GaussianExploration(actor, std=0.0)
    with torch.no_grad():
        quiet = agent(gaussian).steps(3)
        mu = actor.action(quiet.observations[:, 0])
    torch.testing.assert_close(quiet.actions[:, 0], mu)


def test_ready_actors_and_critics_check_their_spaces():
    agent = rlx.Agent("CartPole-v1")
    with pytest.raises(TypeError, match="Box action space.*use sac"):
        DeterministicActor(agent.observation_space, agent.action_space)
    critic = Critic(agent.observation_space, agent.action_space, (8,), n=3)
    assert critic(torch.zeros(5, 4)).shape == (3, 5, 2)
    assert critic(torch.zeros(2, 5, 4)).shape == (3, 2, 5, 2)
    pend = rlx.Agent("Pendulum-v1")
    critic = Critic(pend.observation_space, pend.action_space, (8,))
    assert critic(torch.zeros(1, 7, 3), torch.zeros(1, 7, 1)).shape == (2, 1, 7)
    with pytest.raises(TypeError, match="critic\\(obs, actions\\)"):
        critic(torch.zeros(4, 3))
    assert GaussianActor(pend.observation_space, pend.action_space, (8,))(None, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="td3 has no recurrent actor.*recurrent-critic"):
        TD3.default_policy(pend.observation_space, pend.action_space, TD3Config(), kind="gru")
    with pytest.raises(ValueError, match="noise"):
        DDPG(pend, DeterministicActor(pend.observation_space, pend.action_space),
             DDPGConfig(noise="pink"))  # fmt: skip


def rows(path: Path) -> list[dict]:
    with open(path / "progress.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in ("CumTime", "StepsPerSecond")}
                for r in csv.DictReader(f)]  # fmt: skip


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_runs_resume_exactly(tmp_path, algo):
    def config(total: int, name: str):
        run = RunConfig(algo=algo, env="Pendulum-v1", total_steps=total, hidden=16,
                        run_dir=str(tmp_path / name), progress=False, plot=False,
                        tensorboard=False, checkpoint_every=5, seed=1)  # fmt: skip
        options = dict(steps=10, learning_starts=50, batch_size=16, critic_hidden=16)
        return run, (SACConfig if algo == "sac" else TD3Config)(**options)

    Runner(*config(400, "full")).train()
    Runner(*config(230, "cut")).train()
    Runner.resume(tmp_path / "cut", total_steps=400).train()
    assert rows(tmp_path / "cut") == rows(tmp_path / "full")


@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg", "ppo"])
def test_mujoco_environments_train_with_every_algorithm(tmp_path, monkeypatch, algo):
    pytest.importorskip("mujoco", reason="MuJoCo is an extra: pip install 'rlx[mujoco]'")
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to MUJOCO_LOG.TXT here
    from rlx.cli import main

    options = ["--learning-starts", "64", "--batch-size", "32"] if algo != "ppo" else [
        "--steps", "64", "--num-envs", "2"]  # fmt: skip
    code = main(["train", algo, "HalfCheetah-v5", "--total-steps", "200", "--hidden", "16",
                 *options, "--no-progress", "--no-plot", "--no-tensorboard",
                 "--run-dir", str(tmp_path / algo)])  # fmt: skip
    assert code == 0
    assert int(rows(tmp_path / algo)[-1]["CumSteps"]) >= 200


def test_sac_learns_from_sequences_with_a_recurrent_actor():
    torch.manual_seed(0)
    agent = rlx.Agent("IncompletePendulum-v1", num_envs=2, seed=0)
    config = SACConfig(learning_starts=100, batch_size=8, critic_hidden=16, sequence_length=6,
                       burn_in=3, steps=10)  # fmt: skip
    policy = SAC.default_policy(agent.observation_space, agent.action_space, config,
                                kind="gru", hidden=16)  # fmt: skip
    sac = SAC(agent, policy, config)
    fill(sac, 300)
    batch = sac.replay.sample(8)
    assert batch.shape == (10, 8) and batch.recurrent_states is not None  # 3 + 6 + 1 steps
    before = [p.clone() for p in policy.parameters()]
    info = sac.learn(batch)
    assert torch.isfinite(info["CriticLoss"]) and torch.isfinite(info["ActorLoss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))
    # without sequences a recurrent actor would lose its state: refused, with the fix
    flat = SAC(rlx.Agent("IncompletePendulum-v1", seed=0), policy, SACConfig(learning_starts=5))
    with pytest.raises(ValueError, match="sequence_length"):
        for _ in range(20):  # random actions first, then the recurrent actor's
            flat.iteration()


def test_recurrent_critic_restarts_at_episode_starts_and_its_state_reads_observations_only():
    torch.manual_seed(0)
    agent = rlx.Agent("IncompletePendulum-v1")
    critic = RecurrentCritic(agent.observation_space, agent.action_space, hidden=8, n=2)
    obs, actions = torch.randn(6, 3, 2), torch.rand(6, 3, 1) * 4 - 2
    starts = torch.zeros(6, 3, dtype=torch.bool)
    starts[2, 0] = True
    with torch.no_grad():
        q = critic(obs, actions, starts)
        alone = critic(obs[2:, :1], actions[2:, :1])
        changed = actions.clone()
        changed[1] = -changed[1]
        q_changed = critic(obs, changed, starts)
    assert q.shape == (2, 6, 3)
    torch.testing.assert_close(q[:, 2:, :1], alone)  # a new episode: a fresh state
    assert not torch.allclose(q[:, 1], q_changed[:, 1])  # the action at a step counts there,
    torch.testing.assert_close(q[:, 2:], q_changed[:, 2:])  # and not later
    with pytest.raises(ValueError, match="sequence_length"):
        critic(obs[0], actions[0])


@pytest.mark.parametrize(("cls", "kind"), [(SAC, "mlp"), (TD3, "mlp"), (SAC, "gru")])
def test_recurrent_critics_learn_from_sequences(cls, kind):
    torch.manual_seed(0)
    agent = rlx.Agent("IncompletePendulum-v1", num_envs=2, seed=0)
    config = cls.Config(learning_starts=100, batch_size=8, critic_hidden=16, sequence_length=6,
                        burn_in=3, steps=10, recurrent_critic=True, critic_lr=1e-2)  # fmt: skip
    policy = cls.default_policy(agent.observation_space, agent.action_space, config,
                                kind=kind, hidden=16)  # fmt: skip
    algo = cls(agent, policy, config)
    assert isinstance(algo.critic, RecurrentCritic)
    fill(algo, 300)
    batch = algo.replay.sample(8)
    assert batch.shape == (10, 8)
    losses = [algo.learn(batch)["CriticLoss"].item() for _ in range(60)]
    assert all(map(math.isfinite, losses)) and losses[-1] < 0.5 * losses[0], losses
    with pytest.raises(ValueError, match="set to learn from single transitions. Set sequence"):
        cls(agent, policy, cls.Config(recurrent_critic=True))


@pytest.mark.parametrize("cls", [DDPG, TD3, SAC])
def test_prioritized_replay_weights_the_critic_loss_and_takes_td_errors_as_priorities(cls):
    """rlmodels' "DDPG with PER": each sample's squared error weighted by its importance
    weight in the critic's loss; the first critic's TD errors become its priorities."""
    delay = dict(policy_delay=1) if cls is TD3 else {}  # TD3's actor steps every update
    algo = pendulum(cls, prioritized=True, **delay)
    fill(algo, 200)
    batch = algo.replay.sample(32)
    assert not torch.allclose(batch.weights, torch.ones_like(batch.weights))  # weights vary
    torch.manual_seed(3)
    q, target, _, _ = algo.td(batch)
    expected = 0.5 * (batch.weights * (q - target) ** 2).mean(dim=(1, 2)).sum()
    torch.manual_seed(3)
    info = algo.learn(batch)
    torch.testing.assert_close(info["CriticLoss"], expected.detach())
    errors = (q - target)[0].detach().abs().reshape(-1).double() + algo.replay.eps
    latest = dict(zip(batch.indices.tolist(), errors.tolist(), strict=True))  # a repeat: its last
    stored = torch.as_tensor(algo.replay.tree[list(latest)])
    expected = torch.tensor(list(latest.values()), dtype=torch.float64) ** algo.replay.alpha
    torch.testing.assert_close(stored.double(), expected)

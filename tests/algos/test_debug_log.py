"""The DEBUG log of the loss before and after each update (rlmodels' promise), through
the algorithms' shared ``batch_loss`` hook."""

import logging

import pytest
import torch

import rlx
from rlx.algos.registry import algorithm_class

CASES = [
    ("ppo", dict(value_clip=0.2, entropy_coef=0.01, epochs=2)),
    ("a2c", dict(entropy_coef=0.01)),
    ("reinforce", dict(episodes=False, steps=16)),
    ("reinforce-baseline", dict(episodes=False, steps=16)),
    ("offpac", dict(horizon=64, updates=2, batch_episodes=2)),
]


@pytest.mark.parametrize(("name", "options"), CASES, ids=[c[0] for c in CASES])
def test_each_update_logs_its_batch_loss_before_and_after(name, options, caplog):
    cls = algorithm_class(name)
    config = (
        cls.Config(num_envs=4, **{"steps": 32, **options})
        if name != "offpac"
        else (cls.Config(num_envs=4, **options))
    )
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0)
    algo = cls(agent, cls.default_policy(agent.observation_space, agent.action_space, config),
               config)  # fmt: skip
    rollouts = []
    sample = algo.sample
    algo.sample = lambda: rollouts.append(sample()) or rollouts[-1]
    with caplog.at_level(logging.DEBUG, logger="rlx"):
        algo.iteration()
    (record,) = [r for r in caplog.records if "loss" in r.getMessage()]
    before, after = (float(x) for x in record.getMessage().split(": loss ")[1].split(" -> "))
    with torch.no_grad():
        now = float(algo.batch_loss(rollouts[0]))
    assert after == pytest.approx(now, rel=1e-5) and before != pytest.approx(after, rel=1e-6)


def test_nothing_is_computed_for_the_log_above_debug_level(caplog):
    cls = algorithm_class("ppo")
    config = cls.Config(num_envs=2, steps=16, epochs=1)
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    algo = cls(agent, cls.default_policy(agent.observation_space, agent.action_space, config),
               config)  # fmt: skip
    calls = []
    algo.batch_loss = lambda rollout: calls.append(1)
    with caplog.at_level(logging.INFO, logger="rlx"):
        algo.iteration()
    assert not calls


REPLAY_CASES = [
    ("dqn", dict(double=True, prioritized=True)),
    # NoisyNet's forward draws noise, and a policy's first evaluation draws differently
    # from later ones: here the log would be the first, so Rainbow runs without it.
    ("rainbow", dict(n_step=2, noisy=False)),
    ("r2d2", dict(sequence_length=8, burn_in=2, batch_size=4)),
    ("ddpg", dict(prioritized=True)),
    ("td3", dict()),
    ("sac", dict(sequence_length=4)),  # with a recurrent critic's sequences
]


def _replay_run(name, options, level, caplog):
    cls = algorithm_class(name)
    config = cls.Config(num_envs=2, steps=4, learning_starts=64, gradient_steps=2,
                        **{"batch_size": 16, **options})  # fmt: skip
    torch.manual_seed(0)
    continuous = name in ("ddpg", "td3", "sac")
    agent = rlx.Agent("Pendulum-v1" if continuous else "CartPole-v1", num_envs=2, seed=0)
    kind = "gru" if name == "r2d2" else "mlp"
    policy = cls.default_policy(agent.observation_space, agent.action_space, config, kind)
    algo = cls(agent, policy, config)
    with caplog.at_level(level, logger="rlx"):
        for _ in range(20):
            algo.iteration()
    return algo, [r.getMessage() for r in caplog.records if ": loss " in r.getMessage()]


@pytest.mark.parametrize(("name", "options"), REPLAY_CASES, ids=[c[0] for c in REPLAY_CASES])
def test_replay_algorithms_log_each_gradient_step_and_train_the_same(name, options, caplog):
    logged, messages = _replay_run(name, options, logging.DEBUG, caplog)
    caplog.clear()
    quiet, silent = _replay_run(name, options, logging.INFO, caplog)
    # 20 iterations of 8 steps; the 9th starts at step 64 and learns, as do the 11 after.
    assert len(messages) == 2 * 12 and not silent
    pairs = [
        (float(a), float(b)) for a, b in (m.split(": loss ")[1].split(" -> ") for m in messages)
    ]
    assert all(a != b for a, b in pairs)
    # The log draws nothing from the generators training uses.
    for p, q in zip(logged.policy.parameters(), quiet.policy.parameters(), strict=True):
        assert torch.equal(p, q)


def _cmaes_run(level, caplog, iterations=2):
    cls = algorithm_class("cmaes")
    config = cls.Config(num_envs=4, horizon=60, candidate_episodes=2, population=8)
    torch.manual_seed(0)
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0)
    algo = cls(agent, cls.default_policy(agent.observation_space, agent.action_space, config,
                                         hidden=8), config)  # fmt: skip
    with caplog.at_level(level, logger="rlx"):
        for _ in range(iterations):
            algo.iteration()
    return algo, [r.getMessage() for r in caplog.records if ": loss " in r.getMessage()]


def test_cmaes_logs_minus_the_policys_return_before_and_after_each_generation(caplog):
    logged, messages = _cmaes_run(logging.DEBUG, caplog)
    assert len(messages) == 2
    before, after = (float(x) for x in messages[-1].split(": loss ")[1].split(" -> "))
    # The policy after the generation, played again from the same place: the same loss.
    assert logged._debug_fitness_loss() is None  # nothing is played above DEBUG level
    with caplog.at_level(logging.DEBUG, logger="rlx"):
        assert logged._debug_fitness_loss() == pytest.approx(after, rel=1e-12)
    assert before != after and before <= 0 and after <= 0
    caplog.clear()
    quiet, silent = _cmaes_run(logging.INFO, caplog)
    assert not silent
    # Playing the logged episodes changed nothing in training.
    assert torch.equal(logged.strategy.mean, quiet.strategy.mean)
    assert logged.agent.total_steps == quiet.agent.total_steps
    assert logged.agent.pop_episodes() == quiet.agent.pop_episodes()

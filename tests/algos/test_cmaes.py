"""CMA-ES: the strategy optimises, candidates are scored in the right environments, any
policy can be searched, and a checkpoint resumes exactly."""

from __future__ import annotations

import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import DictTupleEnv, DictTuplePolicy, GaussianPolicy, GRUPolicy, MLPPolicy
from torch.nn.utils import parameters_to_vector

import rlx
from rlx import schedules
from rlx.algos.es import CMA, CMAES, CMAESConfig
from rlx.policies.actor import ActorPolicy


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2).sum(-1)


class ActionIsRewardEnv(gym.Env):
    """One step; the observation is 1 and the reward is the (clipped) action itself, so a
    linear policy's return is its weight plus its bias."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Box(-10.0, 10.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        return np.ones(1, np.float32), float(action[0]), True, False, {}


def save_and_load(state):
    """Through a file read as the runner reads checkpoints (weights_only: no pickle)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# ------------------------------------------------------------------------ the strategy
def test_the_strategy_minimises_rosenbrock():
    strategy = CMA(torch.zeros(4), 0.5, generator=torch.Generator().manual_seed(0))
    assert strategy.population == 8  # 4 + floor(3 ln 4)
    for _ in range(250):
        x = strategy.ask()
        strategy.tell(x, -rosenbrock(x))
    assert rosenbrock(strategy.mean) < 1e-12
    torch.testing.assert_close(strategy.mean, torch.ones(4, dtype=torch.float64), atol=1e-5, rtol=0)


@pytest.mark.parametrize("diagonal", [False, True])
def test_the_strategy_learns_the_scale_of_each_direction(diagonal):
    """On an ellipsoid whose axes differ by 100, C's condition number becomes ~100² and
    the mean converges; an isotropic search would take far longer."""
    scales = torch.logspace(0, 2, 6, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)
    strategy = CMA(torch.ones(6), 1.0, diagonal=diagonal, generator=generator)
    for _ in range(250):
        x = strategy.ask()
        strategy.tell(x, -(scales * x).pow(2).sum(-1))
    assert 1e3 < strategy.condition < 1e5
    assert (scales * strategy.mean).pow(2).sum() < 1e-10


def test_a_strategy_state_resumes_identically_through_a_weights_only_checkpoint():
    def run(strategy, generations):
        for _ in range(generations):
            x = strategy.ask()
            strategy.tell(x, -rosenbrock(x))
        return strategy.ask()

    first = CMA(torch.zeros(5), 0.3, generator=torch.Generator().manual_seed(3))
    run(first, 7)
    state = save_and_load(first.state_dict())
    expected = run(first, 5)
    second = CMA(torch.zeros(5), 0.3)
    second.load_state_dict(state)
    assert torch.equal(run(second, 5), expected)
    with pytest.raises(ValueError, match="same policy and options"):
        CMA(torch.zeros(5), 0.3, population=20).load_state_dict(state)


def test_tell_refuses_scores_that_do_not_match_or_are_not_finite():
    strategy = CMA(torch.zeros(3), 0.1)
    x = strategy.ask()
    with pytest.raises(ValueError, match="scores"):
        strategy.tell(x, torch.zeros(2))
    with pytest.raises(ValueError, match="not finite"):
        strategy.tell(x, torch.full((strategy.population,), math.nan))


# ------------------------------------------------------------------- scoring candidates
def test_each_candidate_is_scored_in_its_own_environments_and_only_there():
    """B=3 environments, 4 candidates, 2 episodes each: rounds mix candidates and the last
    one has a spare environment; every candidate's fitness is still its own return."""
    agent = rlx.Agent(ActionIsRewardEnv, num_envs=3, seed=0)
    policy = ActorPolicy(agent.observation_space, agent.action_space, hidden=())
    algo = CMAES(agent, policy, CMAESConfig(num_envs=3, population=4, candidate_episodes=2))
    candidates = torch.zeros(4, 3, dtype=torch.float64)  # [log_std, weight, bias]
    candidates[:, 1] = torch.tensor([1.0, -2.0, 3.0, 0.5])
    candidates[:, 2] = torch.tensor([0.5, 0.25, 20.0, -1.0])  # 23 is clipped to 10
    fitness = algo.evaluate(candidates, episodes=2, horizon=5)
    torch.testing.assert_close(fitness, torch.tensor([1.5, -1.75, 10.0, -0.5], dtype=torch.float64))
    assert agent.total_steps == 9  # 3 rounds of 3 one-step episodes, the spare one included


def test_the_policy_holds_the_best_candidate_or_the_mean():
    for keep in ("best", "mean"):
        agent = rlx.Agent(ActionIsRewardEnv, num_envs=4, seed=0)
        policy = ActorPolicy(agent.observation_space, agent.action_space, hidden=())
        algo = CMAES(agent, policy, CMAESConfig(num_envs=4, sigma0=1.0, keep=keep))
        for _ in range(3):
            info = algo.iteration()
        held = parameters_to_vector(policy.parameters()).double()
        expected = algo.best if keep == "best" else algo.strategy.mean
        torch.testing.assert_close(held, expected, atol=1e-6, rtol=1e-6)
        # the best return is the best candidate's: weight + bias, clipped to the Box
        assert info["BestReturn"] == pytest.approx(
            float((algo.best[1] + algo.best[2]).clamp(-10, 10)), abs=1e-5
        )
        assert info["BestReturn"] >= info["GenerationBest"] >= info["MeanReturn"]


def test_it_solves_a_short_cartpole_in_a_few_generations():
    agent = rlx.Agent("CartPole-v1", num_envs=8, seed=0)
    judge = rlx.Agent("CartPole-v1", num_envs=8, seed=100)
    config = CMAESConfig(horizon=100)
    policy = CMAES.default_policy(agent.observation_space, agent.action_space, config, hidden=4)
    algo = CMAES(agent, policy, config)
    scores = []  # of the policy held after each generation
    while len(scores) < 15 and not (scores and scores[-1] >= 95):
        algo.iteration()
        with torch.no_grad():
            rollout = judge(policy).episode(100, deterministic=True)
        scores.append(rollout.rewards.sum(0).mean().item())
    assert scores[-1] >= 95 and len(scores) <= 10, scores


# ------------------------------------------------------------------------ any policy
def _pendulum_actor():
    agent = rlx.Agent("Pendulum-v1", num_envs=4, seed=0)
    return agent, ActorPolicy(agent.observation_space, agent.action_space, (8,))


@pytest.mark.parametrize(
    "make, options",
    [
        (
            lambda: (rlx.Agent("CartPole-v1", num_envs=4, seed=0), MLPPolicy()),
            {},
        ),  # value head: dropped
        (lambda: (rlx.Agent("CartPole-v1", num_envs=4, seed=0), GRUPolicy()), {}),  # recurrent
        (_pendulum_actor, {}),
        (_pendulum_actor, {"diagonal": True}),
        (
            lambda: (rlx.Agent("Pendulum-v1", num_envs=4, seed=0), GaussianPolicy(3, 1)),
            {"deterministic": False},
        ),
        (lambda: (rlx.Agent(DictTupleEnv, num_envs=4, seed=0), DictTuplePolicy()), {}),
    ],
    ids=["discrete-with-critic", "gru", "continuous", "diagonal", "sampled-gaussian", "dict-tuple"],
)
def test_any_policy_can_be_searched(make, options):
    agent, policy = make()
    config = CMAESConfig(num_envs=4, horizon=30, sigma0=0.2, **options)
    algo = CMAES(agent, policy, config)
    before = parameters_to_vector(policy.parameters()).clone()
    for _ in range(2):
        info = algo.iteration()
    assert math.isfinite(info["MeanReturn"]) and info["Sigma"] > 0
    assert not torch.equal(parameters_to_vector(policy.parameters()), before)
    assert agent.total_steps > 0 and agent.pop_episodes()


def test_the_default_policy_is_a_small_actor_and_the_population_fills_the_rounds():
    agent = rlx.Agent("CartPole-v1", num_envs=8, seed=0)
    config = CMAESConfig()
    policy = CMAES.default_policy(agent.observation_space, agent.action_space, config)
    n = sum(p.numel() for p in policy.parameters())
    assert n == 4 * 64 + 64 + 64 * 2 + 2  # one tanh layer, no critic
    assert CMAES(agent, policy, config).strategy.population == 22  # 4 + floor(3 ln 450)
    # one episode per candidate: 22 rounded up to 24 fills three rounds of 8 environments
    assert CMAES(agent, policy, CMAESConfig(candidate_episodes=1)).strategy.population == 24
    config = CMAESConfig(candidate_episodes=4, population=5)
    assert CMAES(agent, policy, config).strategy.population == 5  # as given


def test_scheduled_options_are_followed_and_logged():
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0)
    config = CMAESConfig(
        num_envs=4,
        population=4,
        horizon=schedules.linear(5, 20, 100),
        candidate_episodes=schedules.piecewise([(0, 1), (20, 2)], interpolate=False),
    )
    policy = CMAES.default_policy(agent.observation_space, agent.action_space, config, hidden=4)
    algo = CMAES(agent, policy, config)
    info = algo.iteration()
    assert agent.total_steps == 4 * 5  # one round of 5 steps (CartPole lasts longer)
    assert info["Schedule/candidate_episodes"] == 1 and info["Schedule/horizon"] == 5
    info = algo.iteration()
    assert info["Schedule/candidate_episodes"] == 2 and info["Schedule/horizon"] == 8
    assert 20 + 4 * 5 < agent.total_steps <= 20 + 2 * 4 * 8  # two rounds of up to 8 steps


# ---------------------------------------------------------------------- checkpoints
def test_a_checkpointed_run_resumes_exactly():
    def build():
        agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0)
        config = CMAESConfig(num_envs=4, horizon=50, sigma0=0.3, candidate_episodes=3)
        policy = CMAES.default_policy(agent.observation_space, agent.action_space, config, hidden=4)
        algo = CMAES(agent, policy, config)
        algo.seed(7)
        return agent, policy, algo

    agent, policy, algo = build()
    for _ in range(3):
        algo.iteration()
    state = save_and_load({"algorithm": algo.state_dict(), "agent": agent.state_dict(policy)})
    expected = [algo.iteration() for _ in range(3)]

    agent, policy, algo = build()
    algo.load_state_dict(state["algorithm"])
    assert agent.load_state_dict(state["agent"], policy)
    assert [algo.iteration() for _ in range(3)] == expected
    assert algo.iterations == 6


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "options, message",
    [
        ({"population": 1}, "--population must be at least 2"),
        ({"sigma0": 0.0}, "--sigma0 must be positive"),
        ({"candidate_episodes": 0}, "--candidate-episodes must be at least 1"),
        (
            {"candidate_episodes": schedules.linear(4, 0, 100)},
            "--candidate-episodes must be at least 1",
        ),
        ({"keep": "last"}, "--keep must be 'best' or 'mean'"),
        ({"horizon": 0}, "--horizon must be at least 1"),
    ],
)
def test_bad_options_are_named(options, message):
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    with pytest.raises(ValueError, match=message):
        CMAES(agent, MLPPolicy(), CMAESConfig(num_envs=2, **options))


def test_a_large_policy_is_pointed_to_the_diagonal_covariance():
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    big = MLPPolicy(hidden=4096)  # ~37k parameters
    with pytest.raises(ValueError, match="--diagonal"):
        CMAES(agent, big, CMAESConfig(num_envs=2))
    assert CMAES(agent, big, CMAESConfig(num_envs=2, diagonal=True)).strategy.n > 20_000


# ------------------------------------------------------------ the runner and the CLI
@pytest.fixture
def registered(monkeypatch):
    """``cmaes`` in the registry the runner and the CLI build algorithms from."""
    from rlx.algos import registry

    monkeypatch.setitem(registry.ALGORITHMS, "cmaes", CMAES)


def test_rlx_train_cmaes_and_resume_continue_exactly(tmp_path, registered):
    import csv

    from rlx.cli import main
    from rlx.runner import Runner

    def rows(run_dir):
        with open(run_dir / "progress.csv", newline="") as f:
            return [{k: v for k, v in r.items() if k not in ("CumTime", "StepsPerSecond")}
                    for r in csv.DictReader(f)]  # fmt: skip

    args = ["train", "cmaes", "CartPole-v1", "--num-envs", "4", "--horizon", "40",
            "--hidden", "4", "--sigma0", "0.5", "--candidate-episodes", "linear(1, 2, 400)",
            "--checkpoint-every", "2", "--eval-every", "300", "--eval-episodes", "2",
            "--no-progress", "--no-plot", "--no-tensorboard", "--seed", "2"]  # fmt: skip
    assert main([*args, "--total-iterations", "5", "--run-dir", str(tmp_path / "full")]) == 0
    assert main([*args, "--total-iterations", "3", "--run-dir", str(tmp_path / "cut")]) == 0
    Runner.resume(tmp_path / "cut", total_iterations=5).train()
    full = rows(tmp_path / "full")
    assert len(full) == 5 and rows(tmp_path / "cut") == full
    assert {"BestReturn", "MeanReturn", "Sigma", "Schedule/candidate_episodes"} <= set(full[0])

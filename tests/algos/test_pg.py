"""The policy-gradient algorithms: the mistakes they must not make, and every action kind."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from helpers import CountingEnv, DictTupleEnv, DictTuplePolicy, GRUPolicy, MLPPolicy

import rlx
from rlx.algos.pg import A2C, PPO, REINFORCE, OffPAC, REINFORCEBaseline
from rlx.policies import make_policy

C = 2.0  # the constant value of ConstantValue


class ConstantValue(MLPPolicy):
    """A categorical policy whose value is C everywhere (so targets are predictable)."""

    def __init__(self) -> None:
        super().__init__(obs_dim=2)
        torch.nn.init.zeros_(self.value.weight)
        torch.nn.init.constant_(self.value.bias, C)


def discounted(rewards: list[float], gamma: float, bootstrap: float = 0.0) -> list[float]:
    out, g = [], bootstrap
    for r in reversed(rewards):
        g = r + gamma * g
        out.append(g)
    return out[::-1]


def test_actor_critic_discounts_and_standardising_leaves_the_value_loss_alone():
    gamma = 0.9
    expected_returns = torch.tensor(discounted([1, 2, 3, 4], gamma))  # CountingEnv rewards
    expected_value_loss = 0.5 * (expected_returns - C).pow(2).mean()
    losses = {}
    for standardize in (False, True):
        agent = rlx.Agent(lambda: CountingEnv(4), num_envs=2, seed=0)
        config = REINFORCEBaseline.Config(num_envs=2, gamma=gamma, standardize_return=standardize)
        algo = REINFORCEBaseline(agent, ConstantValue(), config)
        with torch.no_grad():
            rollout = algo.sample()
        losses[standardize] = algo.losses(rollout)
        torch.testing.assert_close(losses[standardize]["ValueLoss"], expected_value_loss)
    # standardising changes the policy-gradient weights only
    assert not torch.isclose(losses[False]["PolicyLoss"], losses[True]["PolicyLoss"])


def test_plain_reinforce_weights_log_probs_by_discounted_returns():
    gamma = 0.5
    agent = rlx.Agent(lambda: CountingEnv(3), num_envs=1, seed=0)
    policy = ConstantValue()
    algo = REINFORCE(agent, policy, REINFORCE.Config(num_envs=1, gamma=gamma))
    with torch.no_grad():
        rollout = algo.sample()
    returns = torch.tensor(discounted([1, 2, 3], gamma))
    logprobs = agent(policy).evaluate(rollout).logprobs[:, 0]
    expected = -(logprobs * returns).mean()
    torch.testing.assert_close(algo.losses(rollout)["PolicyLoss"], expected)


@pytest.mark.parametrize("truncate", [False, True])
def test_a2c_bootstraps_after_truncation_and_never_after_termination(truncate):
    gamma = 0.9
    agent = rlx.Agent(lambda: CountingEnv(3, truncate=truncate), num_envs=1, seed=0)
    config = A2C.Config(num_envs=1, steps=5, gamma=gamma, lam=1.0)
    algo = A2C(agent, ConstantValue(), config)
    with torch.no_grad():
        rollout = algo.sample()  # steps 1, 2, 3 (episode end), then 1, 2 (segment end)
    assert rollout.rewards[:, 0].tolist() == [1, 2, 3, 1, 2]
    first = discounted([1, 2, 3], gamma, bootstrap=C if truncate else 0.0)
    second = discounted([1, 2], gamma, bootstrap=C)
    expected = 0.5 * (torch.tensor(first + second) - C).pow(2).mean()
    torch.testing.assert_close(algo.losses(rollout)["ValueLoss"], expected)


@pytest.mark.parametrize("sequence_length", [16, None])
def test_recurrent_ppo_minibatches_start_from_their_stored_states(sequence_length):
    """With a learning rate of ~0 every minibatch must reproduce the sampled log-probs:
    a sequence started from zeros instead of its stored state would not."""
    torch.manual_seed(0)
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0)
    config = PPO.Config(
        num_envs=4, steps=64, epochs=2, minibatches=4, lr=1e-12, sequence_length=sequence_length
    )
    algo = PPO(agent, GRUPolicy(), config)
    algo.iteration()  # episodes now run across the batch boundary
    info = algo.iteration()
    assert info["ApproxKL"] < 1e-9
    assert info["ClipFraction"] == 0.0


def test_ppo_on_a_vectorized_rollout_of_a_recurrent_policy_is_refused_nowhere():
    """sequence_length=1 trains on single steps, each from its stored state."""
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    config = PPO.Config(num_envs=2, steps=16, epochs=1, minibatches=2, lr=1e-12,
                        sequence_length=1)  # fmt: skip
    algo = PPO(agent, GRUPolicy(), config)
    algo.iteration()
    assert algo.iteration()["ApproxKL"] < 1e-9


ALGOS = [REINFORCE, REINFORCEBaseline, A2C, PPO, OffPAC]


def small_config(cls):
    options = dict(num_envs=2, horizon=20, steps=8)
    if cls is PPO:
        options.update(epochs=2, minibatches=2)
    if cls is OffPAC:
        options.update(batch_episodes=2, updates=2)
    return cls.Config(**options)


def changed(before: dict, policy: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in policy.state_dict().items())


@pytest.mark.parametrize("cls", ALGOS, ids=lambda c: c.name)
@pytest.mark.parametrize(
    "env, kind, options",
    [
        ("CartPole-v1", "mlp", {}),
        ("CartPole-v1", "gru", {}),
        ("CartPole-v1", "lstm", {}),
        ("CartPole-v1", "gru", {"shared": True}),
        ("Pendulum-v1", "mlp", {}),
        ("Pendulum-v1", "mlp", {"squash": True}),
        ("Pendulum-v1", "gru", {"squash": True, "state_dependent_std": True}),
        ("tuple", "mlp", {}),
    ],
    ids=["discrete", "gru", "lstm", "shared-gru", "gaussian", "tanh-gaussian", "gru-tanh", "tuple"],
)
def test_every_algorithm_updates_every_policy_kind(cls, env, kind, options):
    torch.manual_seed(0)
    agent = rlx.Agent(DictTupleEnv if env == "tuple" else env, num_envs=2, seed=0)
    if env == "tuple":
        policy = DictTuplePolicy()
    else:
        policy = make_policy(agent.observation_space, agent.action_space, kind, **options)
    config = small_config(cls)
    config.entropy_coef = 0.01  # tanh-squashed Gaussians use the -log-prob estimate
    algo = cls(agent, policy, config)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    info = algo.iteration()
    assert all(torch.isfinite(torch.tensor(v)) for v in info.values()), info
    assert changed(before, policy)


def test_squashed_policy_actions_stay_in_the_box_and_log_probs_are_reproduced():
    agent = rlx.Agent("MountainCarContinuous-v0", num_envs=3, seed=0)
    policy = make_policy(agent.observation_space, agent.action_space, "mlp", squash=True)
    torch.nn.init.constant_(policy.head.linear.bias, 5.0)  # push actions to the bound
    with torch.no_grad():
        rollout = agent(policy).steps(20)
        again = agent(policy).evaluate(rollout)
    assert rollout.actions.abs().max() <= 1.0
    assert torch.isfinite(again.logprobs).all()
    torch.testing.assert_close(again.logprobs, rollout.logprobs)
    with pytest.raises(NotImplementedError, match="no closed-form entropy"):
        again.entropy
    torch.testing.assert_close(again.entropy_or_estimate(), -again.logprobs)


def test_squash_needs_finite_bounds():
    space = gym.spaces.Box(-float("inf"), float("inf"), (2,))
    with pytest.raises(ValueError, match="finite bounds"):
        make_policy(gym.spaces.Box(-1, 1, (3,)), space, "mlp", squash=True)


def test_offpac_learns_from_a_separate_behaviour_policy():
    torch.manual_seed(0)
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    learner = make_policy(agent.observation_space, agent.action_space, "mlp")
    behaviour = make_policy(agent.observation_space, agent.action_space, "mlp")
    algo = OffPAC(agent, learner, small_config(OffPAC), behaviour=behaviour)
    frozen = {k: v.clone() for k, v in behaviour.state_dict().items()}
    info = algo.iteration()
    assert not changed(frozen, behaviour)  # the behaviour policy is only sampled
    assert info["MeanRatio"] != 1.0  # importance weights correct for the difference

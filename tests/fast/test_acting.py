"""The ready MLP policy's numpy acting against acting through its forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rlx
from rlx.core.optim import adam, minimize
from rlx.policies import MLPPolicy


def _sample(env: str, fast: bool, steps: int = 200, num_envs: int = 4, **kwargs):
    torch.manual_seed(0)
    agent = rlx.Agent(env, num_envs=num_envs, seed=0)
    policy = MLPPolicy(agent.observation_space, agent.action_space, **kwargs)
    if not fast:
        policy.numpy_actor = lambda batch_size: None  # act through forward
    with torch.no_grad():
        rollout = agent(policy).steps(steps, dry=True)
        greedy = agent(policy).episode(40, dry=True, deterministic=True)
    return policy, rollout, greedy


def _counting(policy: MLPPolicy) -> list[int]:
    """Make ``policy``'s numpy actor count its calls."""
    calls = [0]
    make = policy.numpy_actor

    def counted(batch_size: int):
        act = make(batch_size)
        if act is None:
            return None

        def wrapped(obs, deterministic):
            calls[0] += 1
            return act(obs, deterministic)

        return wrapped

    policy.numpy_actor = counted
    return calls


def test_numpy_acting_draws_what_forward_draws_on_discrete_actions():
    # The Gumbel noise comes from torch's exponential draws in the order forward's
    # exponential race consumes them: the very same actions.
    _, fast, fast_greedy = _sample("CartPole-v1", fast=True)
    _, slow, slow_greedy = _sample("CartPole-v1", fast=False)
    assert torch.equal(fast.actions, slow.actions)
    assert torch.equal(fast.rewards, slow.rewards)
    assert torch.equal(fast_greedy.actions, slow_greedy.actions)


@pytest.mark.parametrize("state_dependent_std", [False, True])
def test_numpy_acting_on_box_actions_takes_the_mode_and_samples_the_gaussian(
    state_dependent_std,
):
    _, _, fast_greedy = _sample("Pendulum-v1", True, state_dependent_std=state_dependent_std)
    _, _, slow_greedy = _sample("Pendulum-v1", False, state_dependent_std=state_dependent_std)
    torch.testing.assert_close(fast_greedy.actions, slow_greedy.actions)
    # Stochastic actions: standardised by forward's own distribution they are N(0, 1).
    policy, rollout, _ = _sample(
        "Pendulum-v1", True, steps=500, num_envs=8, state_dependent_std=state_dependent_std
    )
    with torch.no_grad():
        _, dist = policy(None, rollout.observations.reshape(-1, 3))[:2]
        normal = dist.components[0]
        z = (rollout.actions.reshape(-1, 1) - normal.loc) / normal.scale
    assert abs(z.mean().item()) < 0.05
    assert abs(z.std().item() - 1) < 0.05


def test_numpy_acting_is_used_only_where_only_actions_are_kept():
    torch.manual_seed(0)
    agent = rlx.Agent("CartPole-v1", num_envs=2, seed=0)
    policy = MLPPolicy(agent.observation_space, agent.action_space)
    calls = _counting(policy)
    with torch.no_grad():
        agent(policy).steps(50, dry=True)
    assert calls[0] == 49  # every step but the first, which checks forward's output
    calls[0] = 0
    with torch.no_grad():
        agent(policy).steps(20)  # extras kept: forward
    agent(policy).steps(20, dry=True)  # with gradient: forward
    assert calls[0] == 0


def test_numpy_acting_follows_the_parameters_in_place():
    torch.manual_seed(0)
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0)
    policy = MLPPolicy(agent.observation_space, agent.action_space)
    act = policy.numpy_actor(4)
    obs = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    opt = adam(policy.parameters(), lr=0.5)
    for _ in range(3):  # optimizer steps write into the parameters act reads
        loss = policy(None, torch.from_numpy(obs))[1].components[0].logits[:, 0].sum()
        minimize(loss, opt)
        with torch.no_grad():
            mode = policy(None, torch.from_numpy(obs))[1].mode()
        assert np.array_equal(act(obs, True), mode.numpy())


def test_numpy_acting_steps_aside_for_overrides_hooks_and_other_spaces():
    class Noisy(MLPPolicy):  # its own forward: must be what acts
        def forward(self, *states):
            return super().forward(*states)

    agent = rlx.Agent("CartPole-v1")
    space = (agent.observation_space, agent.action_space)
    assert MLPPolicy(*space).numpy_actor(1) is not None
    assert Noisy(*space).numpy_actor(1) is None
    hooked = MLPPolicy(*space)
    hooked.register_forward_hook(lambda *args: None)
    assert hooked.numpy_actor(1) is None
    inner = MLPPolicy(*space)  # a hook on a submodule, which forward now runs
    inner.actor.register_forward_pre_hook(lambda *args: None)
    assert inner.numpy_actor(1) is None
    assert MLPPolicy(*space).numpy_actor(10_000) is None  # torch is as fast there
    assert MLPPolicy(*space).double().numpy_actor(1) is None
    pendulum = rlx.Agent("Pendulum-v1")
    squashed = MLPPolicy(pendulum.observation_space, pendulum.action_space, squash=True)
    assert squashed.numpy_actor(1) is None

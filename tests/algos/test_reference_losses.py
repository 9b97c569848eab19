"""Reference losses: PPO's, A2C's and SAC's actor losses against plain hand-written torch.

Each test takes a fixed batch from the algorithm's own sampling or replay, lets the
algorithm build the loss it optimises, and recomputes that loss (and its gradients with
respect to the policy) from the paper's formula in a few lines of torch, without
rlx's loss and return helpers (``clipped_surrogate``, ``gae``, ``nstep_returns``). The
batches are arranged so that every branch the formula has is taken (clipped and
unclipped ratios and value errors, terminations inside a segment), so a wrong sign,
clip or cut anywhere makes a test fail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
from torch import nn

import rlx
from rlx.algos.pg import A2C, PPO
from rlx.algos.qpg import SAC
from rlx.core.rollout import Rollout

Grads = tuple[torch.Tensor, ...]


def grads_of(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> Grads:
    """d loss / d params, zeros for parameters the loss does not reach."""
    grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    return tuple(
        torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)
    )


def assert_grads_close(actual: Grads, expected: Grads, **tolerances: float) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, **tolerances)
    assert any(bool(e.abs().sum() > 0) for e in expected)  # not vacuously equal


def perturb(module: nn.Module, scale: float, seed: int) -> None:
    """Add Gaussian noise to every parameter (a policy that moved since sampling)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))


def hand_gae(
    rollout: Rollout,
    values: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE (Schulman et al. 2016) by a backward loop over time: advantages and value
    targets. Bootstraps from the next observation's value unless the step terminated;
    the sum is cut at episode ends and at the segment's last step."""
    values, next_values = values.detach(), next_values.detach()
    T = len(rollout)
    advantages = torch.zeros_like(values)
    following = torch.zeros_like(values[0])
    for t in reversed(range(T)):
        alive = (~rollout.terminations[t]).float()
        carries = torch.zeros_like(alive) if t == T - 1 else (~rollout.dones[t]).float()
        delta = rollout.rewards[t] + gamma * alive * next_values[t] - values[t]
        following = delta + gamma * lam * carries * following
        advantages[t] = following
    return advantages, advantages + values


def hand_nstep_returns(rollout: Rollout, next_values: torch.Tensor, gamma: float) -> torch.Tensor:
    """A2C's returns by a backward loop over time: rewards summed to the episode's end
    or the segment's, then the next observation's value, none after a termination."""
    next_values = next_values.detach()
    T, B = rollout.shape
    returns = torch.zeros(T, B)
    for b in range(B):
        for t in reversed(range(T)):
            if rollout.terminations[t, b]:
                following = 0.0
            elif t == T - 1 or rollout.truncations[t, b]:
                following = float(next_values[t, b])
            else:
                following = float(returns[t + 1, b])
            returns[t, b] = float(rollout.rewards[t, b]) + gamma * following
    return returns


def check_segments(rollout: Rollout) -> None:
    """Fixed-length segments on CartPole: every step a transition, and a new episode
    starts right after each end (no cut hidden from the hand loops)."""
    assert bool(rollout.valid.all())
    assert torch.equal(rollout.starts[1:], rollout.dones[:-1])


# --------------------------------------------------------------------------- PPO


@pytest.mark.parametrize(
    ("value_clip", "normalize_advantages", "entropy_coef"),
    [(0.2, True, 0.01), (None, False, 0.0), (0.5, False, 0.05)],
)
def test_ppo_loss_and_gradients_match_the_clipped_objective(
    value_clip: float | None, normalize_advantages: bool, entropy_coef: float
) -> None:
    torch.manual_seed(0)
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0)
    config = PPO.Config(
        num_envs=4, steps=16, epochs=1, minibatches=1, clip=0.2, value_clip=value_clip,
        normalize_advantages=normalize_advantages, entropy_coef=entropy_coef,
    )  # fmt: skip
    policy = PPO.default_policy(agent.observation_space, agent.action_space, config)
    algo = PPO(agent, policy, config)
    rollout = algo.sample()
    check_segments(rollout)
    assert bool(rollout.dones.any())  # an episode ends inside the segment
    perturb(policy, 0.15, seed=3)  # ratios away from 1, values away from the sampled ones

    params = list(policy.parameters())
    captured: list[tuple[torch.Tensor, Grads]] = []

    def optimize(loss: torch.Tensor, as_tensor: bool = False) -> float | torch.Tensor:
        captured.append((loss.detach(), grads_of(loss, params)))
        return torch.zeros(()) if as_tensor else 0.0

    algo.optimize = optimize  # type: ignore[method-assign]
    before = [p.detach().clone() for p in params]
    algo.update(rollout)
    assert len(captured) == 1  # one epoch, one minibatch
    assert all(torch.equal(a, b) for a, b in zip(before, params, strict=True))
    loss, grads = captured[0]

    # The reference, over the whole [T, B] rollout (the minibatch is a permutation of it).
    old_logp = rollout.logprobs.detach()
    (old_values,) = rollout.others
    (next_values,) = rollout.next_others
    advantages, returns = hand_gae(rollout, old_values, next_values, config.gamma, config.lam)
    torch.testing.assert_close(rollout.advantages, advantages)
    torch.testing.assert_close(rollout.returns, returns)
    new = algo.agent(policy).evaluate(rollout)
    (values,) = new.others
    if normalize_advantages:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ratio = torch.exp(new.logprobs - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - config.clip, 1 + config.clip) * advantages
    policy_loss = -torch.mean(torch.min(unclipped, clipped))
    value_error = (values - returns) ** 2
    if value_clip is not None:
        old = old_values.detach()
        moved = old + torch.clamp(values - old, -value_clip, value_clip)
        clipped_error = (moved - returns) ** 2
        active = clipped_error > value_error
        assert bool(active.any()) and not bool(active.all())  # both branches taken
        value_error = torch.max(value_error, clipped_error)
    value_loss = 0.5 * torch.mean(value_error)
    expected = policy_loss + config.value_coef * value_loss
    expected = expected - entropy_coef * torch.mean(new.entropy)

    ratio_clipped = clipped.detach() < unclipped.detach()
    assert bool(ratio_clipped.any()) and not bool(ratio_clipped.all())  # both branches taken
    torch.testing.assert_close(loss, expected.detach())
    assert_grads_close(grads, grads_of(expected, params))


# --------------------------------------------------------------------------- A2C


@pytest.mark.parametrize("normalize_advantages", [False, True])
def test_a2c_losses_match_hand_bootstrapped_nstep_returns(normalize_advantages: bool) -> None:
    torch.manual_seed(0)
    gamma = 0.9
    agent = rlx.Agent("CartPole-v1", num_envs=4, seed=0)
    config = A2C.Config(
        num_envs=4, steps=48, gamma=gamma, normalize_advantages=normalize_advantages
    )
    assert config.lam == 1.0
    policy = A2C.default_policy(agent.observation_space, agent.action_space, config)
    algo = A2C(agent, policy, config)
    rollout = algo.sample()
    assert rollout.dry
    check_segments(rollout)
    # Terminations inside the segment (cut there) and an episode running on at its end
    # (bootstrapped there).
    assert bool(rollout.terminations[:-1].any())
    assert not bool(rollout.dones[-1].all())

    losses = algo.losses(rollout)

    evaluated = algo.agent(policy).evaluate(rollout)
    (values,) = evaluated.others
    (next_values,) = evaluated.next_others
    # next_others are the values of next_observations (also where an episode ended)
    at_next = algo.agent(policy).evaluate(rollout.shifted()).others[0]
    torch.testing.assert_close(next_values, at_next)
    returns = hand_nstep_returns(rollout, next_values, gamma)
    advantages = returns - values.detach()
    if normalize_advantages:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    expected = {
        "PolicyLoss": -torch.mean(evaluated.logprobs * advantages),
        "ValueLoss": 0.5 * torch.mean((returns - values) ** 2),
        "Entropy": torch.mean(evaluated.entropy),
    }
    params = list(policy.parameters())
    for name, reference in expected.items():
        torch.testing.assert_close(losses[name], reference, msg=name)
        assert_grads_close(grads_of(losses[name], params), grads_of(reference, params))


# --------------------------------------------------------------------------- SAC


def sac(env: str, seed: int = 0) -> SAC:
    """SAC with a replay of 100 steps (and a few updates taken: trained networks)."""
    torch.manual_seed(seed)
    agent = rlx.Agent(env, num_envs=2, seed=seed)
    config = SAC.Config(learning_starts=64, batch_size=32, critic_hidden=32)
    policy = SAC.default_policy(agent.observation_space, agent.action_space, config, hidden=32)
    algo = SAC(agent, policy, config)
    while algo.agent.total_steps < 100:
        algo.iteration()
    return algo


def test_sac_actor_loss_matches_the_reparameterised_soft_objective() -> None:
    algo = sac("Pendulum-v1")
    batch = algo.replay.sample(32)
    steps, _, mask = algo.learning_steps(batch)
    assert steps is batch and mask is None
    alpha = torch.tensor(0.2)
    actor, critic = list(algo.policy.parameters()), list(algo.critic.parameters())

    torch.manual_seed(7)
    loss, entropy = algo.actor_loss(batch, steps, alpha, mask)
    after_algorithm = torch.randn(())
    grads = grads_of(loss, actor)
    # Gradients reach the actions, not the critic.
    assert all(g is None for g in torch.autograd.grad(loss, critic, allow_unused=True))

    # a = centre + radius * tanh(u), u = mean + std * noise; log pi(a|s) with the
    # change of variables.
    obs = batch.observations
    mean, log_std = algo.policy.net(obs).chunk(2, -1)
    std = log_std.clamp(-20.0, 2.0).exp()
    space = algo.agent.action_space
    low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
    centre, radius = (high + low) / 2, (high - low) / 2
    torch.manual_seed(7)
    u = mean + std * torch.randn_like(mean)
    after_reference = torch.randn(())
    assert torch.equal(after_algorithm, after_reference)  # as many draws, so the same ones
    actions = centre + radius * torch.tanh(u)
    log_normal = -((u - mean) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
    log_pi = (log_normal - torch.log(radius * (1 - torch.tanh(u) ** 2))).sum(-1)
    q = torch.stack([net(torch.cat([obs, actions], -1)).squeeze(-1) for net in algo.critic.nets])
    expected = torch.mean(alpha * log_pi - torch.min(q, 0).values)

    torch.testing.assert_close(entropy, -log_pi.detach(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-4)
    assert_grads_close(grads, grads_of(expected, actor), rtol=1e-4, atol=1e-4)


def test_discrete_sac_actor_loss_is_the_exact_expectation_over_actions() -> None:
    algo = sac("CartPole-v1")
    assert algo.discrete
    batch = algo.replay.sample(32)
    steps, _, mask = algo.learning_steps(batch)
    alpha = torch.tensor(0.2)
    actor, critic = list(algo.policy.parameters()), list(algo.critic.parameters())

    loss, entropy = algo.actor_loss(batch, steps, alpha, mask)
    grads = grads_of(loss, actor)
    assert all(g is None for g in torch.autograd.grad(loss, critic, allow_unused=True))

    obs = batch.observations
    log_pi = torch.log_softmax(algo.policy.net(obs), -1)  # [1, N, A]
    pi = log_pi.exp()
    with torch.no_grad():
        q = torch.stack([net(obs) for net in algo.critic.nets]).min(0).values
    expected = torch.mean((pi * (alpha * log_pi - q)).sum(-1))

    torch.testing.assert_close(entropy, -(pi * log_pi).sum(-1).detach())
    torch.testing.assert_close(loss, expected)
    assert_grads_close(grads, grads_of(expected, actor))

"""The fast paths of sampling and updating against the plain torch computations they
replace: numpy acting of the ready MLP policy, the numpy reverse scan, the clipped
surrogate, and rlx's Adam with its remembered step plan."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch

import rlx
from rlx.core import returns as R
from rlx.core.optim import Adam, minimize
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
    opt = Adam(policy.parameters(), lr=0.5)
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
    assert MLPPolicy(*space).numpy_actor(10_000) is None  # torch is as fast there
    assert MLPPolicy(*space).double().numpy_actor(1) is None
    pendulum = rlx.Agent("Pendulum-v1")
    squashed = MLPPolicy(pendulum.observation_space, pendulum.action_space, squash=True)
    assert squashed.numpy_actor(1) is None


def test_numpy_reverse_scan_matches_the_torch_loop_to_the_bit():
    g = torch.Generator().manual_seed(0)
    for T, B in ((257, 1), (64, 8)):
        x = torch.randn(T, B, generator=g)
        keep = (torch.rand(T, B, generator=g) > 0.1).float() * 0.99 * 0.95
        expected = torch.empty_like(x)
        running = torch.zeros(B)
        for t in range(T - 1, -1, -1):
            running = x[t] + keep[t] * running
            expected[t] = running
        assert torch.equal(R.reverse_scan(x, keep), expected)
        assert torch.equal(R.reverse_scan(x.T.contiguous().T, keep), expected)  # strided
        expected64 = torch.empty_like(x, dtype=torch.float64)
        running = torch.zeros(B, dtype=torch.float64)
        for t in range(T - 1, -1, -1):
            running = x[t].double() + keep[t].double() * running
            expected64[t] = running
        assert torch.equal(R.reverse_scan(x.double(), keep.double()), expected64)
        # Inputs with gradient keep the torch loop (and its graph).
        xg = x.clone().requires_grad_()
        out = R.reverse_scan(xg, keep)
        assert out.requires_grad
        torch.testing.assert_close(out, expected)


def test_clipped_surrogate_matches_min_and_clamp_in_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    log_ratio = torch.randn(512, generator=g) * 0.3
    log_ratio[:4] = torch.tensor([math.log(0.8), math.log(1.2), 0.0, 0.0])  # boundaries
    adv = torch.randn(512, generator=g)
    adv[3] = 0.0
    a = log_ratio.clone().requires_grad_()
    b = log_ratio.clone().requires_grad_()
    ra, rb = a.exp(), b.exp()
    reference = torch.min(ra * adv, ra.clamp(0.8, 1.2) * adv)
    ours = rlx.clipped_surrogate(rb, adv, 0.2)
    assert torch.equal(ours, reference)
    reference.sum().backward()
    ours.sum().backward()
    torch.testing.assert_close(b.grad, a.grad)


def test_rlx_adam_with_a_remembered_plan_matches_torch_adam():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    extra = torch.nn.Linear(3, 2)  # sometimes without gradient
    twin = [p.detach().clone().requires_grad_() for p in [*net.parameters(), *extra.parameters()]]
    ours = Adam([*net.parameters(), *extra.parameters()], lr=1e-2)
    torch_adam = torch.optim.Adam(twin, lr=1e-2)
    x = torch.randn(16, 3)

    def losses(params, use_extra):
        w1, b1, w2, b2, we, be = params
        out = torch.tanh(x @ w1.T + b1) @ w2.T + b2
        if use_extra:
            out = out + x @ we.T + be
        return out.pow(2).mean()

    for step in range(12):
        use_extra = step % 3 != 1
        ours.zero_grad()
        torch_adam.zero_grad()
        losses([*net.parameters(), *extra.parameters()], use_extra).backward()
        losses(twin, use_extra).backward()
        ours.step()
        torch_adam.step()
        if step == 5:  # a reload must not leave the plan pointing at old state tensors
            ours.load_state_dict(copy.deepcopy(ours.state_dict()))  # new state tensors
    for p, q in zip([*net.parameters(), *extra.parameters()], twin, strict=True):
        torch.testing.assert_close(p, q)
        for key in ("step", "exp_avg", "exp_avg_sq"):  # the state the optimizer shows
            torch.testing.assert_close(ours.state[p][key], torch_adam.state[q][key])


def test_clipped_steps_match_torch_clipping_and_adam_and_save_torch_state():
    """minimize and Agent.step clip inside the fused kernel and count steps in one
    shared tensor; the result, the gradients left behind and the saved state are
    torch's."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    twin = [p.detach().clone().requires_grad_() for p in net.parameters()]
    ours = Adam(net.parameters(), lr=1e-2)
    reference = torch.optim.Adam(twin, lr=1e-2)
    x = torch.randn(32, 3) * 5

    def loss(params):
        w1, b1, w2, b2 = params
        return (torch.tanh(x @ w1.T + b1) @ w2.T + b2).pow(2).mean()

    for _ in range(6):
        norm = minimize(loss(list(net.parameters())), ours, max_norm=0.05)
        reference.zero_grad()
        loss(twin).backward()
        expected = torch.nn.utils.clip_grad_norm_(twin, 0.05)
        reference.step()
        torch.testing.assert_close(norm, expected)
        assert norm > 0.05  # the clipping did something
        for p, q in zip(net.parameters(), twin, strict=True):
            torch.testing.assert_close(p.grad, q.grad)  # clipped gradients written back
            torch.testing.assert_close(p, q)
    # The saved state is torch's: one step counter per parameter, loadable into torch's
    # Adam, which then steps exactly as ours.
    saved = ours.state_dict()
    counters = [entry["step"] for entry in saved["state"].values()]
    assert len({id(c) for c in counters}) == len(counters)
    assert all(float(c) == 6 for c in counters)
    plain = torch.optim.Adam(twin, lr=1e-2)
    plain.load_state_dict(copy.deepcopy(saved))
    for _ in range(2):
        minimize(loss(list(net.parameters())), ours)
        plain.zero_grad()
        loss(twin).backward()
        plain.step()
    for p, q in zip(net.parameters(), twin, strict=True):
        torch.testing.assert_close(p, q)
    assert all(float(ours.state[p]["step"]) == 8 for p in net.parameters())
    # Agent.step clips the same way.
    agent = rlx.Agent("CartPole-v1", optimizer=ours, grad_clip=0.5)
    agent.zero_grad()
    loss(list(net.parameters())).backward()
    reference.zero_grad()
    loss(twin).backward()
    torch.testing.assert_close(agent.step(), torch.nn.utils.clip_grad_norm_(twin, 0.5))


def test_clipped_step_is_a_step_for_lr_schedulers():
    # An LR scheduler wraps optimizer.step to check it ran before scheduler.step();
    # clipping inside the kernel must still go through that step.
    w = torch.nn.Parameter(torch.ones(3))
    opt = Adam([w], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        minimize((w * 10).sum(), opt, max_norm=1.0)
        scheduler.step()
    assert opt.param_groups[0]["lr"] == 0.05
    assert float(opt.state[w]["step"]) == 1

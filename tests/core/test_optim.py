"""rlx's optimiser steps (a fused Adam's kernel called directly, the clipping folded
into it) against torch's Adam and clipping; and ``rlx.frozen``."""

import copy
import warnings

import pytest
import torch

import rlx
from rlx.core.optim import adam, minimize
from rlx.fast.optim import _fused_adam_work


def _fused(params, lr=1e-2):
    with rlx.fast_paths(True):
        optimizer = adam(params, lr=lr)
    assert optimizer.defaults["fused"]
    return optimizer


def test_fast_steps_with_parameters_sometimes_without_gradient_match_torch_adam():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    extra = torch.nn.Linear(3, 2)  # sometimes without gradient
    twin = [p.detach().clone().requires_grad_() for p in [*net.parameters(), *extra.parameters()]]
    ours = _fused([*net.parameters(), *extra.parameters()])
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
        with rlx.fast_paths(True):
            rlx.core.optim.step(ours)
        torch_adam.step()
        if step == 5:  # reloaded state tensors are the ones stepped next
            ours.load_state_dict(copy.deepcopy(ours.state_dict()))
    assert _fused_adam_work(ours) is not None  # the kernel called directly did the steps
    for p, q in zip([*net.parameters(), *extra.parameters()], twin, strict=True):
        torch.testing.assert_close(p, q)
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours.state[p][key], torch_adam.state[q][key])


def test_clipped_steps_match_torch_clipping_and_adam_and_save_torch_state():
    """minimize and Agent.step clip inside the fused kernel; the result, the gradients
    left behind and the saved state are torch's."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    twin = [p.detach().clone().requires_grad_() for p in net.parameters()]
    ours = _fused(net.parameters())
    reference = torch.optim.Adam(twin, lr=1e-2)
    x = torch.randn(32, 3) * 5

    def loss(params):
        w1, b1, w2, b2 = params
        return (torch.tanh(x @ w1.T + b1) @ w2.T + b2).pow(2).mean()

    for _ in range(6):
        with rlx.fast_paths(True):
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
    # The saved state loads into a plain torch Adam, which then steps exactly as ours.
    saved = ours.state_dict()
    assert all(float(entry["step"]) == 6 for entry in saved["state"].values())
    plain = torch.optim.Adam(twin, lr=1e-2)
    plain.load_state_dict(copy.deepcopy(saved))
    for _ in range(2):
        with rlx.fast_paths(True):
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
    with rlx.fast_paths(True):
        torch.testing.assert_close(agent.step(), torch.nn.utils.clip_grad_norm_(twin, 0.5))


def test_clipped_step_is_a_step_for_lr_schedulers():
    # An LR scheduler wraps optimizer.step to check it ran before scheduler.step():
    # the clipped step must go through that step.
    w = torch.nn.Parameter(torch.ones(3))
    opt = _fused([w], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    with warnings.catch_warnings(), rlx.fast_paths(True):
        warnings.simplefilter("error")
        minimize((w * 10).sum(), opt, max_norm=1.0)
        scheduler.step()
    assert opt.param_groups[0]["lr"] == 0.05
    assert float(opt.state[w]["step"]) == 1
    torch.testing.assert_close(w.detach(), torch.full((3,), 0.9))


def test_frozen_stops_weight_gradients_and_restores_even_on_error():
    critic, actor = torch.nn.Linear(3, 1), torch.nn.Linear(2, 3)
    critic.bias.requires_grad_(False)  # stays as it was
    with rlx.frozen(critic):
        assert not any(p.requires_grad for p in critic.parameters())
        q = critic(actor(torch.randn(4, 2))).sum()
    q.backward()
    assert critic.weight.grad is None and actor.weight.grad is not None
    assert critic.weight.requires_grad and not critic.bias.requires_grad
    with pytest.raises(RuntimeError, match="inside"), rlx.frozen(critic):
        raise RuntimeError("inside")
    assert critic.weight.requires_grad


@pytest.mark.parametrize("max_norm", [None, 0.05])
def test_fast_and_plain_optimiser_steps_agree(max_norm):
    """``minimize`` with the fast paths on (rlx's Adam, clipping in the kernel) and off
    (``torch.optim.Adam`` and ``clip_grad_norm_``): the same norms and parameters."""
    results = []
    for fast in (True, False):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
        with rlx.fast_paths(fast):
            optimizer = adam(net.parameters(), lr=1e-2, eps=1e-5)
            assert bool(optimizer.defaults["fused"]) == fast
            norms = [
                minimize(net(torch.randn(32, 3)).pow(2).mean(), optimizer, max_norm)
                for _ in range(10)
            ]
        results.append((torch.stack(norms), [p.detach().clone() for p in net.parameters()]))
    (fast_norms, fast_params), (plain_norms, plain_params) = results
    torch.testing.assert_close(fast_norms, plain_norms)
    for a, b in zip(fast_params, plain_params, strict=True):
        torch.testing.assert_close(a, b)


def test_fast_paths_switch_restores_the_previous_setting():
    before = rlx.fast.enabled()
    with rlx.fast_paths(not before):
        assert rlx.fast.enabled() is (not before)
    assert rlx.fast.enabled() is before

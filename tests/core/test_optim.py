"""rlx's Adam with its remembered step plan and clipping inside the fused kernel, against
torch's Adam and clipping; and ``rlx.frozen``."""

import copy
import warnings

import pytest
import torch

import rlx
from rlx.core.optim import minimize
from rlx.fast.optim import Adam


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
    from rlx.core.optim import adam

    results = []
    for fast in (True, False):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
        with rlx.fast_paths(fast):
            optimizer = adam(net.parameters(), lr=1e-2, eps=1e-5)
            assert isinstance(optimizer, Adam) == fast
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

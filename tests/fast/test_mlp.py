"""The fused MLP (one autograd node with a written-out backward) against the layer-by-layer
torch computation it replaces."""

from __future__ import annotations

import pytest
import torch

from rlx.fast import mlp as layers
from rlx.policies import mlp


@pytest.fixture
def fuse_small(monkeypatch):
    """Fuse even the small test networks (by default only large forwards are fused)."""
    monkeypatch.setattr(layers, "_FUSE_FROM", 0)


def _twins(inputs: int, hidden: tuple[int, ...], outputs: int | None, activation: str):
    torch.manual_seed(0)
    fused = mlp(inputs, hidden, outputs, activation=activation)
    plain = mlp(inputs, hidden, outputs, activation=activation)
    plain.load_state_dict(fused.state_dict())
    plain.fused = False
    return fused, plain


def _nodes(out: torch.Tensor) -> set[str]:
    """The names of every autograd node behind ``out``."""
    names, todo = set(), [out.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and type(node).__name__ not in names:
            names.add(type(node).__name__)
            todo += [n for n, _ in node.next_functions]
    return names


def _grads(net, x, weight, wrt_x: bool, create_graph: bool = False):
    x = x.clone().requires_grad_(wrt_x)
    out = net(x)
    loss = (out * weight).sum()
    inputs = [*([x] if wrt_x else []), *[p for p in net.parameters() if p.requires_grad]]
    return out, torch.autograd.grad(loss, inputs, create_graph=create_graph)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("outputs", [3, None])
@pytest.mark.parametrize("wrt_x", [True, False])
def test_fused_mlp_matches_layer_by_layer_autograd(activation, outputs, wrt_x, fuse_small):
    fused, plain = _twins(5, (16, 8), outputs, activation)
    x = torch.randn(4, 6, 5)  # leading [T, N]
    width = outputs or 8
    weight = torch.randn(4, 6, width)
    out_f, grads_f = _grads(fused, x, weight, wrt_x)
    out_p, grads_p = _grads(plain, x, weight, wrt_x)
    assert "_FusedMLPBackward" in _nodes(out_f) and "AddmmBackward0" not in _nodes(out_f)
    assert "_FusedMLPBackward" not in _nodes(out_p)
    torch.testing.assert_close(out_f, out_p)
    assert len(grads_f) == len(grads_p)
    for a, b in zip(grads_f, grads_p, strict=True):
        torch.testing.assert_close(a, b)


def test_fused_mlp_skips_frozen_layers_and_rows_without_gradient():
    fused, plain = _twins(4, (256, 256), 1, "relu")
    fused[0].requires_grad_(False)  # the first layer frozen: no gradient below layer 2
    plain[0].requires_grad_(False)
    x = torch.randn(256, 4)
    weight = torch.zeros(256, 1)
    weight[::3] = torch.randn(86, 1)  # a third of the rows carry gradient: the sparse path
    for wrt_x in (False, True):
        _, grads_f = _grads(fused, x, weight, wrt_x)
        _, grads_p = _grads(plain, x, weight, wrt_x)
        for a, b in zip(grads_f, grads_p, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    _, grads = _grads(fused, x, torch.zeros(256, 1), True)  # no row at all
    assert all(float(g.abs().max()) == 0 for g in grads)


def test_fused_mlp_second_derivatives_are_exact(fuse_small):
    fused, plain = _twins(3, (8,), 2, "tanh")
    x = torch.randn(5, 3)
    weight = torch.randn(5, 2)
    penalties = []
    for net in (fused, plain):
        _, grads = _grads(net, x, weight, True, create_graph=True)
        penalty = sum(g.pow(2).sum() for g in grads)
        penalties.append(torch.autograd.grad(penalty, list(net.parameters()), allow_unused=True))
    for a, b in zip(*penalties, strict=True):
        if a is None or b is None:  # the last bias's gradient is the constant weight sum
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b)


def test_small_forwards_keep_the_layer_by_layer_graph():
    net = mlp(4, (64, 64), 2)
    assert "_FusedMLPBackward" not in _nodes(net(torch.randn(64, 4)))
    assert "_FusedMLPBackward" in _nodes(net(torch.randn(256, 4)))  # 256 x 4,480 > 2^20


def test_fused_mlp_without_gradient_is_the_same_function():
    fused, plain = _twins(3, (8, 8), 2, "relu")
    x = torch.randn(7, 3)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x))
        assert fused(x[0]).shape == (2,)  # one unbatched vector

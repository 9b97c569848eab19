"""The ready MLPs (:class:`rlx.policies.MLP`: Linear layers, each followed by at most one
Tanh or ReLU) run without a module call per layer, and large ones as one autograd node.

At acting batch sizes a module call costs about as much as the layer. Forwards with
gradients of about a million multiply-adds or more (SAC's 256-unit layers at batch 256)
run as one autograd node with a written-out backward: activations in place, derivatives
read from the saved outputs, no gradients for frozen parameters (:func:`rlx.frozen`) and
no products for rows whose output gradient is zero (the other network's rows in a
minimum of two Q-functions). Higher-order gradients re-run the layers under autograd, so
they stay exact. Module hooks on the inner layers are not run. Kept because it wins:
``benchmarks/fused_mlp.py`` times SAC's critic step against plain eager PyTorch and
``torch.compile``, and ``benchmarks/speed_qpg.py`` SAC against Stable-Baselines3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rlx.fast.params import structure_version


def forward(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The network's output, without a module call per layer; large forwards that want
    gradients as one :class:`_FusedMLP` node."""
    plan = _plan(net)
    if plan is None or torch.is_autocast_enabled() or torch.is_autocast_enabled("cpu"):
        return _layer_by_layer(net, x)
    kinds, params, weights = plan
    flat = x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        if (
            not getattr(net, "fused", True)
            or flat.shape[0] * weights < _FUSE_FROM
            or torch._C._are_functorch_transforms_active()
        ):
            return _layer_by_layer(net, x)
        out = _FusedMLP.apply(kinds, flat, *params)
    else:
        out = _run_layers(kinds, flat, params, keep=False)
    return out if x.dim() == 2 else out.reshape(*x.shape[:-1], out.shape[-1])


def _plan(net: nn.Sequential) -> tuple[tuple[str | None, ...], list[torch.Tensor], int] | None:
    """The activation after each Linear layer, the layers' weights and biases in
    order, and the number of weights; None where the layers are not Linear (with
    bias) each followed by at most one Tanh or ReLU. Kept until a module anywhere
    registers a parameter or submodule."""
    cached = net.__dict__.get("_cached_plan")
    if cached is not None and cached[0] == structure_version():
        return cached[1]
    layers: list[list[Any]] = []
    for layer in net:
        kind = type(layer)
        if kind is nn.Linear and layer.bias is not None:
            layers.append([layer.weight, layer.bias, None])
        elif kind in _ACTIVATIONS and layers and layers[-1][2] is None:
            layers[-1][2] = _ACTIVATIONS[kind]
        else:
            layers = []
            break
    plan = None
    if layers:
        params = [p for layer in layers for p in layer[:2]]
        weights = sum(p.numel() for p in params[::2])
        plan = (tuple(layer[2] for layer in layers), params, weights)
    net.__dict__["_cached_plan"] = (structure_version(), plan)
    return plan


def _layer_by_layer(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    for layer in net:
        kind = type(layer)
        if kind is nn.Linear:
            x = nn.functional.linear(x, layer.weight, layer.bias)
        elif kind is nn.Tanh:
            x = torch.tanh(x)
        elif kind is nn.ReLU:
            x = torch.relu(x)
        else:
            x = layer(x)
    return x


def numpy_function(net: nn.Sequential) -> Callable[[np.ndarray], np.ndarray] | None:
    """The same function on numpy float32 arrays ``[B, inputs]``, reading the
    parameters' own storage (so it follows every optimiser step without copying), or
    None where it cannot: a layer other than Linear, Tanh and ReLU, or parameters that
    are not float32 on the CPU (:mod:`rlx.fast.acting`)."""
    steps: list[Any] = []
    for layer in net:
        kind = type(layer)
        if kind is nn.Linear:
            w, b = layer.weight, layer.bias
            if w.device.type != "cpu" or w.dtype != torch.float32:
                return None
            steps.append((w.detach().numpy().T, None if b is None else b.detach().numpy()))
        elif kind is nn.Tanh:
            steps.append(np.tanh)
        elif kind is nn.ReLU:
            steps.append(_relu)
        else:
            return None
    if not steps or type(steps[0]) is not tuple:  # activations write in place: not on x
        return None

    def run(x: np.ndarray) -> np.ndarray:
        for step in steps:
            if type(step) is tuple:
                x = x @ step[0]
                if step[1] is not None:
                    x += step[1]
            else:
                step(x, out=x)
        return x

    return run


_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh"}

_FUSE_FROM = 1 << 20
"""Forwards of fewer multiply-adds (rows x weights) keep the layer-by-layer graph: for
them the one custom node's Python costs more than the nodes it replaces (PPO's 2x64
MLPs at minibatch 64: 6% slower fused)."""


def _run_layers(kinds: tuple[str | None, ...], x: torch.Tensor, params: Any, keep: bool) -> Any:
    """The layers' forward on a 2-D ``x``, activations in place on each fresh output;
    with ``keep``, also every layer's input (what the backward reads)."""
    inputs = []
    for i, kind in enumerate(kinds):
        if keep:
            inputs.append(x)
        x = torch.addmm(params[2 * i + 1], x, params[2 * i].t())
        if kind == "relu":
            x.relu_()
        elif kind == "tanh":
            x.tanh_()
    return (x, inputs) if keep else x


class _FusedMLP(torch.autograd.Function):
    """Linear layers with activations as one autograd node (see :class:`MLP`)."""

    @staticmethod
    def forward(ctx: Any, kinds: tuple[str | None, ...], x: torch.Tensor, *params: torch.Tensor):
        out, inputs = _run_layers(kinds, x, params, keep=True)
        ctx.kinds = kinds
        ctx.save_for_backward(out, *inputs, *params)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        kinds = ctx.kinds
        n = len(kinds)
        saved = ctx.saved_tensors
        out, inputs, params = saved[0], saved[1 : n + 1], saved[n + 1 :]
        needs = ctx.needs_input_grad[1:]  # x, then weight and bias of each layer
        if torch.is_grad_enabled():  # create_graph: differentiate a re-run under autograd
            with torch.enable_grad():
                again = _run_layers(kinds, inputs[0], params, keep=False)
            wanted = [t for t, need in zip([inputs[0], *params], needs, strict=True) if need]
            found = iter(torch.autograd.grad(again, wanted, grad, create_graph=True))
            return None, *(next(found) if need else None for need in needs)
        # Propagate only as far down as the first layer (or input) that wants a gradient.
        lowest = 0 if needs[0] else min(
            (i // 2 for i, need in enumerate(needs[1:]) if need), default=n
        )  # fmt: skip
        rows = grad.shape[0]
        if (
            grad.device.type == "cpu"
            and rows * sum(p.numel() for p in params[::2]) >= _SPARSE_CHECK
        ):
            # Rows whose output gradient is zero (the other Q-function's in a minimum of
            # two, masked steps) contribute nothing: leave them out of the products.
            live = grad.ne(0).any(1)
            count = int(live.sum())
            if count <= rows * 3 // 4:
                index = live.nonzero().squeeze(1)
                pick = [t.index_select(0, index) for t in (grad, out, *inputs)]
                found = _manual_backward(kinds, pick[1], pick[2:], params, needs, pick[0], lowest)
                if needs[0]:
                    x_grad = grad.new_zeros(rows, inputs[0].shape[1])
                    found[0] = x_grad.index_copy_(0, index, found[0])
                return None, *found
        return None, *_manual_backward(kinds, out, inputs, params, needs, grad, lowest)


_SPARSE_CHECK = 1 << 22
"""Backward passes of at least this many multiply-adds (rows x weights) first look for
rows without gradient (a ~10 us check)."""


def _manual_backward(
    kinds: tuple[str | None, ...], out: torch.Tensor, inputs: Any, params: Any,
    needs: tuple[bool, ...], g: torch.Tensor, lowest: int,
) -> list[torch.Tensor | None]:  # fmt: skip
    """The gradients of x and every layer's weight and bias (None where not needed)
    from the output gradient ``g``, layer by layer down to layer ``lowest``."""
    n = len(kinds)
    grads: list[torch.Tensor | None] = [None] * len(needs)
    for i in reversed(range(lowest, n)):
        kind = kinds[i]
        if kind is not None:
            after = out if i == n - 1 else inputs[i + 1]
            if kind == "relu":
                g = torch.ops.aten.threshold_backward(g, after, 0)
            else:
                g = torch.ops.aten.tanh_backward(g, after)
        if needs[1 + 2 * i]:
            grads[1 + 2 * i] = g.t().mm(inputs[i])
        if needs[2 + 2 * i]:
            grads[2 + 2 * i] = g.sum(0)
        if i > lowest or (i == 0 and needs[0]):
            g = g.mm(params[2 * i])
    if needs[0]:
        grads[0] = g
    return grads


def _relu(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=out)

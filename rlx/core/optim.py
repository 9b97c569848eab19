"""Optimiser steps: the one way rlx takes a gradient step (the algorithms through
:func:`minimize`, a user's loop through ``agent.step()``), and :func:`frozen`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch

import rlx.fast
from rlx.core import distributed
from rlx.core.parametric import parameters_and_buffers
from rlx.fast import optim as fast_optim


def adam(params: Iterable[torch.Tensor], lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """``torch.optim.Adam``; with the fast paths on, its fused version where the
    parameters allow it (then :func:`step` calls its kernel directly)."""
    params = list(params)
    if rlx.fast.enabled():
        try:
            return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
        except RuntimeError:  # a device or dtype without the fused kernel
            pass
    return torch.optim.Adam(params, lr=lr, eps=eps)


def step(
    optimizer: torch.optim.Optimizer, max_norm: float | None = None, norm: bool = True
) -> torch.Tensor | None:
    """Clip the joint norm of the gradients of ``optimizer``'s parameters to ``max_norm``
    (if given), then step; returns the norm before clipping (0-d tensor), or None when
    neither clipping nor ``norm`` asked for it. In a data-parallel run
    (:mod:`rlx.core.distributed`) the gradients are first averaged over the processes."""
    if distributed.active():
        distributed.average_gradients(p for g in optimizer.param_groups for p in g["params"])
    if rlx.fast.enabled():
        return fast_optim.clipped_step(optimizer, max_norm, norm)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    total = None
    if max_norm is not None:
        total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    elif norm:
        norms = [p.grad.detach().norm() for p in params if p.grad is not None]
        total = torch.stack(norms).norm() if norms else torch.zeros(())
    optimizer.step()
    return None if total is None else total.detach()


@contextmanager
def frozen(*modules: torch.nn.Module) -> Iterator[None]:
    """Within the block, the modules' parameters do not require gradients (restored on
    leaving, also on error): a loss that flows through a network it must not train (an
    actor's loss through the critic) then records no weight-gradient work for it, and
    ``loss.backward()`` cannot touch its ``.grad``.

    ``with rlx.frozen(critic): q = critic(obs, actor_actions)`` still passes gradients
    through ``q`` to the actions."""
    params = [p for m in modules for p in parameters_and_buffers(m)[0] if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def minimize(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, max_norm: float | None = None
) -> torch.Tensor:
    """One :func:`step` on ``loss``, returning the gradient norm before clipping.

    Only this optimizer's parameters get gradients (``torch.autograd.grad``): an actor's
    loss that flows through a critic leaves the critic's ``.grad`` as it was and does
    not compute its weight gradients, which ``loss.backward()`` would.
    """
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    return step(optimizer, max_norm)  # type: ignore[return-value]  # norm=True: a tensor

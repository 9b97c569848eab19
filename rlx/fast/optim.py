"""Optimiser steps without per-step Python overhead, for the small networks of RL.

An RL update on a 2x64 actor-critic is a few hundred microseconds of arithmetic, and
``torch.optim.Adam(fused=True).step()`` plus ``clip_grad_norm_`` add several times the
fused kernel's own time in Python bookkeeping (grouping tensors by device, hooks,
profiler records) on one CPU thread. :func:`clipped_step` calls the same kernel
directly on a fused ``torch.optim.Adam``'s own state, with the clipping folded into it
(``benchmarks/speed_pg.py`` compares both paths; the figures are in
``benchmarks/README.md``). The plain path is :func:`rlx.core.optim.step`'s own.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.optim.optimizer as _torch_optimizer

# Options under which the fused kernel's update is not torch's Adam update.
_OTHER_UPDATES = ("amsgrad", "maximize", "differentiable", "decoupled_weight_decay", "capturable")


def clipped_step(
    optimizer: torch.optim.Optimizer, max_norm: float | None, norm: bool = True
) -> torch.Tensor | None:
    """Clip the gradients of ``optimizer``'s parameters to the joint norm ``max_norm`` (if
    given) and step; returns the norm before clipping (None when neither clipping nor
    ``norm`` asked for it). A fused ``torch.optim.Adam``'s kernel is called directly and
    clips as it reads the gradients (writing them back clipped, as ``clip_grad_norm_``)."""
    work = _fused_adam_work(optimizer)
    if work is None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        total = None
        if max_norm is not None:
            total = clip_grad_norm(params, max_norm)
        elif norm:
            grads = [p.grad for p in params if p.grad is not None]
            total = grad_norm(grads) if grads else torch.zeros(())
        optimizer.step()
        return None if total is None else total.detach()
    wanted = max_norm is not None or norm
    total = grad_norm([g for _, _, grads, _, _, _ in work for g in grads]) if wanted else None
    scale = None if max_norm is None else torch.clamp((total + 1e-6) / max_norm, min=1.0)
    with torch.no_grad():
        for group, params, grads, exp_avgs, exp_avg_sqs, steps in work:
            beta1, beta2 = group["betas"]
            # a list of tensors: 3x cheaper than adding the number 1 to small tensors
            torch._foreach_add_(steps, [steps[0].new_ones(())] * len(steps))
            torch._fused_adam_(
                params, grads, exp_avgs, exp_avg_sqs, [], steps,
                lr=float(group["lr"]), beta1=float(beta1), beta2=float(beta2),
                weight_decay=float(group["weight_decay"]), eps=float(group["eps"]),
                amsgrad=False, maximize=False, grad_scale=scale,
            )  # fmt: skip
    return total


def _fused_adam_work(optimizer: torch.optim.Optimizer) -> list | None:
    """Per group, what the fused kernel updates (group, params, grads, averages, steps),
    initialising new state as torch does; None where torch's own step must run: not a
    fused ``torch.optim.Adam``, another update rule, step hooks or an LR scheduler, or
    parameters on several devices or dtypes."""
    if type(optimizer) is not torch.optim.Adam or "step" in optimizer.__dict__:
        return None
    if (
        optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
        or getattr(_torch_optimizer, "_global_optimizer_pre_hooks", None)
        or getattr(_torch_optimizer, "_global_optimizer_post_hooks", None)
    ):
        return None
    work, first = [], None
    for group in optimizer.param_groups:
        if not group.get("fused") or any(group.get(k) for k in _OTHER_UPDATES):
            return None
        params = [p for p in group["params"] if p.grad is not None]
        first = first if first is not None or not params else params[0]
        if any(p.device != first.device or p.dtype != first.dtype for p in params):
            return None
        if not params:
            continue
        states = []
        for p in params:
            state = optimizer.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            states.append(state)
        work.append((
            group, params, [p.grad for p in params], [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states], [s["step"] for s in states],
        ))  # fmt: skip
    return work


def clip_grad_norm(params: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients so that their joint 2-norm is at most ``max_norm``; returns the
    norm before clipping (as ``torch.nn.utils.clip_grad_norm_``, same result)."""
    params = params if isinstance(params, (list, tuple)) else list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    first = grads[0]
    if any(g.device != first.device or g.dtype != first.dtype or g.is_sparse for g in grads):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    total = grad_norm(grads)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    torch._foreach_mul_(grads, coef)
    return total


def grad_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The joint 2-norm of ``grads`` (same device and dtype). On the CPU, for small
    networks (up to 65,536 numbers, where copying costs less than a kernel call), one
    norm of their concatenation: ``torch._foreach_norm`` runs a kernel per tensor there."""
    if len(grads) == 1:
        return torch.linalg.vector_norm(grads[0])
    if grads[0].device.type == "cpu" and sum(g.numel() for g in grads) <= 1 << 16:
        return torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))

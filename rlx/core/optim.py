"""Optimiser steps without per-step Python overhead, for the small networks of RL.

An RL update on a 2x64 actor-critic is a few hundred microseconds of arithmetic, and
``torch.optim.Adam(fused=True).step()`` plus ``clip_grad_norm_`` add about 200 us of
Python bookkeeping to it (grouping tensors by device, hooks, profiler records) on one
CPU thread; the kernels themselves take about 40 us. :class:`Adam` and
:func:`clip_grad_norm` call the same kernels directly: a PPO minibatch step with SB3's
settings went from 256 to about 60 us here.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.optim.optimizer as _torch_optimizer

_FUSED = hasattr(torch, "_fused_adam_")


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
    norms = torch._foreach_norm(grads)
    total = torch.linalg.vector_norm(torch.stack(norms)) if len(norms) > 1 else norms[0]
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    torch._foreach_mul_(grads, coef)
    return total


class Adam(torch.optim.Adam):
    """``torch.optim.Adam`` whose ``step`` calls the fused kernel directly.

    The same update as ``torch.optim.Adam(params, ..., fused=True)``, the same state
    (``state_dict`` loads into either), learning rates read from ``param_groups`` at every
    step (so torch LR schedulers and annealing work). Falls back to torch's own step
    where the fused kernel does not apply: AMSGrad, ``maximize``, a closure, sparse or
    complex parameters, parameters on several devices or dtypes, or a torch without it.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        **kwargs,
    ) -> None:
        fused = _FUSED and not kwargs.get("amsgrad") and not kwargs.get("maximize")
        try:
            super().__init__(params, lr, betas, eps, weight_decay, fused=fused or None, **kwargs)
        except RuntimeError:  # e.g. a device or dtype the fused kernel does not support
            fused = False
            super().__init__(params, lr, betas, eps, weight_decay, **kwargs)
        self._direct = fused

    def step(self, closure=None):  # type: ignore[override]
        """One Adam step. With step hooks registered (``register_step_pre_hook``...) or in
        the fallback cases this is torch's step; otherwise the kernels are called
        directly, skipping the profiler record torch wraps around every step."""
        if closure is None and self._direct and not self._hooks() and self._fused_step():
            return None
        step = torch.optim.Adam.step
        if not getattr(step, "hooked", False):  # no torch Adam made yet: add its hooks
            step = _torch_optimizer.Optimizer.profile_hook_step(step)
        return step(self, closure)

    step.hooked = True  # type: ignore[attr-defined]  # tells torch not to wrap it

    def _hooks(self) -> bool:
        return bool(
            self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
            or getattr(_torch_optimizer, "_global_optimizer_pre_hooks", None)
            or getattr(_torch_optimizer, "_global_optimizer_post_hooks", None)
        )

    def load_state_dict(self, state_dict: dict) -> None:
        self._plan = None  # the state tensors are replaced
        super().load_state_dict(state_dict)

    def add_param_group(self, param_group: dict) -> None:
        self._plan = None
        super().add_param_group(param_group)

    @torch.no_grad()
    def _fused_step(self) -> bool:
        """The fused update on every group; False (and nothing changed) where it does not
        apply.

        Which tensors each group updates is remembered from the previous step while every
        parameter has a gradient and the groups keep their sizes (``load_state_dict`` and
        ``add_param_group`` forget it): only the gradients are looked up again, which spares
        a few dictionary lookups per parameter and step."""
        key = tuple(len(g["params"]) for g in self.param_groups)
        plan = self.__dict__.get("_plan")
        if plan is not None and plan[0] == key:
            work = []
            for group, params, exp_avgs, exp_avg_sqs, steps in plan[1]:
                grads = [p.grad for p in params]
                if any(g is None or g.is_sparse for g in grads):
                    break
                work.append((group, params, grads, exp_avgs, exp_avg_sqs, steps))
            else:
                self._run(work)
                return True
        work, complete = [], True
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    complete = False
                    continue
                if p.grad.is_sparse or p.is_complex():
                    return False
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if not params:
                continue
            first = params[0]
            if any(p.device != first.device or p.dtype != first.dtype for p in params):
                return False
            work.append((group, params, grads, exp_avgs, exp_avg_sqs, steps))
        self._plan = (key, [(g, p, a, b, s) for g, p, _, a, b, s in work]) if complete else None
        self._run(work)
        return True

    @staticmethod
    def _run(work: list) -> None:
        for group, params, grads, exp_avgs, exp_avg_sqs, steps in work:
            beta1, beta2 = group["betas"]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                params, grads, exp_avgs, exp_avg_sqs, [], steps,
                lr=float(group["lr"]), beta1=float(beta1), beta2=float(beta2),
                weight_decay=float(group["weight_decay"]), eps=float(group["eps"]),
                amsgrad=False, maximize=False,
            )  # fmt: skip


def minimize(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, max_norm: float | None = None
) -> torch.Tensor:
    """One optimiser step on ``loss``: gradients of the optimizer's parameters only,
    their joint norm clipped to ``max_norm`` (if given), a step. Returns the norm before
    clipping (0-d tensor).

    For algorithms with several optimisers (an actor's, a critic's, SAC's temperature).
    Only this optimizer's parameters get gradients (``torch.autograd.grad``): an actor's
    loss that flows through a critic does not compute the critic's weight gradients,
    which ``loss.backward()`` would (about a sixth of a SAC update's arithmetic), and
    leaves the critic's ``.grad`` as it was.
    """
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    used = [p for p, g in zip(params, grads, strict=True) if g is not None]
    if max_norm is not None:
        norm = clip_grad_norm(used, max_norm)
    else:
        norms = torch._foreach_norm([p.grad for p in used]) if used else [torch.zeros(())]
        norm = torch.linalg.vector_norm(torch.stack(norms))
    optimizer.step()
    return norm.detach()

"""Optimiser steps without per-step Python overhead, for the small networks of RL.

An RL update on a 2x64 actor-critic is a few hundred microseconds of arithmetic, and
``torch.optim.Adam(fused=True).step()`` plus ``clip_grad_norm_`` add several times the
fused kernels' own time in Python bookkeeping (grouping tensors by device, hooks,
profiler records) on one CPU thread. :class:`Adam` and :func:`clipped_step` call the
same kernels directly (``benchmarks/speed_pg.py`` compares both paths; the figures are
in ``benchmarks/README.md``). The plain path is :func:`rlx.core.optim.step`'s own.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.optim.optimizer as _torch_optimizer

import rlx.fast

_FUSED = hasattr(torch, "_fused_adam_")


def clipped_step(
    optimizer: torch.optim.Optimizer, max_norm: float | None, norm: bool = True
) -> torch.Tensor | None:
    """Clip the gradients of ``optimizer``'s parameters to the joint norm ``max_norm`` (if
    given) and step; returns the norm before clipping (None when neither clipping nor
    ``norm`` asked for it). For :class:`Adam` the clipping is folded into the kernel."""
    if max_norm is not None and isinstance(optimizer, Adam):
        norm = optimizer.clipped_step(max_norm)
        if norm is not None:
            return norm.detach()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    total = None
    if max_norm is not None:
        total = clip_grad_norm(params, max_norm)
    elif norm:
        grads = [p.grad for p in params if p.grad is not None]
        total = grad_norm(grads) if grads else torch.zeros(())
    optimizer.step()
    return None if total is None else total.detach()


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
    first = grads[0]
    if first.device.type == "cpu" and sum(g.numel() for g in grads) <= 1 << 16:
        return torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


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
        pending = self.__dict__.pop("_pending", None)  # from clipped_step
        if pending is not None:
            self._run(*pending)
            return None
        work = self._prepare() if closure is None else None
        if work is not None:
            self._run(work)
            return None
        self._unshare_steps()
        step = torch.optim.Adam.step
        if not getattr(step, "hooked", False):  # no torch Adam made yet: add its hooks
            step = _torch_optimizer.Optimizer.profile_hook_step(step)
        return step(self, closure)

    step.hooked = True  # type: ignore[attr-defined]  # tells torch not to wrap it

    @torch.no_grad()
    def clipped_step(self, max_norm: float) -> torch.Tensor | None:
        """Clip the gradients' joint norm to ``max_norm`` and step, the clipping done by
        the fused kernel as it reads them (it writes the clipped gradients back, as
        :func:`clip_grad_norm` would leave them): one kernel instead of one per tensor.
        Returns the norm before clipping, or None (nothing done) where the direct fused
        step does not apply; then clip and call :meth:`step`."""
        work = self._prepare()
        if work is None:
            return None
        total = grad_norm([g for w in work for g in w[2]])
        # Through step(), so that whatever wraps it (an LR scheduler's step tracking)
        # sees the step.
        self._pending = (work, torch.clamp((total + 1e-6) / max_norm, min=1.0))
        self.step()
        return total

    def _hooks(self) -> bool:
        return bool(
            self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
            or getattr(_torch_optimizer, "_global_optimizer_pre_hooks", None)
            or getattr(_torch_optimizer, "_global_optimizer_post_hooks", None)
        )

    def state_dict(self) -> dict:
        state = super().state_dict()
        # The step counters of a group may be one shared tensor here (see _prepare); the
        # saved state has one per parameter, as torch's Adam keeps and expects them.
        state["state"] = {k: {**v, "step": v["step"].clone()} if "step" in v else v
                          for k, v in state["state"].items()}  # fmt: skip
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self._plan = None  # the state tensors are replaced
        super().load_state_dict(state_dict)
        self._unshare_steps()

    def add_param_group(self, param_group: dict) -> None:
        self._plan = None
        super().add_param_group(param_group)

    def _unshare_steps(self) -> None:
        """Give every parameter its own step counter again (before torch's own step,
        which increments each counter it is given)."""
        seen: set[int] = set()
        for state in self.state.values():
            step = state.get("step")
            if step is not None:
                if id(step) in seen:
                    state["step"] = step.clone()
                seen.add(id(step))
        self._plan = None

    @torch.no_grad()
    def _prepare(self) -> list | None:
        """What the fused update works on, group by group (params, grads, averages, step
        counters); None where the direct fused step does not apply (nothing changed).

        Which tensors each group updates is remembered from the previous step while every
        parameter has a gradient and the groups keep their sizes (``load_state_dict`` and
        ``add_param_group`` forget it): only the gradients are looked up again. While it
        is remembered, a group whose parameters all have taken the same number of steps
        counts them in one shared tensor (``state_dict`` still saves one per parameter):
        one increment per step instead of one per parameter."""
        if not self._direct or not rlx.fast.enabled() or self._hooks():
            return None
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
                return work
        self._unshare_steps()
        work, complete = [], True
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    complete = False
                    continue
                if p.grad.is_sparse or p.is_complex():
                    return None
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
                return None
            work.append((group, params, grads, exp_avgs, exp_avg_sqs, steps))
        if complete:
            for k, (group, params, grads, exp_avgs, exp_avg_sqs, steps) in enumerate(work):
                if len(steps) > 1 and bool((torch.stack(steps) == steps[0]).all()):
                    for p in params:
                        self.state[p]["step"] = steps[0]
                    work[k] = (group, params, grads, exp_avgs, exp_avg_sqs, [steps[0]] * len(steps))
            self._plan = (key, [(g, p, a, b, s) for g, p, _, a, b, s in work])
        return work

    @staticmethod
    def _run(work: list, grad_scale: torch.Tensor | None = None) -> None:
        for group, params, grads, exp_avgs, exp_avg_sqs, steps in work:
            beta1, beta2 = group["betas"]
            if len(steps) > 1 and steps[1] is steps[0]:  # one shared counter
                steps[0].add_(1)
            else:
                torch._foreach_add_(steps, 1)
            if grad_scale is not None and grad_scale.device != params[0].device:
                grad_scale = grad_scale.to(params[0].device)
            torch._fused_adam_(
                params, grads, exp_avgs, exp_avg_sqs, [], steps,
                lr=float(group["lr"]), beta1=float(beta1), beta2=float(beta2),
                weight_decay=float(group["weight_decay"]), eps=float(group["eps"]),
                amsgrad=False, maximize=False, grad_scale=grad_scale,
            )  # fmt: skip

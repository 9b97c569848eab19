"""Data-parallel training: several processes, one model, gradients averaged at every step.

Each process samples its own environments and computes gradients on its own batch;
:func:`rlx.core.optim.step` — the one way rlx takes a gradient step — averages the
gradients of all processes (one ``all_reduce`` of all of them flattened into one
tensor) before clipping and stepping, so every process takes the same step and the
models stay identical. With equal batches that step is the one a single process would
take on all the batches together (losses are means).

``init()`` joins the process group that the environment describes (``torchrun`` and
``rlx train --nproc N`` set ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``):
gloo on CPU, nccl on CUDA devices. A user's own loop needs only that, and
:func:`broadcast` of the initial model::

    rank, world = rlx.distributed.init()
    rlx.distributed.broadcast(policy)        # every process starts from rank 0's weights
    agent = rlx.Agent("CartPole-v1", num_envs=8, seed=100 * rank, optimizer=opt)
    ...  loss.backward(); agent.step()       # gradients averaged over the processes

Gradients are averaged only after :func:`init`: a process group made by other code
(DDP, FSDP) is left alone.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist

import rlx.fast
from rlx.fast.shared_mean import SharedMean, available

# Seconds a collective may wait for the other processes before it fails, instead of a
# hang (rank 0 evaluating keeps the others waiting; a rank that crashed is noticed by
# rlx train --nproc and torchrun within seconds).
TIMEOUT = 600.0

_averaging = False
_shared: SharedMean | None = None  # the shared-memory mean, where it serves


def init(device: str | torch.device = "cpu", timeout: float = TIMEOUT) -> tuple[int, int]:
    """Join the process group described by the environment variables (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and average gradients from now on;
    returns ``(rank, world_size)``. gloo for CPU devices, nccl for CUDA ones (each process
    then uses ``cuda:LOCAL_RANK``). Without those variables: one process, ``(0, 1)``."""
    global _averaging, _shared
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise ValueError(
            f"WORLD_SIZE is set but {', '.join(missing)} is not: start data-parallel runs "
            "with torchrun or rlx train --nproc N."
        )
    cuda = torch.device(device).type == "cuda"
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(
            "nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout)
        )
    _averaging = True
    world = dist.get_world_size()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", 0))
    if _shared is None and not cuda and available(local, world):
        _shared = SharedMean(timeout)
    return dist.get_rank(), world


def active() -> bool:
    """Whether gradients are averaged across processes (after :func:`init`)."""
    return _averaging and dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 outside a data-parallel run)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """Number of processes of the run (1 outside a data-parallel run)."""
    return dist.get_world_size() if active() else 1


def shutdown() -> None:
    """Leave the process group (gradients are no longer averaged)."""
    global _averaging, _shared
    _averaging = False
    if _shared is not None:
        _shared.close()
        _shared = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors]) if tensors else torch.zeros(0)


def _mean(flat: torch.Tensor) -> torch.Tensor:
    """The mean of ``flat`` over the processes, the same in every one: through shared
    memory where :mod:`rlx.fast.shared_mean` serves (switch fast paths alike in every
    process), else one ``all_reduce``."""
    if _shared is not None and rlx.fast.enabled() and flat.dtype == torch.float32 \
            and flat.device.type == "cpu":  # fmt: skip
        return _shared(flat)
    dist.all_reduce(flat)
    return flat / dist.get_world_size()


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Replace each parameter's gradient by its mean over the processes, in one
    ``all_reduce`` (a parameter without a gradient counts as zeros and stays without)."""
    params = list(params)
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = _mean(_flat(grads))
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        if p.grad is not None:
            p.grad.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def broadcast(module: torch.nn.Module, src: int = 0) -> None:
    """Give every process ``src``'s parameters and buffers (one ``broadcast``)."""
    if not active():
        return
    tensors = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    flat = _flat([t.detach() for t in tensors])
    dist.broadcast(flat, src)
    offset = 0
    with torch.no_grad():
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()


def all_gather(value: Any) -> list[Any]:
    """Every process's ``value`` (any picklable object), in rank order; ``[value]``
    outside a data-parallel run."""
    if not active():
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def broadcast_object(value: Any, src: int = 0) -> Any:
    """``src``'s ``value`` (any picklable object) in every process; ``value`` itself
    outside a data-parallel run."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src)
    return box[0]

"""The mean of a gradient over the processes of one machine, through shared memory.

A data-parallel step on a small network averages a few thousand numbers, and gloo's
``all_reduce`` takes milliseconds for it on a CPU machine (several messages over local
TCP, each a thread wake-up): PPO's 20 gradient steps per batch then spend a third of the
run waiting (``benchmarks/distributed.py``). Processes on one machine can instead each
write their gradient into a shared block and read the others': microseconds.

Each process owns a row of two slots (alternate calls use alternate slots, so a process
one call ahead never overwrites a row another still reads) and a counter it raises when
its row is written. A call writes, raises, waits until every counter reached it, and sums
the rows in rank order: the same numbers in every process. Waiting spins briefly, then
yields the core. Stores reach other cores in program order on x86-64 only, so the
plain path (:func:`torch.distributed.all_reduce`) is kept everywhere else, and where
the processes span several machines.
"""

from __future__ import annotations

import platform
import time
from multiprocessing import resource_tracker, shared_memory

import numpy as np
import torch
import torch.distributed as dist

SPIN = 2e-4  # seconds of busy waiting before yielding the core between looks


def available(local_world: int, world: int) -> bool:
    """Whether the shared-memory mean can serve this run: every process on this machine
    (``local_world == world``), an x86-64 processor, CPU tensors."""
    return local_world == world > 1 and platform.machine().lower() in ("x86_64", "amd64")


class SharedMean:
    """The mean over the processes of a flat float tensor; made collectively (every
    process calls the constructor, then :meth:`__call__` the same number of times with
    tensors of the same size)."""

    def __init__(self, timeout: float) -> None:
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.timeout = timeout
        self.calls = 0
        self.capacity = 0
        self.block: shared_memory.SharedMemory | None = None

    def _grow(self, size: int) -> None:
        """A block for ``size`` values (collective: every process grows at the same call)."""
        self.close()
        nbytes = 8 * self.world + 2 * self.world * size * 4
        name = None
        if self.rank == 0:
            self.block = shared_memory.SharedMemory(create=True, size=nbytes)
            np.ndarray((self.world,), np.int64, self.block.buf)[:] = 0
            name = self.block.name
        box = [name]
        dist.broadcast_object_list(box, 0)
        if self.rank > 0:
            self.block = _attach(box[0])
        dist.barrier()  # every process attached: rank 0's name may now be unlinked
        if self.rank == 0:
            self.block.unlink()
        self.capacity, self.calls = size, 0
        self.counters = np.ndarray((self.world,), np.int64, self.block.buf)
        self.slots = np.ndarray((2, self.world, size), np.float32, self.block.buf, 8 * self.world)

    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        size = flat.numel()
        if size > self.capacity:
            self._grow(size)
        self.calls += 1
        rows = self.slots[self.calls % 2, :, :size]
        rows[self.rank] = flat.detach().numpy()
        self.counters[self.rank] = self.calls  # after the row: seen after it on x86-64
        start = time.perf_counter()
        while self.counters.min() < self.calls:
            waited = time.perf_counter() - start
            if waited > SPIN:
                time.sleep(0)
            if waited > self.timeout:
                raise RuntimeError(
                    f"a data-parallel step waited {self.timeout:.0f} s for the other processes"
                )
        return torch.from_numpy(rows.sum(0, dtype=np.float32) / self.world)

    def close(self) -> None:
        if self.block is not None:
            self.counters = self.slots = None
            self.block.close()
            self.block = None


def _attach(name: str) -> shared_memory.SharedMemory:
    """Open rank 0's block without registering it with this process's resource tracker
    (rank 0 unlinks it; a second registration would report it leaked at exit)."""
    try:
        return shared_memory.SharedMemory(name=name, track=False)
    except TypeError:  # Python < 3.13: attaching registers it; take that back
        block = shared_memory.SharedMemory(name=name)
        resource_tracker.unregister(block._name, "shared_memory")
        return block

"""The queue under rlx launch: jobs run on the machine's slots, each as a slot frees up.

:func:`run_on_slots` starts :class:`Job` s on :class:`Slot` s (a few CPU cores, or a GPU
shared by a few runs) as slots free up. A job is a :class:`Command` (a subprocess whose
output goes to files) or a :class:`Call` (a picklable function call in a spawned process
whose result comes back); the benchmark harness maps its cases through
:func:`map_on_slots`. The queue knows nothing of grids or ``rlx train``, so that anything
that runs many processes on a few cores can use it.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import signal
import subprocess
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Slot:
    """A place for one job: ``threads`` CPU cores, on GPU ``gpu`` when set."""

    index: int
    threads: int = 1
    gpu: str | None = None

    def environment(self) -> dict[str, str]:
        """Variables that keep a job to its slot (BLAS threads, the visible GPU)."""
        env = {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        return env


def cpu_slots(count: int | None = None, threads: int = 1) -> list[Slot]:
    """``count`` slots of ``threads`` cores (default: as many as the machine's cores hold)."""
    if count is None:
        count = max(1, (os.cpu_count() or 1) // threads)
    if count < 1:
        raise ValueError(f"--slots must be at least 1, got {count}.")
    return [Slot(i, threads) for i in range(count)]


def gpu_slots(gpus: Sequence[str], runs_per_gpu: int = 1, threads: int = 1) -> list[Slot]:
    """``runs_per_gpu`` slots on each GPU; each job sees only its GPU."""
    if runs_per_gpu < 1:
        raise ValueError(f"--runs-per-gpu must be at least 1, got {runs_per_gpu}.")
    return [Slot(i * runs_per_gpu + j, threads, str(g)) for i, g in enumerate(gpus)
            for j in range(runs_per_gpu)]  # fmt: skip


class Job:
    """Something run on a slot: ``status`` goes queued → running → done | failed (or
    stopped, when the queue is interrupted)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = "queued"
        self.returncode: int | None = None
        self.slot: Slot | None = None
        self.started = self.ended = math.nan

    def start(self, slot: Slot) -> None:
        self.slot, self.status, self.started = slot, "running", time.time()

    def poll(self) -> bool:
        """Whether the job has ended (then ``status`` and ``returncode`` say how)."""
        raise NotImplementedError

    def interrupt(self) -> None:
        """Ask the job to stop (as Ctrl-C would)."""

    def kill(self) -> None:
        """Stop the job now."""

    def _end(self, returncode: int) -> None:
        self.returncode, self.ended = returncode, time.time()
        if returncode == 0:  # also a job that finished while being stopped
            self.status = "done"
        elif self.status == "running":
            self.status = "failed"

    @property
    def seconds(self) -> float:
        return (self.ended if self.ended == self.ended else time.time()) - self.started


def _own_session() -> None:
    """In a child before it runs: a session of its own, and Ctrl-C's default meaning even
    if the launcher was started with SIGINT ignored (as a shell's background job is)."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Command(Job):
    """A subprocess; its stdout and stderr go to files. It runs in its own session, so
    that a terminal's Ctrl-C reaches the launcher only, which then stops it cleanly."""

    def __init__(self, name: str, argv: list[str], stdout: Path, stderr: Path) -> None:
        super().__init__(name)
        self.argv, self.stdout, self.stderr = argv, Path(stdout), Path(stderr)
        self.process: subprocess.Popen | None = None

    def start(self, slot: Slot) -> None:
        super().start(slot)
        self.stdout.parent.mkdir(parents=True, exist_ok=True)
        with open(self.stdout, "ab") as out, open(self.stderr, "ab") as err:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=err,
                                            stdin=subprocess.DEVNULL, preexec_fn=_own_session,
                                            env={**os.environ, **slot.environment()})  # fmt: skip

    def poll(self) -> bool:
        if self.process is None or self.process.poll() is None:
            return False
        self._end(self.process.returncode)
        return True

    def _signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # the run and its sampling workers
                os.killpg(self.process.pid, sig)

    def interrupt(self) -> None:
        self._signal(signal.SIGINT)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stderr_tail(self, lines: int = 3) -> list[str]:
        """The last non-empty lines the job wrote to stderr."""
        try:
            text = self.stderr.read_bytes()[-8192:].decode(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]


def _call_in_child(fn: Callable[[Any], Any], arg: Any, environment: dict[str, str], conn) -> None:
    os.environ.update(environment)
    try:
        conn.send((True, fn(arg)))
    except BaseException:
        conn.send((False, traceback.format_exc()))
        raise SystemExit(1) from None
    finally:
        conn.close()


class Call(Job):
    """``fn(arg)`` in a spawned process; its value comes back as ``result``, or the
    traceback as ``error``. ``fn`` and ``arg`` must be picklable."""

    def __init__(self, name: str, fn: Callable[[Any], Any], arg: Any) -> None:
        super().__init__(name)
        self.fn, self.arg = fn, arg
        self.result: Any = None
        self.error = ""
        self._answer: tuple[bool, Any] | None = None

    def start(self, slot: Slot) -> None:
        super().start(slot)
        context = mp.get_context("spawn")
        self._conn, child = context.Pipe(duplex=False)
        arguments = (self.fn, self.arg, slot.environment(), child)
        self.process = context.Process(target=_call_in_child, args=arguments)
        self.process.start()
        child.close()

    def poll(self) -> bool:
        alive = self.process.is_alive()  # first: if it had ended, its answer is in the pipe
        # Read the answer before joining: a large one blocks the child until it is read.
        if self._answer is None and self._conn.poll():
            try:
                self._answer = self._conn.recv()
            except EOFError:  # it closed the pipe without answering
                self._answer = (False, "")
        if alive:
            return False
        self.process.join()
        code = self.process.exitcode if self.process.exitcode is not None else 1
        ok, value = self._answer or (False, "")
        if ok:
            self.result = value
        else:
            self.error = value or f"the process ended with exit code {code} without an answer"
        self._end(code if ok else code or 1)
        return True

    def interrupt(self) -> None:
        if self.process.is_alive():
            os.kill(self.process.pid, signal.SIGINT)

    def kill(self) -> None:
        self.process.kill()
        self.process.join()


def stop_all(jobs: Sequence[Job], grace: float = 15.0) -> None:
    """Interrupt every running job, wait up to ``grace`` seconds for all, kill the rest."""
    running = [job for job in jobs if job.status == "running"]
    for job in running:
        job.status = "stopped"
        job.interrupt()
    deadline = time.monotonic() + grace
    while running and time.monotonic() < deadline:
        running = [job for job in running if not job.poll()]
        time.sleep(0.05)
    for job in running:
        job.kill()
        job.poll()


def run_on_slots(
    jobs: Sequence[Job],
    slots: Sequence[Slot],
    on_tick: Callable[[], None] | None = None,
    interval: float = 0.1,
) -> list[Job]:
    """Run ``jobs`` in order, each on a free slot as one frees up (checked every
    ``interval`` seconds; ``on_tick`` is called then). On an exception, Ctrl-C included,
    every running job is stopped before it propagates."""
    if not slots:
        raise ValueError("no slots to run on.")
    queued = [job for job in jobs if job.status == "queued"]
    free = sorted(slots, key=lambda s: s.index)
    running: list[Job] = []
    try:
        while queued or running:
            while queued and free:
                job = queued.pop(0)
                job.start(free.pop(0))
                running.append(job)
            time.sleep(interval)
            for job in [job for job in running if job.poll()]:
                running.remove(job)
                free = sorted([*free, job.slot], key=lambda s: s.index)
            if on_tick is not None:
                on_tick()
    finally:
        stop_all(running)
    return list(jobs)


def map_on_slots(fn: Callable[[Any], Any], args: Sequence[Any], slots: Sequence[Slot]) -> list:
    """``[fn(a) for a in args]``, each call in a spawned process on a slot; a RuntimeError
    with the first failure's traceback if any call failed."""
    calls = [Call(f"job {i}", fn, arg) for i, arg in enumerate(args)]
    run_on_slots(calls, slots)
    for call in calls:
        if call.status != "done":
            raise RuntimeError(f"{call.name} ({call.arg!r}) failed:\n{call.error}")
    return [call.result for call in calls]

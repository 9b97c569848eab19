"""``rlx train ... --nproc N``: start the N processes of a data-parallel run and watch them.

Each process runs the same ``rlx train`` command (:func:`run_processes` runs any command so)
with torchrun's environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``), so that its :class:`~rlx.runner.runner.Runner` joins
the process group (:mod:`rlx.core.distributed`). Rank 0 prints to the terminal; the
others' output is dropped apart from errors. When a process fails, the others are
stopped at once (they would otherwise wait in a collective) and the exit code is the
failed one's.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

POLL = 0.1  # seconds between looks at the processes
GRACE = 5.0  # seconds a stopped process has to exit before it is killed


def free_port() -> int:
    """A TCP port free on this machine now, for the process group's rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(command: list[str], nproc: int) -> int:
    """Run ``command`` (e.g. ``[sys.executable, "-m", "rlx.cli", "train", ...]``) as the
    ``nproc`` processes of one data-parallel run; their exit code (the first failure's,
    if any)."""
    port = str(free_port())
    processes = []
    for rank in range(nproc):
        env = {
            **os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
        }  # fmt: skip
        quiet = subprocess.DEVNULL if rank > 0 else None
        processes.append(subprocess.Popen(command, env=env, stdout=quiet))
    try:
        while True:
            codes = [p.poll() for p in processes]
            failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                rank, code = failed[0]
                _stop(processes)
                sys.stderr.write(
                    f"rlx: error: process {rank} of the data-parallel run stopped (exit code "
                    f"{code}); the other processes were stopped.\n"
                )
                return code if code > 0 else 1
            if all(c == 0 for c in codes):
                return 0
            time.sleep(POLL)
    except KeyboardInterrupt:
        _stop(processes, signal.SIGINT)
        return 130


def _stop(processes: list[subprocess.Popen], sig: int = signal.SIGTERM) -> None:
    """Signal every process still running, then kill those that outlive the grace time."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.monotonic() + GRACE
    for p in processes:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

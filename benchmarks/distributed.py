"""Data-parallel training: ``rlx train --nproc 2`` against one process, PPO on CartPole-v1.

Same per-process settings (the README's PPO: 8 environments x 32 steps per process and
update, 20 epochs, one minibatch), seed 0, torch on one thread per process, on this
2-core machine. Measured, one after the other so that they do not compete:

- throughput: total environment steps per second of all processes over a fixed budget
  (``CumSteps / CumTime`` of the last progress.csv row: training time, start-up left
  out); target: 2 processes >= 1.6 x one;
- learning: each run with ``--target-return 475`` (the average of the last 100 training
  episodes), printing the steps it took; target: both reach it within the budget.

The gradient mean goes through shared memory (:mod:`rlx.fast.shared_mean`); the
throughput of both is printed again with every fast path off (``RLX_FAST=0``: gloo's
``all_reduce``, plain PyTorch elsewhere), for the plain path's speed-up.

The launcher's own figures are in ``benchmarks/launcher.py``.

Run: ``python -m benchmarks.distributed [--budget 200000] [--throughput-steps 40000]``.
Exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import verdict

SPEED_TARGET = 1.6
RETURN_TARGET = 475.0
PPO = ("ppo", "CartPole-v1", "--num-envs", "8", "--steps", "32", "--epochs", "20",
       "--minibatches", "1", "--lr", "1e-3", "--anneal-lr", "--gamma", "0.98", "--lam", "0.8",
       "--seed", "0")  # fmt: skip


def train(
    run_dir: Path, nproc: int, *options: str, plain: bool = False
) -> tuple[dict[str, str], float]:
    """One ``rlx train`` run (``plain``: fast paths off); its last progress.csv row and the
    command's wall time."""
    argv = [sys.executable, "-m", "rlx.cli", "train", *PPO, "--nproc", str(nproc),
            "--run-dir", str(run_dir), "--no-progress", "--no-tensorboard", "--no-plot",
            *options]  # fmt: skip
    start = time.perf_counter()
    env = {**os.environ, "RLX_FAST": "0"} if plain else None
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"rlx train --nproc {nproc} failed:\n{done.stderr}")
    with open(run_dir / "progress.csv") as f:
        return list(csv.DictReader(f))[-1], seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=200_000, help="steps to reach 475 in")
    parser.add_argument("--throughput-steps", type=int, default=40_000)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in (1, 2):
            row, wall = train(Path(tmp) / f"speed{nproc}", nproc,
                              "--total-steps", str(args.throughput_steps))  # fmt: skip
            rate = int(row["CumSteps"]) / float(row["CumTime"])
            target = ("--total-steps", str(args.budget), "--target-return", str(RETURN_TARGET))
            learned, learn_wall = train(Path(tmp) / f"learn{nproc}", nproc, *target)
            results[nproc] = dict(
                rate=rate, wall=wall, steps=int(learned["CumSteps"]),
                ret=float(learned["ReturnAverage"]), learn_wall=learn_wall,
            )  # fmt: skip

        plain = {}
        for nproc in (1, 2):
            row, _ = train(Path(tmp) / f"plain{nproc}", nproc, "--total-steps",
                           str(args.throughput_steps), plain=True)  # fmt: skip
            plain[nproc] = int(row["CumSteps"]) / float(row["CumTime"])

    print(f"PPO on CartPole-v1, seed 0, per process: {' '.join(PPO[2:-2])}")
    print(f"{'processes':>9} {'steps/s':>9} {'wall (s)':>9} {'return':>7} {'at steps':>9} "
          f"{'wall (s)':>9}")  # fmt: skip
    print(f"{'':>9} {f'({args.throughput_steps // 1000}k steps)':>19} "
          f"{'(learning, --target-return 475)':>37}")  # fmt: skip
    for nproc, r in results.items():
        print(f"{nproc:>9} {r['rate']:>9,.0f} {r['wall']:>9.1f} {r['ret']:>7.1f} "
              f"{r['steps']:>9,} {r['learn_wall']:>9.1f}")  # fmt: skip
    speedup = results[2]["rate"] / results[1]["rate"]
    print(f"speed-up, 2 processes over 1 (total steps/s): {speedup:.2f}")
    print(f"fast paths off (RLX_FAST=0, gloo all_reduce): 1 process {plain[1]:,.0f} steps/s, "
          f"2 processes {plain[2]:,.0f} steps/s, speed-up {plain[2] / plain[1]:.2f}")  # fmt: skip
    checks = [
        (f"2 processes >= {SPEED_TARGET} x one process, total steps/s", f"{speedup:.2f}",
         speedup >= SPEED_TARGET),
        *((f"{n} process(es) reach {RETURN_TARGET:.0f} within {args.budget:,} steps",
           f"{r['ret']:.1f} at {r['steps']:,}", r["ret"] >= RETURN_TARGET)
          for n, r in results.items()),
    ]  # fmt: skip
    return verdict(checks)


if __name__ == "__main__":
    sys.exit(main())

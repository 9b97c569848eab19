"""rlx launch on the machine's slots against the same runs one after another.

Six short runs (PPO on CartPole-v1, 3 seeds × 2 learning rates, each some 20–40 s alone
on the 2-core machine) are launched twice through :mod:`rlx.runner.launch`: on 2 slots
of one core, then on 1 slot. Prints a table of the runs, both wall times and their ratio;
the target is a ratio of at most 0.6 (two cores cannot do better than 0.5, and every run
pays its own start: importing torch, building the environments). Run: ``python -m
benchmarks.launcher [--total-steps 50000] [--slots 2]``. Exits non-zero on a miss.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import verdict
from rlx.runner import launch
from rlx.runner.grid import Grid, grid_variants
from rlx.runner.slots import cpu_slots

TARGET_RATIO = 0.6


def timed_launch(grid: Grid, out: Path, slots: int) -> tuple[float, list[launch.Run]]:
    """Launch ``grid`` in ``out`` on ``slots`` CPU slots; the wall time and the runs."""
    launch.prepare(grid, out)
    log = io.StringIO()  # the launcher's own lines; a failure is shown below
    load = os.getloadavg()[0]
    start = time.perf_counter()
    code = launch.launch(grid, out, cpu_slots(slots), stream=log)
    seconds = time.perf_counter() - start
    if code != 0:
        print(log.getvalue(), file=sys.stderr)
    # Other work on the machine skews the ratio: show the load before and after.
    print(f"{slots} slot{'s' * (slots > 1)}: {seconds:.1f} s (load average {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after)")  # fmt: skip
    runs = [launch.Run(grid, v, s, d) for v, s, d in grid.runs(out)]
    return seconds, runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total-steps", type=int, default=50_000)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lrs", nargs="+", default=["3e-4", "1e-3"])
    args = parser.parse_args()
    grid = Grid(
        "ppo", "CartPole-v1", grid_variants([f"lr={','.join(args.lrs)}"]), args.seeds,
        ["--total-steps", str(args.total_steps), "--no-tensorboard", "--no-plot"],
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        together, runs = timed_launch(grid, Path(tmp) / "together", args.slots)
        alone, sequential = timed_launch(grid, Path(tmp) / "alone", 1)
        header = f"{'run':14} {f'{args.slots} slots s':>10} {'1 slot s':>9} {'final return':>13}"
        print(header)
        print("-" * len(header))
        done = 0
        for run, single in zip(runs, sequential, strict=True):
            status = [r.exit_status() for r in (run, single)]
            done += sum(s.get("status") == "done" for s in status)
            seconds = [f"{s.get('seconds', float('nan')):.1f}" for s in status]
            final, _ = launch.final_return(run.run_dir)
            print(f"{run.name:14} {seconds[0]:>10} {seconds[1]:>9} {final:>13.1f}")
    ratio = together / alone
    print(f"{len(runs)} runs of {args.total_steps:,} steps: {together:.1f} s on {args.slots} "
          f"slots, {alone:.1f} s one after another")  # fmt: skip
    return verdict([
        (f"{args.slots} slots take <= {TARGET_RATIO} of the time one after another",
         f"{ratio:.2f}", ratio <= TARGET_RATIO),
        ("every run finished, both ways", f"{done} of {2 * len(runs)}", done == 2 * len(runs)),
    ])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())

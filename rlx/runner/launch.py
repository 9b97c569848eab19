"""rlx launch: a grid's variants × seeds as separate ``rlx train`` runs on the machine's slots.

The grid (:class:`~rlx.runner.grid.Grid`) and the queue of slots (:mod:`rlx.runner.slots`)
live in their own modules; this one runs the one on the other. :func:`launch` runs each
variant and seed as ``rlx train`` in ``OUT/<variant>/s<seed>`` (an ordinary run directory;
``config.json`` names the variant), shows a live table, and ends with a summary per variant
and ``OUT/curves.png``. ``OUT/launch.json`` holds the grid, so that a later launch on the
same directory continues it: runs that finished are skipped, interrupted or failed ones are
resumed from their newest checkpoint (``rlx train --resume``), others start afresh.
A run's end is recorded in ``RUN_DIR/exit_status.json``; its output in ``RUN_DIR/stdout.txt``
and ``RUN_DIR/stderr.txt``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from rlx.runner.grid import Grid, Variant, validate, variant_argv
from rlx.runner.slots import Command, Slot, run_on_slots

EXIT_STATUS = "exit_status.json"


def train_command() -> list[str]:
    """How to start ``rlx train`` with this interpreter (whatever the PATH holds)."""
    return [sys.executable, "-m", "rlx.cli", "train"]


class Run(Command):
    """One run of a grid. Its ``action`` is what the launch does with it: ``skip`` (it
    finished before), ``resume`` (from its newest checkpoint) or ``start``."""

    def __init__(self, grid: Grid, variant: Variant, seed: int, run_dir: Path,
                 extra: Sequence[str] = ()) -> None:  # fmt: skip
        self.variant, self.seed, self.run_dir = variant, seed, run_dir
        if self.exit_status().get("status") == "done":
            self.action, argv = "skip", []
        elif any((run_dir / "checkpoints").glob("checkpoint-*.pt")):
            self.action, argv = "resume", [*train_command(), "--resume", str(run_dir), *extra]
        else:
            self.action = "start"
            argv = [*train_command(), grid.algo, grid.env, *grid.train_args,
                    *variant_argv(grid, variant), "--seed", str(seed), "--run-dir", str(run_dir),
                    "--variant", variant.name, *extra]  # fmt: skip
        super().__init__(f"{variant.name}/s{seed}", argv, run_dir / "stdout.txt",
                         run_dir / "stderr.txt")  # fmt: skip
        if self.action == "skip":
            self.status, self.returncode = "done", 0

    def start(self, slot: Slot) -> None:
        if self.action == "start" and self.run_dir.exists():  # what a failed start left
            shutil.rmtree(self.run_dir)
        (self.run_dir / EXIT_STATUS).unlink(missing_ok=True)
        super().start(slot)

    def _end(self, returncode: int) -> None:
        super()._end(returncode)
        if self.status in ("done", "failed"):
            ended = {"status": self.status, "returncode": returncode, "seconds": self.seconds}
            (self.run_dir / EXIT_STATUS).write_text(json.dumps(ended))

    def exit_status(self) -> dict[str, Any]:
        """What ``RUN_DIR/exit_status.json`` recorded of the run's end (empty if nothing)."""
        return _read_json(self.run_dir / EXIT_STATUS)

    def progress(self) -> dict[str, str]:
        """The newest row of the run's progress.csv (empty before the first)."""
        return last_row(self.run_dir / "progress.csv")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def last_row(path: Path) -> dict[str, str]:
    """The last complete row of a CSV file, read from its end (runs may be long)."""
    try:
        with open(path, "rb") as f:
            header = f.readline().decode().rstrip("\r\n").split(",")
            f.seek(0, os.SEEK_END)
            f.seek(max(f.tell() - 8192, 0))
            lines = f.read().decode(errors="replace").split("\n")[:-1]  # the last may be partial
    except OSError:
        return {}
    for line in reversed(lines):
        cells = line.rstrip("\r").split(",")
        if len(cells) == len(header) and cells != header:
            return dict(zip(header, cells, strict=True))
    return {}


def _number(text: str | None) -> float:
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


def _clock(seconds: float) -> str:
    if seconds != seconds:
        return ""
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


class Board:
    """The live table of runs. On a terminal it is redrawn in place every ``every``
    seconds; otherwise (a log file) only changes are printed, one line each."""

    def __init__(self, runs: list[Run], stream: TextIO, every: float = 2.0) -> None:
        self.runs, self.stream, self.every = runs, stream, every
        self.tty = stream.isatty()
        self.seen = {run.name: run.status for run in runs}
        self.drawn = 0  # lines of the table now on screen
        self.last = 0.0
        self.width = max(len(run.name) for run in runs)

    def table(self) -> list[str]:
        lines = [f"{'run':{self.width}}  {'status':8} {'steps':>10} {'return':>9} {'time':>8}"]
        shown = self.runs
        room = shutil.get_terminal_size().lines - 3  # redrawing needs the table on screen
        if len(shown) > room:  # the running and failed runs, then a count of the others
            shown = [run for run in self.runs if run.status in ("running", "failed")][:room]
            counts = {s: sum(r.status == s for r in self.runs) for s in ("queued", "done")}
            lines.insert(0, f"({counts['queued']} queued, {counts['done']} done)")
        for run in shown:
            row = run.progress() if run.status != "queued" else {}
            steps = row.get("CumSteps", "")
            returned = _number(row.get("ReturnAverage"))
            returned_text = "" if returned != returned else f"{returned:.1f}"
            timed = run.status != "queued" and run.action != "skip"
            time_text = _clock(run.seconds) if timed else ""
            lines.append(f"{run.name:{self.width}}  {run.status:8} {steps:>10} "
                         f"{returned_text:>9} {time_text:>8}")  # fmt: skip
        return lines

    def _print(self, lines: list[str]) -> None:
        if self.tty and self.drawn:  # back to the table's first line, and clear below
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0
        for line in lines:
            self.stream.write(line + "\n")
        self.stream.flush()

    def changes(self) -> list[str]:
        lines = []
        for run in self.runs:
            if self.seen[run.name] == run.status:
                continue
            self.seen[run.name] = run.status
            if run.status == "running":
                what = "resumed" if run.action == "resume" else "started"
                lines.append(f"{run.name}: {what} on slot {run.slot.index}" if not self.tty else "")
            elif run.status == "done":
                returned = _number(run.progress().get("ReturnAverage"))
                lines.append(f"{run.name}: done in {_clock(run.seconds)}, return {returned:.1f}")
            elif run.status == "stopped":
                lines.append(f"{run.name}: stopped at {run.progress().get('CumSteps', 0)} steps")
            elif run.status == "failed":
                lines.append(f"{run.name}: FAILED (exit code {run.returncode}); "
                             f"{run.stderr} ends:")  # fmt: skip
                lines += [f"    {line}" for line in run.stderr_tail()]
        return [line for line in lines if line]

    def tick(self, force: bool = False) -> None:
        changed = self.changes()
        if changed:
            self._print(changed)
        if self.tty and (force or changed or time.monotonic() - self.last >= self.every):
            table = self.table()
            self._print(table)
            self.drawn, self.last = len(table), time.monotonic()


def final_return(run_dir: Path) -> tuple[float, float]:
    """(final return, environment steps): the last row's EvalReturnAverage when the run
    evaluated, else its ReturnAverage."""
    row = last_row(run_dir / "progress.csv")
    evaluated = _number(row.get("EvalReturnAverage"))
    final = evaluated if evaluated == evaluated else _number(row.get("ReturnAverage"))
    return final, _number(row.get("CumSteps"))


def steps_to(run_dir: Path, target: float) -> float:
    """The first step at which the run's return (evaluation return when it evaluated)
    reached ``target``; NaN if it never did."""
    from rlx.runner.plot import read_progress

    try:
        data = read_progress(run_dir)
    except (OSError, ValueError):
        return math.nan
    column = "EvalReturnAverage"
    if column not in data or all(v != v for v in data[column]):
        column = "ReturnAverage"
    reached = [s for s, r in zip(data["CumSteps"], data[column], strict=True) if r >= target]
    return float(reached[0]) if reached else math.nan


def summarize(runs: list[Run]) -> list[dict[str, Any]]:
    """Per variant: its runs' final returns, their mean and std over seeds, and for a
    variant with a ``--target-return``, the steps each run took to reach it."""
    import numpy as np

    summary = []
    for name in dict.fromkeys(run.variant.name for run in runs):
        mine = [run for run in runs if run.variant.name == name]
        finals = [final_return(run.run_dir)[0] for run in mine if run.status == "done"]
        finals = [f for f in finals if f == f]
        configs = [_read_json(run.run_dir / "config.json").get("run", {}) for run in mine]
        target = next((c["target_return"] for c in configs if "target_return" in c), None)
        done = [run for run in mine if run.status == "done"]
        reached = [steps_to(run.run_dir, target) for run in done] if target is not None else []
        summary.append({
            "variant": name,
            "runs": len(mine),
            "done": sum(run.status == "done" for run in mine),
            "finals": finals,
            "mean": float(np.mean(finals)) if finals else math.nan,
            "std": float(np.std(finals)) if finals else math.nan,
            "target": target,
            "reached": [r for r in reached if r == r] if target is not None else None,
        })  # fmt: skip
    return summary


def summary_table(summary: list[dict[str, Any]]) -> list[str]:
    width = max(7, *(len(s["variant"]) for s in summary))
    lines = [f"{'variant':{width}}  {'runs done':>9}  {'final return (mean ± std)':>26}  "
             "steps to target (mean; reached)"]  # fmt: skip
    for s in summary:
        final = f"{s['mean']:.1f} ± {s['std']:.1f}" if s["finals"] else "-"
        if s["target"] is None:
            target = "-"
        elif s["reached"]:
            target = f"{sum(s['reached']) / len(s['reached']):,.0f} to {s['target']:g}; "
            target += f"{len(s['reached'])}/{s['runs']}"
        else:
            target = f"not reached {s['target']:g}; 0/{s['runs']}"
        done = f"{s['done']}/{s['runs']}"
        lines.append(f"{s['variant']:{width}}  {done:>9}  {final:>26}  {target}")
    return lines


def load(out: str | Path) -> tuple[Grid, dict[str, Any]]:
    """The grid saved in ``OUT/launch.json`` and the slot settings it was launched with."""
    path = Path(out) / "launch.json"
    if not path.exists():
        raise ValueError(f"{path} not found: is {out} a directory made by rlx launch?")
    saved = _read_json(path)
    try:
        return Grid.from_dict(saved["grid"]), saved.get("slots", {})
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a grid description ({err}).") from None


def prepare(grid: Grid, out: str | Path, slots: dict[str, Any] | None = None) -> list[Any]:
    """Check the grid and the output directory, then save the grid in ``OUT/launch.json``
    (with ``slots``, the settings a resume reuses). The same grid in ``out`` continues;
    another one, or a directory that rlx launch did not make, is a ValueError. Returns
    :func:`~rlx.runner.grid.validate`'s run configs."""
    out = Path(out)
    if (out / "launch.json").exists():
        if load(out)[0] != grid:
            raise ValueError(
                f"{out} holds another grid (launch.json); continue it with rlx launch --resume "
                f"{out}, or choose another --out."
            )
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and was not made by rlx launch; choose another --out.")
    configs = validate(grid)
    out.mkdir(parents=True, exist_ok=True)
    saved = {"grid": grid.to_dict(), "slots": slots or {}}
    (out / "launch.json").write_text(json.dumps(saved, indent=2))
    return configs


def launch(grid: Grid, out: str | Path, slots: Sequence[Slot], extra: Sequence[str] = (),
           stream: TextIO | None = None) -> int:  # fmt: skip
    """Run a prepared grid (see :func:`prepare`) in ``out`` on ``slots``, show the table,
    then the summary; write ``OUT/summary.json`` and ``OUT/curves.png``. ``extra`` are
    ``rlx train`` options added to every run (``--device cuda`` on GPU slots). Returns 0
    when every run finished, 1 when one failed, 130 when interrupted (Ctrl-C or SIGTERM:
    every run is stopped; a later launch resumes them)."""
    out, stream = Path(out), stream or sys.stdout
    runs = [Run(grid, variant, seed, run_dir, extra) for variant, seed, run_dir in grid.runs(out)]
    skipped = sum(run.action == "skip" for run in runs)
    resumed = sum(run.action == "resume" for run in runs)
    before = f"; {skipped} finished before, {resumed} to resume" if skipped or resumed else ""
    seeds = f"{len(grid.seeds)} seed{'s' * (len(grid.seeds) > 1)}"
    variants = f"{len(grid.variants)} variant{'s' * (len(grid.variants) > 1)}"
    stream.write(f"{len(runs)} runs ({variants} × {seeds}) "
                 f"on {len(slots)} slots in {out}{before}\n")  # fmt: skip
    board = Board(runs, stream)
    previous = None
    if threading_main():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_on_slots(runs, slots, on_tick=board.tick)
    except KeyboardInterrupt:
        board.tick(force=True)
        stream.write(f"stopped; continue with: rlx launch --resume {out}\n")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    board.tick(force=True)
    summary = summarize(runs)
    stream.write("\n" + "\n".join(summary_table(summary)) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.txt").write_text("\n".join(summary_table(summary)) + "\n")
    plotted = [run.run_dir for run in runs if (run.run_dir / "progress.csv").exists()]
    if plotted:
        from rlx.runner.plot import plot_runs

        try:
            plot_runs(plotted, out / "curves.png")
            stream.write(f"curves: {out / 'curves.png'}\n")
        except ValueError as err:  # e.g. no episode finished
            stream.write(f"no curves.png: {err}\n")
    failed = [run for run in runs if run.status == "failed"]
    if failed:
        stream.write(f"{len(failed)} of {len(runs)} runs failed: "
                     f"{', '.join(run.name for run in failed)} (see their stderr.txt); "
                     f"rerun them with rlx launch --resume {out}\n")  # fmt: skip
    stream.flush()
    return 1 if failed else 0


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt

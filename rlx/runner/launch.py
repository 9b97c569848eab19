"""Experiment grids: variants × seeds as separate ``rlx train`` runs on the machine's slots.

Two layers. Underneath, a small queue: :func:`run_on_slots` starts :class:`Job` s on
:class:`Slot` s (a few CPU cores, or a GPU shared by a few runs) as slots free up. A job is
a :class:`Command` (a subprocess whose output goes to files) or a :class:`Call` (a picklable
function call in a spawned process whose result comes back); the benchmark harness maps its
cases through :func:`map_on_slots`.

On top, a :class:`Grid`: an algorithm, an environment, ``rlx train`` options shared by all
runs, a list of :class:`Variant` s (named option sets) and seeds. :func:`launch` runs each
variant and seed as ``rlx train`` in ``OUT/<variant>/s<seed>`` (an ordinary run directory;
``config.json`` names the variant), shows a live table, and ends with a summary per variant
and ``OUT/curves.png``. ``OUT/launch.json`` holds the grid, so that a later launch on the
same directory continues it: runs that finished are skipped, interrupted or failed ones are
resumed from their newest checkpoint (``rlx train --resume``), others start afresh.
A run's end is recorded in ``RUN_DIR/exit_status.json``; its output in ``RUN_DIR/stdout.txt``
and ``RUN_DIR/stderr.txt``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import itertools
import json
import math
import multiprocessing as mp
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

# ------------------------------------------------------------------------- the queue


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


# -------------------------------------------------------------------------- the grid

# Options the launcher sets itself for every run.
_LAUNCHER_OPTIONS = {"seed": "--seeds", "run_dir": "--out", "variant": "the variant's name",
                     "resume": "rlx launch --resume"}  # fmt: skip


@dataclass
class Variant:
    """A named set of ``rlx train`` options, e.g. ``Variant("fast", {"lr": 1e-3})``."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Grid:
    """Runs of ``algo`` on ``env``: every variant with every seed. ``train_args`` are
    ``rlx train`` options (``["--total-steps", "50000"]``) shared by all runs; a variant's
    options come after them, so they win."""

    algo: str
    env: str
    variants: list[Variant]
    seeds: list[int]
    train_args: list[str] = field(default_factory=list)

    def runs(self, out: Path) -> list[tuple[Variant, int, Path]]:
        return [(v, s, out / v.name / f"s{s}") for v in self.variants for s in self.seeds]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Grid:
        variants = [Variant(**v) for v in values["variants"]]
        return cls(values["algo"], values["env"], variants, values["seeds"],
                   values.get("train_args", []))  # fmt: skip


def split_values(text: str) -> list[str]:
    """``"3e-4,linear(1e-3, 0, 1e5)"`` → its values: commas inside parentheses stay."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    return [*values, current.strip()]


def short(value: Any) -> str:
    return str(value).replace(" ", "")


def grid_variants(grid: Sequence[str]) -> list[Variant]:
    """The cartesian product of ``--grid 'lr=3e-4,1e-3'`` options, named by their values
    (``lr=3e-4_gamma=0.99``); one unnamed default variant when there are none."""
    axes = []
    for item in grid:
        key, sep, values = item.partition("=")
        key = key.strip().removeprefix("--").replace("-", "_")
        if not sep or not key or not values.strip():
            raise ValueError(f"--grid {item!r}: write OPTION=VALUE,VALUE..., e.g. 'lr=3e-4,1e-3'.")
        axes.append([(key, v) for v in split_values(values)])
    variants = []
    for combo in itertools.product(*axes):
        name = "_".join(f"{key}={short(value)}" for key, value in combo) or "default"
        variants.append(Variant(name, dict(combo)))
    return variants


def read_variants(path: str | Path) -> list[Variant]:
    """Variants from a YAML, JSON or Python file (a Python file defines ``VARIANTS``): a
    list of dicts of training options, each optionally with a ``name``, or a dict of
    name → options. Unnamed variants are named by their options."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"variant file {path} not found.")
    try:
        if path.suffix == ".py":
            entries = runpy.run_path(str(path)).get("VARIANTS")
            if entries is None:
                raise ValueError(f"{path} defines no VARIANTS (a list or dict of option dicts).")
        elif path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ValueError(
                    f"reading {path} needs PyYAML (pip install pyyaml); or write the variants "
                    "as JSON or as VARIANTS in a Python file."
                ) from None
            entries = yaml.safe_load(path.read_text())
        else:
            entries = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"cannot read variants from {path}: {err}.") from None
    except ValueError:  # one of ours, already one line
        raise
    except Exception as err:  # a syntax error in any of the formats, reported in one line
        detail = " ".join(str(err).split())
        raise ValueError(
            f"cannot read variants from {path}: {type(err).__name__}: {detail}"
        ) from None
    if isinstance(entries, dict):
        if not all(isinstance(v, dict) for v in entries.values()):
            raise ValueError(f"{path}: a dict of variants maps each name to a dict of options.")
        entries = [{"name": name, **options} for name, options in entries.items()]
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(e, dict) for e in entries)
    ):
        raise ValueError(f"{path} must hold a non-empty list of dicts of training options.")
    variants = []
    for entry in entries:
        options = {
            k.removeprefix("--").replace("-", "_"): v for k, v in entry.items() if k != "name"
        }
        name = entry.get("name") or "_".join(f"{k}={short(v)}" for k, v in options.items())
        variants.append(Variant(str(name or "default"), options))
    return variants


def combine(file_variants: list[Variant] | None, grid: list[Variant]) -> list[Variant]:
    """Every file variant with every grid combination (either list may stand alone)."""
    if not file_variants:
        return grid
    if len(grid) == 1 and not grid[0].options:
        return file_variants
    return [Variant(f"{f.name}_{g.name}", {**f.options, **g.options})
            for f in file_variants for g in grid]  # fmt: skip


def _option_argv(key: str, value: Any, action: Any) -> list[str]:
    """``--key value`` for one option; a boolean flag as ``--key`` or ``--no-key``."""
    flag = "--" + key.replace("_", "-")
    if action.nargs == 0:  # a BooleanOptionalAction
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ValueError(f"{flag} is on or off: give true or false, got {value!r}.")
        return [flag] if text in ("true", "1", "yes", "on") else [f"--no-{flag[2:]}"]
    if isinstance(value, (list, dict)):
        raise ValueError(f"{flag} takes one value, got {value!r}.")
    return [flag, "none" if value is None else str(value)]


def _strict(parser: Any, context: str) -> Any:
    """``parser`` that raises ValueError (prefixed with ``context``) instead of exiting."""

    def error(message: str) -> None:
        raise ValueError(f"{context}: {message}")

    parser.error = error
    return parser


def variant_argv(grid: Grid, variant: Variant) -> list[str]:
    """The ``rlx train`` options of a variant (after the grid's shared ones), checked
    against the algorithm's: an unknown name is a ValueError suggesting a close one."""
    from rlx.cli import train_parser

    parser = train_parser(grid.algo)
    actions = {o: a for a in parser._actions for o in a.option_strings}
    argv = []
    for key, value in variant.options.items():
        flag = "--" + key.replace("_", "-")
        if key in _LAUNCHER_OPTIONS:
            raise ValueError(f"variant {variant.name!r}: {flag} is set by the launcher "
                             f"({_LAUNCHER_OPTIONS[key]}); leave it out.")  # fmt: skip
        if flag not in actions or flag in ("--help", "-h"):
            names = [o[2:] for o in actions if o.startswith("--") and not o.startswith("--no-")]
            close = difflib.get_close_matches(key.replace("_", "-"), names, n=1)
            hint = f" (did you mean {close[0].replace('-', '_')}?)" if close else ""
            raise ValueError(f"variant {variant.name!r}: {grid.algo} has no option {key!r}{hint}.")
        try:
            argv += _option_argv(key, value, actions[flag])
        except ValueError as err:
            raise ValueError(f"variant {variant.name!r}: {err}") from None
    return argv


def validate(grid: Grid) -> list[Any]:
    """Raise ValueError naming the first bad part of the grid, before anything runs: each
    variant's options are parsed and checked as ``rlx train`` would. Returns each variant's
    :class:`~rlx.runner.config.RunConfig` (for seed 0)."""
    from rlx.algos.config import validate_config
    from rlx.algos.registry import algorithm_class, canonical_name
    from rlx.cli import train_parser
    from rlx.runner.config import RunConfig, from_arguments

    algorithm_class(grid.algo)  # an unknown name is a ValueError with suggestions
    if not grid.seeds:
        raise ValueError("--seeds needs at least one seed.")
    if len(set(grid.seeds)) < len(grid.seeds):
        raise ValueError(f"--seeds repeats a seed: {grid.seeds}.")
    names = [v.name for v in grid.variants]
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"two variants are named {twice!r}.")
    for name in names:
        if not name or "/" in name or name.startswith(".") or name != name.strip():
            raise ValueError(f"variant name {name!r} cannot be a directory name.")
    runs = []
    for variant in grid.variants:
        argv = [grid.algo, grid.env, *grid.train_args, *variant_argv(grid, variant)]
        args = _strict(train_parser(grid.algo), f"variant {variant.name!r}").parse_args(argv)
        run = from_arguments(RunConfig, args, algo=canonical_name(grid.algo), env=grid.env)
        algo_config = from_arguments(algorithm_class(grid.algo).Config, args)
        try:
            run.validate()
            validate_config(algo_config)
        except ValueError as err:
            raise ValueError(f"variant {variant.name!r}: {err}") from None
        runs.append(run)
    import gymnasium as gym

    from rlx.envs.vector import unknown_id_error

    try:
        gym.spec(grid.env)
    except gym.error.Error as err:
        raise unknown_id_error(grid.env, err) from None
    return runs


# ---------------------------------------------------------------------- running a grid

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
    :func:`validate`'s run configs."""
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

"""Run options as a typed dataclass, and dataclasses as command-line flags.

The same dataclasses configure a run from Python and from the ``rlx`` command line:
every field becomes a flag (``num_envs`` → ``--num-envs``) whose help is the field's
docstring, so the CLI and the Python API cannot drift apart.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib.util
import inspect
import json
import sys
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from rlx import schedules
from rlx.schedules import Schedule


@dataclass
class RunConfig:
    """What to train, for how long, and what to record."""

    algo: str = "ppo"
    """Algorithm name (see ``rlx.algos.ALGORITHMS``)."""
    env: str = "CartPole-v1"
    """Gymnasium environment id."""
    policy: str = "mlp"
    """Ready policy: mlp, rnn (GRU), gru or lstm."""
    hidden: int = 64
    """Width of the policy's hidden layers."""
    squash: bool = False
    """Box actions: a tanh-squashed Gaussian scaled to the bounds instead of a clipped one."""
    previous_action_reward: bool | None = None
    """A recurrent ready policy also takes the previous action and reward (default: on for
    r2d2, as in R2D1; off otherwise)."""
    total_steps: int = 100_000
    """Stop after this many environment steps."""
    total_episodes: int | None = None
    """Also stop after this many finished episodes."""
    total_iterations: int | None = None
    """Also stop after this many iterations."""
    target_return: float | None = None
    """Also stop once the online average return reaches this value."""
    seed: int = 0
    """Seeds torch, numpy, Python and the environments."""
    sampler: str = "serial"
    """serial (environments in this process), parallel (in worker processes),
    alternating (two halves of the environments take turns, so the policy acts for one
    while the workers step the other: pays when acting costs about as much as stepping) or async
    (a sampling process while training runs: into a queue for a2c and ppo, into a shared
    replay, kept to the replay ratio, for the replay-based algorithms)."""
    workers: int = 2
    """Worker processes of the parallel and alternating samplers."""
    nproc: int = 1
    """Processes of data-parallel training: each samples its own environments (and keeps
    its own replay) with the batch set here; gradients are averaged over the processes at
    every step; rank 0 logs, evaluates and saves. Steps count every process's."""
    force: bool = False
    """Start --nproc processes even beyond the machine's cores (CPU) or devices (CUDA)."""
    device: str = "cpu"
    """Torch device of the policy (cpu, cuda, cuda:1...)."""
    torch_threads: int = 1
    """torch.set_num_threads; 1 is fastest for small networks on few cores."""
    window: int = 100
    """Finished episodes in the online return average."""
    eval_every: int = 0
    """Evaluate with deterministic actions every this many steps (0: never)."""
    eval_episodes: int = 10
    """Episodes per evaluation, on separate environments."""
    checkpoint_every: int = 50
    """Iterations between checkpoints (a final one is always written)."""
    checkpoint_replay: bool = True
    """Include the algorithm's replay buffer (if any) in checkpoints, for exact resume."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk (at least 2, so a corrupt one has a fallback)."""
    run_dir: str | None = None
    """Where the run writes; default runs/ALGO-ENV-sSEED-TIME."""
    variant: str | None = None
    """Name of the variant of a grid this run belongs to (set by rlx launch); only a label:
    rlx plot draws the runs of a variant as one curve."""
    tensorboard: bool = True
    """Write TensorBoard event files (needs the tensorboard extra)."""
    tbdir: str | None = None
    """TensorBoard directory (default: RUN_DIR/tb)."""
    wandb: bool = False
    """Log to Weights & Biases (needs the wandb package)."""
    wandb_project: str = "rlx"
    """Weights & Biases project."""
    progress: bool = True
    """Show a live progress bar."""
    plot: bool = True
    """Write RUN_DIR/curves.png at the end."""
    log_level: str = "INFO"
    """Level of RUN_DIR/log.txt (DEBUG shows each update's loss before and after)."""

    def validate(self) -> None:
        """Raise ValueError naming the first bad option."""
        positive = ("total_steps", "hidden", "torch_threads", "window", "eval_episodes",
                    "checkpoint_every", "workers", "nproc")  # fmt: skip
        for name in (*positive, "total_episodes", "total_iterations"):  # these two may be None
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"--{flag(name)} must be positive, got {value}.")
        if self.sampler not in ("serial", "parallel", "alternating", "async"):
            raise ValueError(
                f"--sampler must be serial, parallel, alternating or async, got {self.sampler!r}."
            )
        if self.eval_every < 0:
            raise ValueError(f"--eval-every must be 0 (off) or positive, got {self.eval_every}.")
        if self.keep_checkpoints < 2:
            raise ValueError("--keep-checkpoints must be at least 2 (one to fall back on).")
        import torch

        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise ValueError(
                f"--device {self.device!r} is not a torch device (cpu, cuda, cuda:1...)."
            ) from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                "--device cuda: CUDA is not available on this machine; use --device cpu."
            )
        if self.wandb and not (sys.modules.get("wandb") or importlib.util.find_spec("wandb")):
            raise ValueError("--wandb needs Weights & Biases: pip install 'rlx[wandb]'.")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(
                f"--log-level must be DEBUG, INFO, WARNING or ERROR, got {self.log_level}."
            )


# Run options a resumed run may change (how long it goes on, what it records, where); it
# keeps these, which shape what it learns, and its directory.
_FIXED_ON_RESUME = {"algo", "env", "policy", "hidden", "squash", "seed", "window", "run_dir",
                    "nproc"}  # fmt: skip
RESUMABLE = frozenset(f.name for f in dataclasses.fields(RunConfig)) - _FIXED_ON_RESUME
UNIONS = (typing.Union, types.UnionType)  # ``Union[int, None]`` and ``int | None``


def flag(name: str) -> str:
    return name.replace("_", "-")


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under each dataclass field, including inherited ones."""
    docs: dict[str, str] = {}
    for klass in filter(dataclasses.is_dataclass, reversed(cls.__mro__)):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:], strict=False):
            match node, nxt:  # ``name: type = default`` followed by a string
                case ast.AnnAssign(target=ast.Name(id=name)), ast.Expr(ast.Constant(str() as doc)):
                    docs[name] = " ".join(doc.split())
    return docs


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(type, optional) for annotations such as ``int``, ``float | None``."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in UNIONS else (annotation,)
    return next(a for a in args if a is not type(None)), type(None) in args


def schedulable(annotation: Any) -> bool:
    """Whether a field accepts a schedule (its annotation names ``Schedule``)."""
    if typing.get_origin(annotation) in UNIONS:
        return any(schedulable(a) for a in typing.get_args(annotation))
    return annotation in (Schedule, Callable) or typing.get_origin(annotation) is Callable


def _parse_scheduled(kind: type):
    """A number of ``kind`` or a schedule such as ``linear(1.0, 0.05, 10000)``."""

    def parse(text: str):
        try:
            result = schedules.parse(text)
        except ValueError as err:  # argparse shows an ArgumentTypeError's own message
            raise argparse.ArgumentTypeError(str(err)) from None
        if isinstance(result, (int, float)):
            return whole_number(text) if kind is int else kind(result)
        return result

    parse.__name__ = f"{kind.__name__} or schedule"
    return parse


def _or_none(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` that also reads ``none``, ``null`` or ``off`` as None."""

    def parse_optional(text: str) -> Any:
        return None if text.lower() in ("none", "null", "off") else parse(text)

    parse_optional.__name__ = parse.__name__  # argparse names it in errors
    return parse_optional


def whole_number(text: str) -> int:
    """An int from ``100000``, ``100_000`` or ``1e5``."""
    try:
        return int(text)
    except ValueError:
        value = float(text)  # raises ValueError for non-numbers, reported by argparse
        if not value.is_integer():
            raise ValueError(f"{text} is not a whole number") from None
        return int(value)


whole_number.__name__ = "int"


def _refusing_schedules(parse: Callable[[str], Any], reason: str) -> Callable[[str], Any]:
    """``parse`` for an option that cannot be a schedule: written as one, it says why."""

    def parse_fixed(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            with contextlib.suppress(ValueError):
                if isinstance(schedules.parse(text), Schedule):
                    raise argparse.ArgumentTypeError(
                        f"cannot be a schedule, got {text!r}: {reason}"
                    ) from None
            raise

    parse_fixed.__name__ = parse.__name__  # argparse names it in errors
    return parse_fixed


def add_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """A ``--flag`` per field of dataclass ``cls``; unset flags stay absent (SUPPRESS).
    A numeric option's help says whether it takes a schedule or, if it is fixed for the
    run (an algorithm option declared so), why not."""
    from rlx.algos.config import fixed_reason

    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    group = parser.add_argument_group(cls.__name__)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind, optional = _base_type(hints[field.name])
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = f"{docs.get(field.name, '')} (default: {default})"
        name = f"--{flag(field.name)}"
        scheduled = schedulable(hints[field.name])
        if kind is bool and not scheduled:
            action = argparse.BooleanOptionalAction
            group.add_argument(name, action=action, default=argparse.SUPPRESS, help=help_text)
            continue
        parse = whole_number if kind is int else kind
        reason = fixed_reason(cls, field.name)
        if scheduled:
            help_text += "; a number or a schedule, e.g. 'linear(1.0, 0.05, 10000)'"
            parse = _parse_scheduled(kind)
        elif reason:
            help_text += f"; fixed for the run, not a schedule: {reason}"
            parse = _refusing_schedules(parse, reason)
        group.add_argument(name, type=_or_none(parse) if optional else parse,
                           default=argparse.SUPPRESS, help=help_text,
                           metavar=kind.__name__.upper())  # fmt: skip


def from_arguments(cls: type, namespace: argparse.Namespace, **extra: Any) -> Any:
    """An instance of ``cls`` from the flags that were given (others keep defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in {**vars(namespace), **extra}.items() if k in names})


PYTHON_FUNCTION = "python function "


def to_dict(config: Any) -> dict[str, Any]:
    """The config as JSON-able values; schedules as the call that makes them
    (``"linear(1.0, 0.05, 10000)"``), other functions by name (not restorable)."""
    values = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, Schedule):
            value = repr(value)
        elif callable(value):
            value = PYTHON_FUNCTION + getattr(value, "__qualname__", type(value).__name__)
        values[field.name] = value
    return values


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """A run directory's ``config.json``: :func:`to_dict` of its ``run`` and ``algo``."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} an rlx run directory?")
    return json.loads(path.read_text())


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild ``cls`` from :func:`to_dict`'s values (schedules parsed back)."""
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} options {sorted(unknown)}.")
    hints = typing.get_type_hints(cls)
    values = dict(values)
    for name, value in values.items():
        if isinstance(value, str) and schedulable(hints[name]):
            if value.startswith(PYTHON_FUNCTION):
                raise ValueError(
                    f"option {name} was a Python function ({value[len(PYTHON_FUNCTION) :]}), "
                    "which config.json cannot hold; use an rlx.schedules schedule to make the "
                    "run resumable, or rebuild the configuration in Python."
                )
            values[name] = schedules.parse(value)
    return cls(**values)

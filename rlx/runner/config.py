"""Run options as a typed dataclass, and dataclasses as command-line flags.

The same dataclasses configure a run from Python and from the ``rlx`` command line:
every field becomes a flag (``num_envs`` → ``--num-envs``) whose help is the field's
docstring, so the CLI and the Python API cannot drift apart.
"""

from __future__ import annotations

import argparse
import ast
import collections.abc
import dataclasses
import inspect
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
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
    """serial (environments in this process), parallel (in worker processes) or async
    (a sampling process while training runs: into a queue for a2c and ppo, into a shared
    replay, kept to the replay ratio, for the replay-based algorithms)."""
    workers: int = 2
    """Worker processes of the parallel sampler."""
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
                    "checkpoint_every", "workers")  # fmt: skip
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"--{flag(name)} must be positive, got {getattr(self, name)}.")
        if self.sampler not in ("serial", "parallel", "async"):
            raise ValueError(f"--sampler must be serial, parallel or async, got {self.sampler!r}.")
        if self.eval_every < 0:
            raise ValueError(f"--eval-every must be 0 (off) or positive, got {self.eval_every}.")
        for name in ("total_episodes", "total_iterations"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"--{flag(name)} must be positive, got {value}.")
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
        if self.wandb:
            import importlib.util

            try:
                found = importlib.util.find_spec("wandb") is not None
            except ValueError:  # already imported without a spec
                found = True
            if not found:
                raise ValueError("--wandb needs Weights & Biases: pip install 'rlx[wandb]'.")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(
                f"--log-level must be DEBUG, INFO, WARNING or ERROR, got {self.log_level}."
            )


def flag(name: str) -> str:
    return name.replace("_", "-")


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under each dataclass field, including inherited ones."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(type, optional) for annotations such as ``int``, ``float | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], type(None) in typing.get_args(annotation)
    return annotation, False


def schedulable(annotation: Any) -> bool:
    """Whether a field accepts a schedule (its annotation names ``Schedule``)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(schedulable(a) for a in typing.get_args(annotation))
    return (
        annotation is Schedule
        or annotation is Callable
        or (
            typing.get_origin(annotation) is not None
            and typing.get_origin(annotation) in (Callable, collections.abc.Callable)
        )
    )


def _parse_scheduled(kind: type, optional: bool):
    """A number of ``kind`` or a schedule such as ``linear(1.0, 0.05, 10000)``."""

    def parse(text: str):
        if optional and text.lower() in ("none", "null", "off"):
            return None
        try:
            result = schedules.parse(text)
        except ValueError as err:  # argparse shows an ArgumentTypeError's own message
            raise argparse.ArgumentTypeError(str(err)) from None
        if isinstance(result, (int, float)):
            if kind is int and not float(result).is_integer():
                raise ValueError(f"{text} is not a whole number")
            return kind(result)
        return result

    parse.__name__ = f"{kind.__name__} or schedule"
    return parse


def _parse_optional(kind):
    def parse(text: str):
        if text.lower() in ("none", "null", "off"):
            return None
        return kind(text)

    parse.__name__ = kind.__name__
    return parse


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


def add_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """A ``--flag`` per field of dataclass ``cls``; unset flags stay absent (SUPPRESS)."""
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
        if schedulable(hints[field.name]):
            help_text += "; a number or a schedule, e.g. 'linear(1.0, 0.05, 10000)'"
            group.add_argument(name, type=_parse_scheduled(kind, optional),
                               default=argparse.SUPPRESS, help=help_text,
                               metavar=kind.__name__.upper())  # fmt: skip
        elif kind is bool:
            group.add_argument(name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)  # fmt: skip
        else:
            base = whole_number if kind is int else kind
            parse = _parse_optional(base) if optional else base
            group.add_argument(name, type=parse, default=argparse.SUPPRESS, help=help_text,
                               metavar=kind.__name__.upper())  # fmt: skip


def from_arguments(cls: type, namespace: argparse.Namespace, **extra: Any) -> Any:
    """An instance of ``cls`` from the flags that were given (others keep defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(namespace).items() if k in names}
    values.update({k: v for k, v in extra.items() if k in names})
    return cls(**values)


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


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild ``cls`` from :func:`to_dict`'s values (schedules parsed back)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
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

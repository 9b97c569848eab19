"""Experiment grids: what rlx launch runs, described and checked before anything starts.

A :class:`Grid` is an algorithm, an environment, ``rlx train`` options shared by all runs,
a list of :class:`Variant` s (named option sets) and seeds. Variants come from ``--grid``
values (:func:`grid_variants`), from a YAML, JSON or Python file (:func:`read_variants`),
or both (:func:`combine`). :func:`validate` parses each variant's options as ``rlx train``
would, so that a bad grid is one ValueError before any run starts, not a row of failed
runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import runpy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
                    f"reading {path} needs PyYAML (pip install 'rlx[yaml]'); or write the variants "
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

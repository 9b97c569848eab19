"""Learning curves from run directories: mean and band over seeds, one line per group.

Runs whose ``config.json`` differ only in what does not shape learning (seed, length,
logging, device) form a group: one line, their mean with a band of one standard deviation
over the steps all of them reached, labelled by the options that differ. Runs that name a
``variant`` (those of ``rlx launch``) are grouped by it instead: the variant is the name the
researcher gave that group of settings.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from rlx.runner.config import RESUMABLE, read_config


def read_progress(run_dir: Path) -> dict[str, np.ndarray]:
    """Columns of ``progress.csv`` as float arrays (blank cells become NaN)."""
    path = Path(run_dir) / "progress.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} an rlx run directory?")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no rows yet.")
    return {
        k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows])
        for k in rows[0]
    }


# Options that do not change what is learned: runs differing only in these share a line.
_NOT_SETTINGS = (RESUMABLE - {"sampler", "workers"}) | {"seed", "run_dir"}


def settings(run_dir: Path) -> dict[str, object]:
    """The options of a run that define its learning curve (all but seed, length, logging)."""
    try:
        config = read_config(run_dir)
    except FileNotFoundError:
        return {"run": Path(run_dir).name}
    run = {k: v for k, v in config["run"].items() if k not in _NOT_SETTINGS}
    return {**run, **{f"algo.{k}": v for k, v in config["algo"].items()}}


def variant(run_dir: Path) -> str | None:
    """The variant a run's ``config.json`` names, if any."""
    try:
        return read_config(run_dir)["run"].get("variant")
    except FileNotFoundError:
        return None


def group_labels(run_dirs: list[Path]) -> list[str]:
    """A label per run: runs with equal settings share one. Among runs of the same
    algorithm and environment, labels name the options that differ. Runs of a variant
    are labelled by its name (after the algorithm and environment when the runs span
    several)."""
    variants = [variant(d) for d in run_dirs]
    if any(v is not None for v in variants):
        bases = {(s.get("algo"), s.get("env")) for s in map(settings, run_dirs)}
        labels = group_labels([d for d, v in zip(run_dirs, variants, strict=True) if v is None])
        named = []
        for run_dir, name in zip(run_dirs, variants, strict=True):
            if name is None:
                named.append(labels.pop(0))
            elif len(bases) > 1:
                s = settings(run_dir)
                named.append(f"{s['algo']} {s['env']} {name}")
            else:
                named.append(name)
        return named
    all_settings = [settings(d) for d in run_dirs]
    base = [f"{s['algo']} {s['env']}" if "algo" in s else str(s["run"]) for s in all_settings]
    labels = []
    for s, name in zip(all_settings, base, strict=True):
        peers = [p for p, b in zip(all_settings, base, strict=True) if b == name]
        keys = sorted({k for p in peers for k in p} - {"algo", "env"})
        varying = [k for k in keys if len({repr(p.get(k)) for p in peers}) > 1]
        extra = ", ".join(f"{k.removeprefix('algo.')}={s.get(k)}" for k in varying)
        labels.append(f"{name} ({extra})" if extra else name)
    return labels


def curves(
    run_dirs: list[Path], x: str = "CumSteps", y: str = "ReturnAverage", points: int = 200
) -> dict[str, dict[str, np.ndarray]]:
    """Per group: the common x grid, the mean and std over runs, and the number of runs."""
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for run_dir, label in zip(run_dirs, group_labels(run_dirs), strict=True):
        data = read_progress(run_dir)
        for column in (x, y):
            if column not in data:
                raise ValueError(f"{run_dir}/progress.csv has no column {column!r}.")
        keep = ~np.isnan(data[y])
        if keep.any():
            groups.setdefault(label, []).append((data[x][keep], data[y][keep]))
    result = {}
    for label, runs in groups.items():
        end = min(xs[-1] for xs, _ in runs)
        start = max(xs[0] for xs, _ in runs)
        grid = np.linspace(start, end, points) if end > start else np.array([end])
        ys = np.stack([np.interp(grid, xs, vals) for xs, vals in runs])
        result[label] = {
            "x": grid,
            "mean": ys.mean(0),
            "std": ys.std(0),
            "runs": np.array(len(runs)),
        }
    return result


def plot_runs(
    run_dirs: list[str | Path], output: str | Path, x: str = "CumSteps", y: str = "ReturnAverage"
) -> dict[str, dict[str, np.ndarray]]:
    """Write a PNG of ``y`` against ``x``; returns the plotted data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves([Path(d) for d in run_dirs], x, y)
    if not data:
        raise ValueError(f"no run has any {y} values to plot yet.")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for label, c in data.items():
        n = int(c["runs"])
        (line,) = ax.plot(c["x"], c["mean"], label=f"{label} ({n} run{'s' * (n > 1)})")
        if n > 1:
            ax.fill_between(c["x"], c["mean"] - c["std"], c["mean"] + c["std"],
                            color=line.get_color(), alpha=0.2)  # fmt: skip
    ax.set_xlabel("environment steps" if x == "CumSteps" else x)
    ax.set_ylabel("average return" if y == "ReturnAverage" else y)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)
    return data

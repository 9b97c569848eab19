"""Checkpoints: written atomically, read without running any pickled code.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, saved with
``torch.save`` and loaded with ``torch.load(weights_only=True)``, which refuses anything that
would execute code. It is written to a temporary file, flushed to disk and renamed over its
final name, so a crash leaves the old file or the complete new one, and older checkpoints
are deleted only then. A truncated, corrupt or refused file is reported and the previous
checkpoint used.
"""

from __future__ import annotations

import logging
import os
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("rlx")

FORMAT = "rlx-checkpoint-1"
_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """No usable checkpoint."""


def checkpoint_files(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, newest (highest iteration) first."""
    found = [(int(m[1]), p) for p in folder.glob("checkpoint-*.pt") if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def path_of(folder: Path, iteration: int) -> Path:
    """The checkpoint file of ``iteration`` in ``folder``."""
    return folder / f"checkpoint-{iteration:08d}.pt"


def iteration_of(path: Path) -> int:
    """The iteration a checkpoint file was saved at."""
    return int(_NAME.match(path.name)[1])


def save(folder: Path, iteration: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` as ``checkpoint-ITERATION.pt`` atomically; keep the newest ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = path_of(folder, iteration)
    tmp = folder / f".{path.name}.tmp"
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in checkpoint_files(folder)[keep:]:
        old.unlink(missing_ok=True)
    return path


def read(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one checkpoint; CheckpointError saying why it cannot be used."""
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"checkpoint {path} is not a torch checkpoint file (truncated, or something else)."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - every failure means the same: not usable
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [""]
        text = next((line for line in lines if "Unsupported global" in line), lines[0])
        text = text if len(text) <= 160 else text[:157] + "..."
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            reason = f"refused: it holds more than weights and would run code when loaded ({text})"
        else:
            reason = f"unreadable, probably truncated or corrupt ({type(err).__name__}: {text})"
        raise CheckpointError(f"checkpoint {path} is {reason}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an rlx checkpoint ({FORMAT}).")
    return state


def load_latest(folder: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The newest usable checkpoint in ``folder``, falling back to older ones."""
    files = checkpoint_files(folder)
    if not files:
        raise CheckpointError(f"no checkpoint in {folder}: has the run written one yet?")
    for path in files:
        try:
            return {**read(path, map_location), "path": str(path)}
        except CheckpointError as err:
            log.warning("%s; falling back to the previous checkpoint.", err)
    raise CheckpointError(f"no usable checkpoint in {folder} ({len(files)} tried; see the log).")


def rng_state() -> dict[str, Any]:
    """torch, numpy and Python global RNG states as checkpoint-safe data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },  # fmt: skip
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))

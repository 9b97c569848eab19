"""Where a run's progress goes: progress.csv, TensorBoard, Weights & Biases, a live bar.

``progress.csv`` has one row per iteration: the rlpyt-style ``STANDARD_COLUMNS``, then the
algorithm's own scalars. A scalar that first appears in a later row (losses once learning
starts) becomes a new column, empty before. On resume the file is cut back to the rows
the checkpoint had seen, so it reads as if the run had never stopped.
"""

from __future__ import annotations

import csv
import logging
import math
import sys
from pathlib import Path
from typing import Any

from rlx.runner.config import RunConfig

log = logging.getLogger("rlx")

STANDARD_COLUMNS = (
    "Iteration", "CumSteps", "CumTime", "StepsPerSecond", "ReturnAverage", "ReturnStd",
    "ReturnMedian", "ReturnMin", "ReturnMax", "LengthAverage", "EvalReturnAverage",
)  # fmt: skip


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


class RunLogger:
    """Writes each iteration's row to every destination that ``run`` enables."""

    def __init__(
        self,
        run_dir: Path,
        run: RunConfig,
        config: dict[str, Any] | None = None,
        keep_rows: int | None = None,
        start_steps: int = 0,
        purge_step: int | None = None,
    ) -> None:
        self.path = run_dir / "progress.csv"
        self.columns: list[str] = []
        if keep_rows is not None and self.path.exists():
            self._truncate(keep_rows)
        self.writer = None
        if run.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info(
                    "TensorBoard is not installed (pip install 'rlx[tensorboard]'): no event files."
                )
            else:
                self.writer = SummaryWriter(run.tbdir or str(run_dir / "tb"), purge_step=purge_step)
        self.wandb = None
        if run.wandb:
            try:
                import wandb
            except ImportError:
                raise RuntimeError(
                    "--wandb needs Weights & Biases: pip install wandb (and `wandb login`, or "
                    "WANDB_MODE=offline)."
                ) from None
            self.wandb = wandb.init(project=run.wandb_project, config=config, dir=str(run_dir),
                                    name=run_dir.name, resume="allow")  # fmt: skip
        self.bar = None
        if run.progress:
            from tqdm import tqdm

            # disable=None: a live bar on a terminal, none in logs redirected to a file.
            self.bar = tqdm(total=run.total_steps, initial=start_steps, unit="step",
                            file=sys.stderr, disable=None,
                            dynamic_ncols=True, smoothing=0.1, mininterval=0.5)  # fmt: skip

    def _truncate(self, keep_rows: int) -> None:
        with open(self.path, newline="") as f:
            lines = f.readlines()
        if not lines:
            return
        self.columns = next(csv.reader([lines[0]]))
        with open(self.path, "w", newline="") as f:
            f.writelines(lines[: 1 + keep_rows])

    def _widen(self, new: list[str]) -> None:
        """(Re)write the file with ``new`` columns added, empty in the rows already there."""
        old = []
        if self.columns:
            with open(self.path, newline="") as f:
                old = list(csv.reader(f))[1:]
        self.columns = [*self.columns, *new]
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self.columns)
            writer.writerows(r + [""] * len(new) for r in old)
        tmp.replace(self.path)

    def log(self, row: dict[str, Any]) -> None:
        new = [k for k in dict.fromkeys([*STANDARD_COLUMNS, *row]) if k not in self.columns]
        if new:
            self._widen(new)
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([_cell(row.get(c)) for c in self.columns])
        step = int(row["CumSteps"])
        scalars = {k: float(v) for k, v in row.items()
                   if isinstance(v, (int, float)) and not math.isnan(float(v))}  # fmt: skip
        if self.writer is not None:
            for key, value in scalars.items():
                if key not in ("Iteration", "CumSteps"):
                    self.writer.add_scalar(key, value, global_step=step)
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            post = {"steps/s": f"{row.get('StepsPerSecond', 0):.0f}"}
            if not math.isnan(row.get("ReturnAverage", math.nan)):
                post["return"] = f"{row['ReturnAverage']:.1f}"
            self.bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()
        if self.bar is not None:
            self.bar.close()


def setup_file_log(run_dir: Path, level: str) -> logging.Handler:
    """Send the ``rlx`` logger to RUN_DIR/log.txt at ``level``; warnings also to stderr."""
    log.setLevel(getattr(logging, level.upper()))
    handler = logging.FileHandler(run_dir / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    if not any(getattr(h, "_rlx_console", False) for h in log.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING)
        console._rlx_console = True  # type: ignore[attr-defined]
        log.addHandler(console)
    return handler

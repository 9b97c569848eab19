"""rlx's fast paths, all in this package, and the switch that turns them off.

Everything outside ``rlx.fast`` is plain PyTorch. Where a plain call costs much more
than its arithmetic at reinforcement learning's small sizes (a 2x64 network acting on a
batch of 8, an optimiser step of a few thousand weights), the core asks this package
for a faster way to do the same thing and gets ``None`` back when fast paths are off or
do not apply; it then does the plain thing. The fast ways here:

- :mod:`rlx.fast.optim`: Adam's fused kernel called directly, with gradient clipping
  folded into it (instead of ``torch.optim.Adam.step`` and ``clip_grad_norm_``).

Switch them off to debug, to compare, or to rule them out: ``rlx.fast_paths(False)``
(process-wide until switched back), ``with rlx.fast_paths(False): ...`` (inside the
block only), or the environment variable ``RLX_FAST=0``. The plain path is the
reference: tests run both and compare their results, and CI runs the core and algorithm
tests a second time with ``RLX_FAST=0``. ``benchmarks/speed_pg.py`` prints the speed of
both.
"""

from __future__ import annotations

import os
from typing import Any

_enabled = os.environ.get("RLX_FAST", "1").strip().lower() not in ("0", "false", "off", "no")


def enabled() -> bool:
    """Whether rlx takes its fast paths (default: yes, unless ``RLX_FAST=0``)."""
    return _enabled


class fast_paths:  # noqa: N801 - used like a function
    """Turn the fast paths on or off: at once and process-wide when called, and back to
    the previous setting when used as ``with rlx.fast_paths(False): ...``."""

    def __init__(self, on: bool = True) -> None:
        global _enabled
        self.previous = _enabled
        _enabled = bool(on)

    def __enter__(self) -> fast_paths:
        return self

    def __exit__(self, *exc: Any) -> None:
        global _enabled
        _enabled = self.previous

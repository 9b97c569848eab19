"""rlx's fast paths, all in this package, and the switch that turns them off.

Everything outside ``rlx.fast`` is plain PyTorch. Where a plain call costs much more
than its arithmetic at RL's small sizes (a 2x64 network acting on a batch of 8), the
core asks this package for a faster way to do the same thing, and does the plain thing
where that returns ``None`` or :func:`enabled` is false. The fast ways here:

- :mod:`rlx.fast.optim`: Adam's fused kernel called directly, with gradient clipping
  folded into it (instead of ``torch.optim.Adam.step`` and ``clip_grad_norm_``).
- :mod:`rlx.fast.distributions`: Categorical built with one ``log_softmax``, exact
  cheaper samplers for Categorical and Normal, log-probs as a gather, per-step
  distributions stacked into one, checked TanhNormal bounds remembered, argument
  validation off while acting.
- :mod:`rlx.fast.mlp`: the ready MLPs without a module call per layer, large ones as
  one autograd node with a written-out backward.
- :mod:`rlx.fast.acting`: the ready MLP policy acting in numpy while sampling dry.
- :mod:`rlx.fast.scan`: the reverse scan of returns on numpy views.
- :mod:`rlx.fast.losses`: PPO's clipped surrogate with a one-multiply-add backward.
- :mod:`rlx.fast.params`: parameter lists remembered until a module's structure changes.
- :mod:`rlx.fast.shared_mean`: a data-parallel run's gradient mean through shared memory
  when its processes share one (x86-64) machine, instead of gloo's ``all_reduce``.

Switch them off to debug, to compare, or to rule them out: ``rlx.fast_paths(False)``
(process-wide until switched back), ``with rlx.fast_paths(False): ...`` (inside the
block only), or the environment variable ``RLX_FAST=0``. The plain path is the
reference: ``tests/fast`` compares each fast way with it, and CI runs the core, policy
and algorithm tests a second time with ``RLX_FAST=0``. ``benchmarks/speed_pg.py``
prints the speed of both.
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

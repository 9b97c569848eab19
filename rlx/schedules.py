"""Hyper-parameters as functions of the step.

RL is tuned by hand, and many hyper-parameters are best changed as training goes:
exploration falls, the learning rate shrinks, prioritized replay's beta rises to 1. Every
numeric algorithm option accepts a constant or a *schedule*: any callable ``f(step)`` of
the environment steps sampled so far (``agent.total_steps``). This module offers the usual
shapes; a plain function or lambda works too::

    from rlx import schedules
    DQNConfig(epsilon=schedules.linear(1.0, 0.05, 10_000),
              lr=schedules.cosine(1e-3, 1e-5, 100_000),
              batch_size=lambda step: 32 if step < 5_000 else 128)

On the command line and in a run's ``config.json`` a schedule is written as the call that
makes it, which is also its ``repr``: ``--epsilon "linear(1.0, 0.05, 10000)"``.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, Union

Value = Union[float, int, Callable[[int], float]]  # noqa: UP007 - used at runtime


class Schedule:
    """A value that depends on the step; call it with the step. Subclasses implement
    ``__call__`` and keep their arguments so that ``repr`` rebuilds them; the class name
    is the schedule's written name."""

    def __init_subclass__(cls) -> None:
        cls.name = cls.__dict__.get("name", cls.__name__)

    def __init__(self, *args: Any) -> None:
        self.args = args

    def __call__(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(repr(a) for a in self.args)})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.args == self.args  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.args))

    def values(self) -> list[float]:
        """The values the schedule passes through at its defining points (for checks):
        ``start`` and ``end`` where it has them, else its value at step 0."""
        return [self.start, self.end] if hasattr(self, "end") else [self(0)]


class constant(Schedule):  # noqa: N801 - reads as a function
    """The same ``value`` at every step."""

    def __init__(self, value: float) -> None:
        super().__init__(value)
        self.value = value

    def __call__(self, step: int) -> float:
        return self.value


class linear(Schedule):  # noqa: N801
    """From ``start`` to ``end`` over ``steps`` steps (beginning at step ``begin``), then
    ``end``: the usual ε-greedy or learning-rate decay."""

    def __init__(self, start: float, end: float, steps: int, begin: int = 0) -> None:
        if steps <= 0:
            raise ValueError(f"linear schedule needs steps > 0, got {steps}.")
        super().__init__(*((start, end, steps) if begin == 0 else (start, end, steps, begin)))
        self.start, self.end, self.steps, self.begin = start, end, steps, begin

    def __call__(self, step: int) -> float:
        fraction = min(max((step - self.begin) / self.steps, 0.0), 1.0)
        return (1.0 - fraction) * self.start + fraction * self.end  # exact at both ends


class exponential(Schedule):  # noqa: N801
    """From ``start`` towards ``end``, halving the distance every ``half_life`` steps."""

    def __init__(self, start: float, end: float, half_life: float) -> None:
        if half_life <= 0:
            raise ValueError(f"exponential schedule needs half_life > 0, got {half_life}.")
        super().__init__(start, end, half_life)
        self.start, self.end, self.half_life = start, end, half_life

    def __call__(self, step: int) -> float:
        return self.end + (self.start - self.end) * 0.5 ** (max(step, 0) / self.half_life)


class cosine(Schedule):  # noqa: N801
    """From ``start`` to ``end`` along half a cosine over ``steps`` steps, then ``end``."""

    def __init__(self, start: float, end: float, steps: int) -> None:
        if steps <= 0:
            raise ValueError(f"cosine schedule needs steps > 0, got {steps}.")
        super().__init__(start, end, steps)
        self.start, self.end, self.steps = start, end, steps

    def __call__(self, step: int) -> float:
        fraction = min(max(step / self.steps, 0.0), 1.0)
        return self.end + 0.5 * (self.start - self.end) * (1 + math.cos(math.pi * fraction))


class piecewise(Schedule):  # noqa: N801
    """Through the ``(step, value)`` points, in step order: linear between neighbours
    (or holding each value until the next point with ``interpolate=False``), the first
    value before them and the last after them."""

    def __init__(self, points: Sequence[Sequence[float]], interpolate: bool = True) -> None:
        pts = [(float(s), float(v)) for s, v in points]
        if not pts:
            raise ValueError("piecewise schedule needs at least one (step, value) point.")
        if any(b[0] <= a[0] for a, b in zip(pts, pts[1:], strict=False)):
            raise ValueError(f"piecewise points must have increasing steps, got {list(points)}.")
        super().__init__(list(map(tuple, points)), *(() if interpolate else (False,)))
        self.points, self.interpolate = pts, interpolate

    def __call__(self, step: int) -> float:
        pts = self.points
        if step <= pts[0][0]:
            return pts[0][1]
        for (s0, v0), (s1, v1) in zip(pts, pts[1:], strict=False):
            if step < s1:
                return v0 + (step - s0) / (s1 - s0) * (v1 - v0) if self.interpolate else v0
        return pts[-1][1]

    def values(self) -> list[float]:
        return [v for _, v in self.points]


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (constant, linear, exponential, cosine, piecewise)
}


def value(x: Value, step: int) -> float:
    """``x(step)`` for a schedule, ``x`` for a constant."""
    return x(step) if callable(x) else x


def parse(text: str) -> float | int | Schedule:
    """A number or a schedule from its written form: ``"3e-4"``, ``"linear(1.0, 0.05,
    10000)"``, ``"piecewise([(0, 1.0), (5000, 0.1)])"``. Only the schedules of this module
    with literal arguments are accepted (nothing is evaluated)."""
    text = text.strip()
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise ValueError(f"cannot read {text!r} as a number or a schedule.") from None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name not in SCHEDULES:
            raise ValueError(
                f"unknown schedule {name!r} in {text!r}; choose one of {', '.join(SCHEDULES)}."
            )
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        except ValueError:
            raise ValueError(
                f"schedule arguments must be literal numbers or lists, got {text!r}."
            ) from None
        cls = SCHEDULES[name]
        try:
            return cls(*args, **kwargs)
        except TypeError:
            params = list(inspect.signature(cls.__init__).parameters.values())[1:]
            shown = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}"
                              for p in params)  # fmt: skip
            raise ValueError(f"{text!r}: write it as {name}({shown}).") from None
    with contextlib.suppress(ValueError):
        number = ast.literal_eval(node)
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            return number
    raise ValueError(
        f"cannot read {text!r} as a number or a schedule such as 'linear(1.0, 0.05, 10000)'."
    )

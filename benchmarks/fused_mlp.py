"""The fused MLP (rlx.fast.mlp) against plain eager PyTorch and torch.compile.

SAC's critic step at its default size (two 256-unit ReLU critics, batch 256, one
thread): forward both critics, the squared error to a target, backward and an Adam step,
in milliseconds per step over interleaved rounds, for plain eager PyTorch (fast paths
off), rlx's fast paths (fused MLP and direct Adam) and ``torch.compile`` of the plain
loss (inductor on the CPU; its compile time is printed too). The fused MLP is kept while
it is at least as fast as the compiled step over a run's length (compile time included).

Run: ``python -m benchmarks.fused_mlp [--rounds 3] [--steps 300]``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

import rlx
from rlx.core.optim import adam
from rlx.core.optim import step as optimizer_step
from rlx.policies import mlp

OBS, ACT, BATCH = 17, 6, 256  # HalfCheetah's sizes


def critics() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [mlp(OBS + ACT, (256, 256), 1, activation="relu") for _ in range(2)]


def make_step(compiled: bool = False):
    nets = critics()
    optimizer = adam([p for n in nets for p in n.parameters()], lr=3e-4)

    def loss_of(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        q = torch.stack([n(x) for n in nets]).squeeze(-1)
        return (q - target).pow(2).mean()

    loss_fn = torch.compile(loss_of) if compiled else loss_of

    def step(x: torch.Tensor, target: torch.Tensor) -> None:
        loss = loss_fn(x, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer_step(optimizer, norm=False)

    return step


def interleaved(steps: dict, fast: set[str], rounds: int, n: int, warmup: int = 20,
                unit: float = 1e3) -> dict[str, list[float]]:  # fmt: skip
    """Time ``n`` calls of each step (without arguments) in ``rounds`` interleaved rounds,
    the steps named in ``fast`` with the fast paths on, the others off; per round, the
    time per call in ``unit`` (1e3: ms)."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            with rlx.fast_paths(name in fast):
                for _ in range(warmup):
                    step()
                start = time.perf_counter()
                for _ in range(n):
                    step()
                times[name].append((time.perf_counter() - start) / n * unit)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, target = torch.randn(BATCH, OBS + ACT), torch.randn(BATCH)
    with rlx.fast_paths(False):
        steps = {"plain eager": make_step(), "torch.compile": make_step(compiled=True)}
        start = time.perf_counter()
        steps["torch.compile"](x, target)
        compile_s = time.perf_counter() - start
    with rlx.fast_paths(True):
        steps["rlx fast paths"] = make_step()
    calls = {name: functools.partial(step, x, target) for name, step in steps.items()}
    times = interleaved(calls, {"rlx fast paths"}, args.rounds, args.steps)
    print(f"critic step, 2 x 256-unit ReLU critics, batch {BATCH}, torch {torch.__version__}, "
          f"1 thread; torch.compile took {compile_s:.1f} s")  # fmt: skip
    print(f"{'variant':16} {'ms per step (rounds)':>28} {'median':>7}")
    for name, values in times.items():
        rounds = " ".join(f"{v:.2f}" for v in values)
        print(f"{name:16} {rounds:>28} {statistics.median(values):>7.2f}")
    fused, compiled = (
        statistics.median(times["rlx fast paths"]),
        statistics.median(times["torch.compile"]),
    )
    breakeven = compile_s / max(fused - compiled, 1e-9) * 1e3 if compiled < fused else None
    print(
        "torch.compile pays for its compile time after "
        + (f"{breakeven:,.0f} steps" if breakeven else "no number of steps (it is not faster)")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Learning curves of the policy-gradient algorithms against the targets of their issue.

Each case trains one algorithm with the ready policies on fixed seeds, through the public
API only (``rlx.Agent``, ``rlx.policies.make_policy``, the algorithm class and its
``iteration()``), for a budget of environment steps. Printed per case: the median over
seeds of the final return (mean return of the last 10 finished episodes when the budget
is spent), each seed's first environment step at which that 10-episode mean reached the
target, the median wall time, and pass/fail (the median final return against the target).

Cases run in parallel worker processes (one per core), each with torch on one thread.

Run: ``python benchmarks/learning_pg.py [--only ppo-cartpole,a2c-cartpole] [--seeds 0 1 2]
[--set lr=1e-3 --set epochs=4]``. Exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import ast
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import torch

import rlx
from rlx.algos import ALGORITHMS
from rlx.policies import make_policy

WINDOW = 10  # finished episodes in the "return" of a run


@dataclass(frozen=True)
class Case:
    name: str
    algo: str
    env: str
    budget: int
    """Environment steps."""
    target: float | None
    """None: printed beside another case, not a target."""
    policy: str = "mlp"
    options: dict[str, Any] = field(default_factory=dict)
    """Algorithm config fields."""
    policy_options: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("ppo-cartpole", "ppo", "CartPole-v1", 100_000, 475.0, options=dict(anneal_lr=True)),
    Case(
        "a2c-cartpole",
        "a2c",
        "CartPole-v1",
        300_000,
        475.0,
        options=dict(
            num_envs=16, steps=8, lr=1e-3, lam=0.95, anneal_lr=True, normalize_advantages=True
        ),  # fmt: skip
    ),
    Case(
        "reinforce-baseline-cartpole",
        "ac",
        "CartPole-v1",
        500_000,
        475.0,
        options=dict(num_envs=16, lr=1e-2, anneal_lr=True, standardize_return=True),
    ),
    Case(
        "reinforce-cartpole",
        "rf",
        "CartPole-v1",
        500_000,
        None,
        options=dict(num_envs=16, lr=1e-2, anneal_lr=True, standardize_return=True),
    ),
    Case(
        "offpac-cartpole",
        "offpac",
        "CartPole-v1",
        500_000,
        450.0,
        options=dict(num_envs=8, lr=1e-3, anneal_lr=True, batch_episodes=8, updates=4),
    ),
    Case(
        "ppo-gru-incomplete-cartpole",
        "ppo",
        "IncompleteCartPole-v1",
        300_000,
        450.0,
        policy="gru",
        options=dict(num_envs=16, steps=128, epochs=10, minibatches=8, lr=3e-4, anneal_lr=True),
    ),
    Case(
        "ppo-mlp-incomplete-cartpole",
        "ppo",
        "IncompleteCartPole-v1",
        300_000,
        None,
        options=dict(num_envs=16, steps=128, epochs=10, minibatches=8, lr=3e-4, anneal_lr=True),
    ),
    Case(
        "ppo-pendulum",
        "ppo",
        "Pendulum-v1",
        300_000,
        -250.0,
        options=dict(
            num_envs=8,
            steps=256,
            gamma=0.9,
            lam=0.95,
            lr=1e-3,
            epochs=10,
            minibatches=8,
            anneal_lr=True,
        ),  # fmt: skip
    ),
]


def train(case: Case, seed: int) -> dict[str, Any]:
    """Train one case on one seed; the curve and the figures of the table."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cls = ALGORITHMS[case.algo]
    config = cls.Config(**case.options)
    agent = rlx.Agent(case.env, num_envs=config.num_envs, seed=seed)
    policy = make_policy(
        agent.observation_space, agent.action_space, case.policy, **case.policy_options
    )
    algo = cls(agent, policy, config)
    algo.seed(seed)
    recent: deque[float] = deque(maxlen=WINDOW)
    reached = None
    curve = []
    start = time.perf_counter()
    while agent.total_steps < case.budget:
        algo.progress = agent.total_steps / case.budget
        algo.iteration()
        for episode_return, _ in agent.pop_episodes():
            recent.append(episode_return)
        if len(recent) == WINDOW:
            mean = sum(recent) / WINDOW
            curve.append((agent.total_steps, mean))
            if reached is None and case.target is not None and mean >= case.target:
                reached = agent.total_steps
    agent.close()
    final = sum(recent) / len(recent) if recent else float("nan")
    return {
        "case": case.name,
        "seed": seed,
        "final": final,
        "reached": reached,
        "steps": agent.total_steps,
        "seconds": time.perf_counter() - start,
        "curve": curve[:: max(1, len(curve) // 20)],
    }


def _run(args: tuple[Case, int]) -> dict[str, Any]:
    return train(*args)


def parse_sets(items: list[str]) -> dict[str, Any]:
    options = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="override: key=value")
    parser.add_argument("--budget", type=int, default=None, help="override every budget")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--curves", action="store_true", help="print each run's curve")
    args = parser.parse_args()
    cases = CASES
    if args.only:
        names = args.only.split(",")
        unknown = set(names) - {c.name for c in CASES}
        if unknown:
            parser.error(f"unknown cases {sorted(unknown)}; choose from {[c.name for c in CASES]}")
        cases = [c for c in CASES if c.name in names]
    extra = parse_sets(args.set)
    if extra or args.budget:
        cases = [
            replace(c, options={**c.options, **extra}, budget=args.budget or c.budget)
            for c in cases
        ]
    jobs = [(c, s) for c in cases for s in args.seeds]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(min(args.workers, len(jobs))) as pool:
        results = pool.map(_run, jobs, chunksize=1)
    total = time.perf_counter() - start

    header = f"{'case':30} {'env':22} {'budget':>8} {'target':>7} {'final (median)':>15}"
    header += f" {'per seed':>24} {'target reached at step':>30} {'wall s':>7}  result"
    print(header)
    print("-" * len(header))
    passed = failed = 0
    for case in cases:
        rows = [r for r in results if r["case"] == case.name]
        finals = [r["final"] for r in rows]
        median = statistics.median(finals)
        reached = ", ".join("-" if r["reached"] is None else f"{r['reached']:,}" for r in rows)
        wall = statistics.median(r["seconds"] for r in rows)
        if case.target is None:
            verdict, target = "(reference)", "-"
        elif median >= case.target:
            verdict, target = "pass", f"{case.target:g}"
            passed += 1
        else:
            verdict, target = "FAIL", f"{case.target:g}"
            failed += 1
        seeds = " ".join(f"{f:.0f}" for f in finals)
        print(
            f"{case.name:30} {case.env:22} {case.budget:>8,} {target:>7} {median:>15.1f}"
            f" {seeds:>24} {reached:>30} {wall:>7.0f}  {verdict}"
        )
        if args.curves:
            for r in rows:
                points = " ".join(f"{s // 1000}k:{m:.0f}" for s, m in r["curve"])
                print(f"    seed {r['seed']}: {points}")
    shown = [(c.name, c.options) for c in cases] if extra else "as listed in CASES"
    print(f"seeds {args.seeds}; options {shown}")
    print(f"total wall time {total:.0f} s with {min(args.workers, len(jobs))} workers")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

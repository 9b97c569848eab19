"""The harness of the learning benchmarks: train cases on fixed seeds, print a table.

A *case* trains one algorithm with its ready policy, through the public API only
(``rlx.Agent``, the algorithm class, ``default_policy`` and ``iteration()``), for a
budget of environment steps. Its *final return* is the mean of the last 10 finished
training episodes when the budget is spent or, for cases with ``evaluate=True`` (the
value-based and deterministic-policy algorithms, whose training episodes explore), the
mean of 10 episodes of the greedy/deterministic policy on separate environments. Such
cases are also evaluated every ``eval_every`` steps, and "reached at" is the first
evaluation at or above the target; otherwise it is the first step at which the last 10
training episodes averaged the target.

Per case the table shows the median final return over seeds, each seed's final
return and step of reaching the target, the median wall time and pass/fail (median
final return against the target). Cases run in worker processes (one per core), each
with torch on one thread. The learning scripts (``learning_pg.py``, ``learning_dqn.py``,
``learning_qpg.py``) define their cases and call :func:`main`.
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

import rlx
from rlx.algos.registry import algorithm_class
from rlx.runner.slots import cpu_slots, map_on_slots

WINDOW = 10  # finished episodes in the "return" of a run
EVAL_EPISODES = 10


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
    """``default_policy`` arguments (hidden, squash...)."""
    evaluate: bool = False
    """Judge by deterministic evaluation episodes instead of the training episodes."""
    eval_every: int = 5_000


def evaluate(case: Case, policy: torch.nn.Module, seed: int) -> float:
    """Mean return of deterministic episodes on fresh environments."""
    agent = rlx.Agent(case.env, num_envs=EVAL_EPISODES, seed=seed)
    horizon = agent.env.spec.max_episode_steps if agent.env.spec else None
    with torch.no_grad():
        rollout = agent(policy).episode(horizon or 1000, deterministic=True)
    agent.close()
    return rollout.rewards.double().sum(0).mean().item()


def train(case: Case, seed: int) -> dict[str, Any]:
    """Train one case on one seed; the curve and the figures of the table."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cls = algorithm_class(case.algo)
    config = cls.Config(**case.options)
    agent = rlx.Agent(case.env, num_envs=config.num_envs, seed=seed)
    policy = cls.default_policy(
        agent.observation_space, agent.action_space, config, kind=case.policy,
        **case.policy_options,
    )  # fmt: skip
    algo = cls(agent, policy, config)
    algo.seed(seed)
    recent: deque[float] = deque(maxlen=WINDOW)
    reached = None
    curve = []
    next_eval = case.eval_every
    start = time.perf_counter()
    while agent.total_steps < case.budget:
        algo.progress = agent.total_steps / case.budget
        algo.iteration()
        for episode_return, _ in agent.pop_episodes():
            recent.append(episode_return)
        if case.evaluate:
            if agent.total_steps >= next_eval:
                score = evaluate(case, policy, seed + 1000)
                curve.append((agent.total_steps, score))
                if reached is None and case.target is not None and score >= case.target:
                    reached = agent.total_steps
                while next_eval <= agent.total_steps:
                    next_eval += case.eval_every
        elif len(recent) == WINDOW:
            mean = sum(recent) / WINDOW
            curve.append((agent.total_steps, mean))
            if reached is None and case.target is not None and mean >= case.target:
                reached = agent.total_steps
    online = sum(recent) / len(recent) if recent else float("nan")
    final = evaluate(case, policy, seed + 1000) if case.evaluate else online
    seconds = time.perf_counter() - start
    agent.close()
    if hasattr(algo, "close"):
        algo.close()
    return {
        "case": case.name,
        "seed": seed,
        "final": final,
        "online": online,
        "reached": reached,
        "steps": agent.total_steps,
        "seconds": seconds,
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


def select(parser: argparse.ArgumentParser, cases: Sequence[Any], only: str) -> list[Any]:
    """The cases named in ``--only`` (all when empty); an unknown name is a usage error."""
    if not only:
        return list(cases)
    names = only.split(",")
    unknown = set(names) - {c.name for c in cases}
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {[c.name for c in cases]}")
    return [c for c in cases if c.name in names]


def run_jobs(fn: Any, jobs: list[Any], workers: int) -> tuple[list[Any], float]:
    """``fn`` on every job, each in a spawned process, ``workers`` at a time on one core
    each (rlx launch's queue); the results in order and the wall time."""
    start = time.perf_counter()
    results = map_on_slots(fn, jobs, cpu_slots(max(1, min(workers, len(jobs)))))
    return results, time.perf_counter() - start


def main(cases: Sequence[Case], description: str) -> int:
    """The command line of a learning script: run its cases, print the table, return
    the exit status (1 when a target is missed)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="override: key=value")
    parser.add_argument("--budget", type=int, default=None, help="override every budget")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--curves", action="store_true", help="print each run's curve")
    args = parser.parse_args()
    cases = select(parser, cases, args.only)
    extra = parse_sets(args.set)
    if extra or args.budget:
        cases = [
            replace(c, options={**c.options, **extra}, budget=args.budget or c.budget)
            for c in cases
        ]
    results, total = run_jobs(_run, [(c, s) for c in cases for s in args.seeds], args.workers)

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
        if case.evaluate:
            online = " ".join(f"{r['online']:.0f}" for r in rows)
            print(f"    (deterministic evaluation; last {WINDOW} training episodes: {online})")
        if args.curves:
            for r in rows:
                points = " ".join(f"{s // 1000}k:{m:.0f}" for s, m in r["curve"])
                print(f"    seed {r['seed']}: {points}")
    shown = [(c.name, c.options) for c in cases] if extra else "as listed in CASES"
    print(f"seeds {args.seeds}; options {shown}")
    print(f"total wall time {total:.0f} s with {min(args.workers, len(results))} workers")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0

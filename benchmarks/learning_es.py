"""Learning benchmark of CMA-ES (``rlx.algos.es``) against the targets of its issue.

Each case searches the parameters of the ready CMA-ES policy (``CMAES.default_policy``)
on fixed seeds for a budget of generations. After every generation the policy the
algorithm holds is scored by 10 deterministic episodes on separate environments
(``learning.evaluate``); those episodes are not counted in the environment steps.

- ``cmaes-cartpole``: target: that score >= 475 within 100 generations. The run stops
  at the first generation that reaches it; the table shows that generation and the
  environment steps used until then.
- ``cmaes-pendulum``: the score after 100 generations, with the environment steps and
  wall time they took; no target.

Per case the table shows the median score over seeds, each seed's score, generation
and steps, and the median wall time; pass/fail compares the median with the target.

``--compare`` instead measures rlx's CMA-ES (``rlx.algos.es.strategy``) against the
``cma`` package (``pip install cma``), the reference implementation, on the same
problems: evaluations to solve Rosenbrock, time per ``ask`` + ``tell``, and
generations to solve CartPole-v1 with the same policy, fitness and population.

Run: ``python -m benchmarks.learning_es [--only cmaes-cartpole] [--seeds 0 1 2]
[--set sigma0=0.5] [--compare]``. Exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

import rlx
from benchmarks.learning import evaluate, parse_sets, run_jobs, select
from rlx.algos.es import CMA, CMAES, CMAESConfig


@dataclass(frozen=True)
class ESCase:
    name: str
    env: str
    generations: int
    target: float | None
    """Stop at the first generation whose policy scores this; None: run them all."""
    options: dict[str, Any] = field(default_factory=dict)
    """CMAESConfig fields."""
    policy_options: dict[str, Any] = field(default_factory=dict)
    """``default_policy`` arguments."""


CASES = [
    ESCase("cmaes-cartpole", "CartPole-v1", 100, 475.0, policy_options=dict(hidden=16)),
    ESCase("cmaes-pendulum", "Pendulum-v1", 100, None, policy_options=dict(hidden=16)),
]


def build(case: ESCase, seed: int, strategy: str = "rlx") -> tuple[rlx.Agent, CMAES]:
    torch.manual_seed(seed)
    config = CMAESConfig(**case.options)
    agent = rlx.Agent(case.env, num_envs=config.num_envs, seed=seed)
    policy = CMAES.default_policy(
        agent.observation_space, agent.action_space, config, **case.policy_options
    )
    algo = CMAES(agent, policy, config)
    algo.seed(seed)
    if strategy == "cma":
        algo.strategy = CmaPackage(
            algo.strategy.mean, config.sigma0, algo.strategy.population, seed
        )
    return agent, algo


def train(case: ESCase, seed: int, strategy: str = "rlx") -> dict[str, Any]:
    """Search one case on one seed; the figures of the table."""
    torch.set_num_threads(1)
    agent, algo = build(case, seed, strategy)
    reached = None
    seconds = 0.0
    for generation in range(1, case.generations + 1):
        start = time.perf_counter()
        algo.iteration()
        seconds += time.perf_counter() - start
        if case.target is not None or generation == case.generations:
            score = evaluate(case, algo.policy, seed + 1000)  # type: ignore[arg-type]
            if case.target is not None and score >= case.target:
                reached = generation
                break
    agent.close()
    return {
        "case": case.name,
        "seed": seed,
        "final": score,
        "reached": reached,
        "generations": generation,
        "steps": agent.total_steps,
        "seconds": seconds,
    }


def _run(args: tuple[ESCase, int]) -> dict[str, Any]:
    return train(*args)


def table(cases: list[ESCase], results: list[dict[str, Any]]) -> tuple[int, int]:
    header = (
        f"{'case':16} {'env':12} {'gens':>5} {'target':>7} {'score (median)':>15} "
        f"{'per seed':>18} {'reached at generation':>22} {'env steps':>26} {'wall s':>7}  result"
    )
    print(header)
    print("-" * len(header))
    passed = failed = 0
    for case in cases:
        rows = [r for r in results if r["case"] == case.name]
        median = statistics.median(r["final"] for r in rows)
        seeds = " ".join(f"{r['final']:.0f}" for r in rows)
        reached = ", ".join("-" if r["reached"] is None else str(r["reached"]) for r in rows)
        steps = ", ".join(f"{r['steps'] / 1000:.0f}k" for r in rows)
        wall = statistics.median(r["seconds"] for r in rows)
        if case.target is None:
            verdict, target = "(no target)", "-"
        elif median >= case.target and all(r["reached"] is not None for r in rows):
            verdict, target = "pass", f"{case.target:g}"
            passed += 1
        else:
            verdict, target = "FAIL", f"{case.target:g}"
            failed += 1
        print(
            f"{case.name:16} {case.env:12} {case.generations:>5} {target:>7} {median:>15.1f} "
            f"{seeds:>18} {reached:>22} {steps:>26} {wall:>7.0f}  {verdict}"
        )
    return passed, failed


# ------------------------------------------------------------ rlx CMA-ES against cma
class CmaPackage:
    """The ``cma`` package behind the interface of :class:`rlx.algos.es.CMA` (what
    ``CMAES`` calls), for the comparison only: its state cannot be checkpointed."""

    def __init__(self, mean: torch.Tensor, sigma: float, population: int, seed: int) -> None:
        import cma

        never = 10**9  # the runs here decide when to stop, not cma's termination criteria
        options = {"popsize": population, "seed": seed + 1, "verbose": -9, "tolfun": 0,
                   "tolx": 0, "tolfunhist": 0, "tolflatfitness": never,
                   "tolstagnation": never}  # fmt: skip
        self.es = cma.CMAEvolutionStrategy(mean.double().numpy(), sigma, options)
        self.population = population
        self._asked: list = []

    def ask(self) -> torch.Tensor:
        self._asked = self.es.ask()
        return torch.tensor(np.array(self._asked))

    def tell(self, candidates: torch.Tensor, scores: torch.Tensor) -> None:
        self.es.tell(self._asked, (-scores.double()).tolist())  # cma minimises

    @property
    def mean(self) -> torch.Tensor:
        return torch.as_tensor(self.es.mean, dtype=torch.float64)

    @property
    def sigma(self) -> float:
        return float(self.es.sigma)


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2).sum(-1)


def solve_rosenbrock(kind: str, n: int, seed: int, target: float = 1e-8) -> tuple[int, float]:
    """(evaluations until f < target from x = 0 with σ₀ = 0.5, 0 if not within 100,000;
    seconds per ask + tell)."""
    start = torch.zeros(n, dtype=torch.float64)
    if kind == "rlx":
        strategy: Any = CMA(start, 0.5, generator=torch.Generator().manual_seed(seed))
    else:
        strategy = CmaPackage(start, 0.5, 4 + int(3 * np.log(n)), seed)
    evaluations, seconds, solved = 0, 0.0, False
    while evaluations < 100_000 and not solved:
        t = time.perf_counter()
        x = strategy.ask()
        f = rosenbrock(x)
        strategy.tell(x, -f)
        seconds += time.perf_counter() - t
        evaluations += len(f)
        solved = float(f.min()) < target
    return evaluations if solved else 0, seconds / (evaluations / len(f))


def seconds_per_generation(kind: str, n: int, generations: int = 20) -> float:
    """Time of ask + tell in n dimensions with the default population (scores random)."""
    start = torch.zeros(n, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    if kind == "rlx":
        strategy: Any = CMA(start, 0.5, generator=torch.Generator().manual_seed(0))
    else:
        strategy = CmaPackage(start, 0.5, 4 + int(3 * np.log(n)), 0)
    times = []
    for _ in range(generations):
        t = time.perf_counter()
        x = strategy.ask()
        strategy.tell(x, torch.rand(len(x), generator=gen, dtype=torch.float64))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _cartpole(args: tuple[str, int]) -> dict[str, Any]:
    kind, seed = args
    return train(CASES[0], seed, kind)


def compare(seeds: list[int], workers: int) -> None:
    torch.set_num_threads(1)
    print("Rosenbrock, n = 10, from x = 0 with sigma0 = 0.5, until f < 1e-8 (seeds 0-9):")
    for kind in ("rlx", "cma"):
        runs = [solve_rosenbrock(kind, 10, seed) for seed in range(10)]
        evaluations = sorted(e for e, _ in runs if e)
        per_gen = statistics.median(s for _, s in runs)
        unsolved = " (the others stay in the local minimum)" if len(evaluations) < 10 else ""
        print(f"  {kind:4} solved {len(evaluations)}/10{unsolved}; "
              f"evaluations median {statistics.median(evaluations):,.0f} "
              f"(min {evaluations[0]:,}, max {evaluations[-1]:,}); "
              f"ask + f + tell {per_gen * 1e6:,.0f} us per generation")  # fmt: skip
    print("ask + tell per generation (default population, median of 20):")
    for n in (114, 450, 2000):
        rlx_s, cma_s = seconds_per_generation("rlx", n), seconds_per_generation("cma", n)
        print(f"  n = {n:5}: rlx {rlx_s * 1e3:8.2f} ms   cma {cma_s * 1e3:8.2f} ms")
    print("CartPole-v1, the cmaes-cartpole case with each strategy (same policy, fitness, λ):")
    jobs = [(kind, seed) for kind in ("rlx", "cma") for seed in seeds]
    results, _ = run_jobs(_cartpole, jobs, workers)
    for kind in ("rlx", "cma"):
        rows = results[: len(seeds)] if kind == "rlx" else results[len(seeds) :]
        reached = ", ".join("-" if r["reached"] is None else str(r["reached"]) for r in rows)
        steps = ", ".join(f"{r['steps'] / 1000:.0f}k" for r in rows)
        wall = ", ".join(f"{r['seconds']:.0f}" for r in rows)
        done = [r for r in rows if r["reached"] is not None]
        medians = (
            f"median {statistics.median(r['reached'] for r in done):g} generations, "
            f"{statistics.median(r['steps'] for r in done) / 1000:.0f}k steps"
            if done
            else "never"
        )
        print(f"  {kind:4} reached 475 in {len(done)}/{len(rows)} seeds, {medians}")
        print(f"       at generation {reached}; env steps {steps}; wall s {wall}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="CMAESConfig key=value")
    parser.add_argument("--generations", type=int, default=None, help="override every budget")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--compare", action="store_true", help="rlx's CMA-ES against cma's")
    args = parser.parse_args()
    if args.compare:
        compare(args.seeds, args.workers)
        return 0
    cases = select(parser, CASES, args.only)
    extra = parse_sets(args.set)
    if extra or args.generations:
        cases = [
            replace(
                c, options={**c.options, **extra}, generations=args.generations or c.generations
            )
            for c in cases
        ]
    results, total = run_jobs(_run, [(c, s) for c in cases for s in args.seeds], args.workers)
    passed, failed = table(cases, results)
    shown = [(c.name, c.options, c.policy_options) for c in cases]
    print(f"seeds {args.seeds}; options {shown}; CMAESConfig defaults otherwise")
    print("score: mean return of 10 deterministic episodes of the policy the algorithm holds;")
    print("env steps: those of the search, until the target or the last generation")
    print(f"total wall time {total:.0f} s with {min(args.workers, len(results))} workers")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

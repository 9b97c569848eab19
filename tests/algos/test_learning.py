"""Each algorithm learns, on any processor.

A learning run is chaotic: one changed rounding in its first update (another processor's
kernel path; ``ATEN_CPU_CAPABILITY`` picks one) sends it down another path, so a test
that passes on one machine's seed 0 can fail on the next machine. Each test here is
therefore either

- a *majority* test: three seeds of a cheap case, and at least two must clear a loose
  target (the median), so one unlucky run cannot fail it; or
- a *margin* test: one seed against a target that every seed and kernel path tried
  clears by a wide margin (measured under ``ATEN_CPU_CAPABILITY=default`` and ``avx2``).

The settings are those of ``benchmarks/learning_*.py`` (imported, so they cannot drift
apart); the benchmarks run three seeds against the issues' stricter targets.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

import pytest
from helpers import cpu_capability

from benchmarks import learning_dqn, learning_es, learning_pg, learning_qpg

SEEDS = (0, 1, 2)


def case(module, name: str, **changes):
    found = next(c for c in module.CASES if c.name == name)
    return replace(found, **changes) if changes else found


def finals(module, which, seeds=SEEDS) -> list[dict]:
    return [module.train(which, seed=seed) for seed in seeds]


def explain(results: list[dict]) -> str:
    figures = ", ".join(f"seed {r['seed']}: {r['final']:.1f}" for r in results)
    return f"{results[0]['case']} on {cpu_capability()}: {figures}"


MAJORITY = [
    (learning_pg, "ppo-cartpole", 400.0),
    (learning_pg, "a2c-cartpole", 400.0),
    (learning_pg, "reinforce-baseline-cartpole", 400.0),
    (learning_pg, "offpac-cartpole", 300.0),
    # Greedy DQN on CartPole still swings late in training on some seeds.
    (learning_dqn, "dqn-cartpole", 300.0),
]


@pytest.mark.slow
@pytest.mark.parametrize(("module", "name", "target"), MAJORITY, ids=[m[1] for m in MAJORITY])
def test_learns_on_most_seeds(module, name, target):
    results = finals(module, case(module, name))
    print(explain(results))
    assert statistics.median(r["final"] for r in results) >= target, explain(results)


MARGIN = [
    (learning_pg, "ppo-pendulum", -400.0, {}),
    (learning_qpg, "td3-pendulum", -400.0, {}),
    # SAC reaches -200 within 8k steps on every seed: half the benchmark's budget is plenty.
    (learning_qpg, "sac-pendulum", -400.0, dict(budget=10_000)),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "name", "target", "changes"), MARGIN, ids=[m[1] for m in MARGIN]
)
def test_learns_with_a_wide_margin(module, name, target, changes):
    results = finals(module, case(module, name, **changes), seeds=(0,))
    print(explain(results))
    assert results[0]["final"] >= target, explain(results)


@pytest.mark.slow
def test_only_a_recurrent_policy_balances_without_velocities():
    """The memory benchmark, shortened: on PositionOnlyCartPole-v1 the GRU's return is
    several times what the same PPO gets with a memoryless MLP (which stays near 45)."""
    budget = dict(budget=150_000)
    recurrent = finals(learning_pg, case(learning_pg, "ppo-gru-positions-cartpole", **budget))
    memoryless = finals(learning_pg, case(learning_pg, "ppo-mlp-positions-cartpole", **budget))
    print(explain(recurrent), explain(memoryless), sep="\n")
    assert statistics.median(r["final"] for r in recurrent) >= 150.0, explain(recurrent)
    assert max(r["final"] for r in memoryless) < 100.0, explain(memoryless)


@pytest.mark.slow
def test_cmaes_learns_cartpole():
    results = [learning_es.train(learning_es.CASES[0], seed=seed) for seed in SEEDS]
    print(explain(results), [r["generations"] for r in results])
    solved = [r for r in results if r["final"] >= 400.0 and r["generations"] <= 60]
    assert len(solved) >= 2, explain(results)

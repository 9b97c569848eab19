"""Each algorithm learns, on any processor.

A learning run is chaotic: one changed rounding in its first update (another processor's
kernel path; ``ATEN_CPU_CAPABILITY`` picks one) sends it down another path, so a test
that passes on one machine's seed 0 can fail on the next machine. Each test here is
therefore either

- a *majority* test: three seeds of a cheap case, and at least two must clear a loose
  target (the median), so one unlucky run cannot fail it. The seeds run in turn and the
  third only where the first two disagree: two passes (or two misses) already decide
  the median, so the verdict is the one all three would give; or
- a *margin* test: one seed against a target that every seed and kernel path tried
  clears by a wide margin (measured under ``ATEN_CPU_CAPABILITY=default`` and ``avx2``).

The settings are those of ``benchmarks/learning_*.py`` (imported, so they cannot drift
apart); the benchmarks run three seeds against the issues' stricter targets.
"""

from __future__ import annotations

import itertools
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


def majority(run, passes, seeds=SEEDS) -> tuple[bool, list[dict]]:
    """Whether at least two of the three seeds pass (the median clears a target), and
    the runs made: ``run(seed)`` in turn, stopping once two passes or two misses decide."""
    results, verdicts = [], []
    for seed in seeds:
        results.append(run(seed))
        verdicts.append(passes(results[-1]))
        if verdicts.count(True) >= 2 or verdicts.count(False) >= 2:
            break
    return verdicts.count(True) >= 2, results


def explain(results: list[dict]) -> str:
    figures = ", ".join(f"seed {r['seed']}: {r['final']:.1f}" for r in results)
    return f"{results[0]['case']} on {cpu_capability()}: {figures}"


def test_majority_gives_the_verdict_of_the_median_of_three():
    """Every pattern of passes and misses: the same verdict as the median of all three
    seeds, with the third seed run only where the first two disagree."""
    for finals_ in itertools.product((0.0, 1.0), repeat=3):
        ran: list[int] = []

        def run(seed, ran=ran, finals_=finals_):
            ran.append(seed)
            return {"final": finals_[seed]}

        verdict, results = majority(run, lambda r: r["final"] >= 1.0)
        assert verdict == (statistics.median(finals_) >= 1.0)
        assert ran == ([0, 1] if finals_[0] == finals_[1] else [0, 1, 2])
        assert [r["final"] for r in results] == list(finals_[: len(ran)])


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
    which = case(module, name)
    learned, results = majority(lambda seed: module.train(which, seed=seed),
                                lambda r: r["final"] >= target)  # fmt: skip
    print(explain(results))
    assert learned, explain(results)


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


POSITIONS = dict(budget=150_000)


@pytest.mark.slow
def test_a_recurrent_policy_balances_without_velocities():
    """The memory benchmark, shortened: on PositionOnlyCartPole-v1 the GRU's return is
    several times what the same PPO gets with a memoryless MLP (next test)."""
    which = case(learning_pg, "ppo-gru-positions-cartpole", **POSITIONS)
    learned, recurrent = majority(lambda seed: learning_pg.train(which, seed=seed),
                                  lambda r: r["final"] >= 150.0)  # fmt: skip
    print(explain(recurrent))
    assert learned, explain(recurrent)


@pytest.mark.slow
def test_a_memoryless_policy_cannot_balance_without_velocities():
    """The same PPO with an MLP stays near 45 on every seed and path measured (below 50
    on all three benchmark seeds at 500k steps): one seed at the shortened budget."""
    memoryless = finals(
        learning_pg, case(learning_pg, "ppo-mlp-positions-cartpole", **POSITIONS), seeds=(0,)
    )
    print(explain(memoryless))
    assert memoryless[0]["final"] < 100.0, explain(memoryless)


@pytest.mark.slow
def test_cmaes_learns_cartpole():
    solved, results = majority(
        lambda seed: learning_es.train(learning_es.CASES[0], seed=seed),
        lambda r: r["final"] >= 400.0 and r["generations"] <= 60,
    )
    print(explain(results), [r["generations"] for r in results])
    assert solved, explain(results)

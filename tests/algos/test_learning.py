"""Each algorithm learns: the learning benchmarks' cases on one seed, with looser targets.

The settings are those of ``benchmarks/learning_*.py`` (imported, so they cannot drift
apart); the benchmarks run three seeds against the issues' targets.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import learning_dqn  # noqa: E402
import learning_es  # noqa: E402
import learning_pg  # noqa: E402
import learning_qpg  # noqa: E402

LOOSER = {
    "ppo-cartpole": 400.0,
    "a2c-cartpole": 400.0,
    "reinforce-baseline-cartpole": 400.0,
    "offpac-cartpole": 300.0,
    "ppo-gru-incomplete-cartpole": 300.0,
    "ppo-pendulum": -400.0,
    "dqn-cartpole": 300.0,
    "td3-pendulum": -400.0,
    "sac-pendulum": -400.0,
}
CASES = [
    (module, case)
    for module in (learning_pg, learning_dqn, learning_qpg)
    for case in module.CASES
    if case.name in LOOSER
]


@pytest.mark.slow
@pytest.mark.parametrize(("module", "case"), CASES, ids=[case.name for _, case in CASES])
def test_learns(module, case):
    result = module.train(case, seed=0)
    assert result["final"] >= LOOSER[case.name], result


@pytest.mark.slow
def test_cmaes_learns_cartpole():
    result = learning_es.train(learning_es.CASES[0], seed=0)
    assert result["final"] >= 400.0 and result["generations"] <= 60, result

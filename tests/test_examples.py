"""The examples run as they are."""

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_readme_ppo_runs_and_prints_returns(capsys):
    sys.path.insert(0, str(EXAMPLES))
    try:
        module = runpy.run_path(str(EXAMPLES / "readme_ppo.py"))
        final = module["main"](["--iterations", "3", "--episodes", "2", "--horizon", "50"])
    finally:
        sys.path.remove(str(EXAMPLES))
    out = capsys.readouterr().out
    assert out.count("mean return") == 3
    assert 0 < final <= 50


@pytest.mark.slow
def test_readme_ppo_learns_cartpole():
    # Seeds 0-4 end at 456-500 after 60 iterations on the default and avx2 kernel paths.
    module = runpy.run_path(str(EXAMPLES / "readme_ppo.py"))
    assert module["main"](["--iterations", "60"]) >= 400


def test_rlmodels_quickstart_runs_with_every_schedule_logged(tmp_path, capsys):
    module = runpy.run_path(str(EXAMPLES / "rlmodels_quickstart.py"))
    last = module["main"](["--steps", "600", "--run-dir", str(tmp_path), "--no-progress"])
    assert last["CumSteps"] >= 600 and (tmp_path / "curves.png").stat().st_size > 0
    logged = {k for k in last if k.startswith("Schedule/")}
    assert logged == {
        f"Schedule/{name}"
        for name in (
            "epsilon",
            "batch_size",
            "priority_beta",
            "target_update_interval",
            "lr",
            "steps",
        )
    }
    assert last["Schedule/steps"] == 2 and last["Schedule/batch_size"] == 64
    assert "learning curve" in capsys.readouterr().out

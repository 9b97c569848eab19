"""The examples run as they are."""

import json
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


def test_rlmodels_quickstart_lunarlander_has_the_benchmarks_settings():
    from benchmarks.learning_dqn import LUNAR, VERSUS
    from rlx.algos.dqn import DQNConfig

    module = runpy.run_path(str(EXAMPLES / "rlmodels_quickstart.py"))
    assert module["lunar_config"]() == DQNConfig(**LUNAR)
    assert VERSUS[0].case.env == module["LUNAR"]


def test_rlmodels_quickstart_lunarlander_without_box2d_names_the_extra(monkeypatch, tmp_path):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "Box2D" else find_spec(name, *a),
    )
    module = runpy.run_path(str(EXAMPLES / "rlmodels_quickstart.py"))
    with pytest.raises(SystemExit, match=r'pip install "rlx\[box2d\]"'):
        module["main"](["--env", "LunarLander-v3", "--run-dir", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_rlmodels_quickstart_trains_on_lunarlander(tmp_path, capsys):
    pytest.importorskip("Box2D", reason="LunarLander needs Box2D: pip install 'rlx[box2d]'")
    module = runpy.run_path(str(EXAMPLES / "rlmodels_quickstart.py"))
    argv = ["--env", "LunarLander-v3", "--steps", "100", "--run-dir", str(tmp_path)]
    last = module["main"]([*argv, "--no-progress"])
    config = json.loads((tmp_path / "config.json").read_text())
    assert last["CumSteps"] >= 100 and config["run"]["env"] == "LunarLander-v3"
    assert config["run"]["hidden"] == 256 and config["algo"]["target_update_interval"] == 250
    assert "last greedy evaluation (10 episodes) none yet" in capsys.readouterr().out

"""The rlx command line and the original rlx README's main.py."""

import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from rlx.cli import main, original_main
from rlx.runner.plot import curves

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--num-envs", "4", "--steps", "32", "--epochs", "1", "--no-progress", "--no-tensorboard"]


def train(tmp_path, name, *extra):
    run_dir = tmp_path / name
    code = main(["train", "ppo", "CartPole-v1", *QUICK, "--run-dir", str(run_dir), *extra])
    assert code == 0
    return run_dir


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "pppo", "CartPole-v1"], "unknown algorithm 'pppo'. Did you mean 'ppo'?"),
        (["train", "ppo", "CartPol-v1"], "unknown environment id 'CartPol-v1'"),
        (["train", "ppo", "CartPole-v1", "--total-steps", "-5"], "--total-steps must be positive"),
        (["train", "ppo", "CartPole-v1", "--steps", "0"], "--steps must be at least 1"),
        (["train", "ppo", "CartPole-v1", "--gamma", "1.5"], "--gamma must be in (0, 1]"),
        (["train", "a2c", "CartPole-v1", "--resume", "x"], "config.json not found"),
        (
            ["train", "ppo", "CartPole-v1", "--lr", "fast"],
            "cannot read 'fast' as a number or a schedule",
        ),
        (["train", "ppo", "CartPole-v1", "--no-such-flag"], "unrecognized arguments"),
        (["train", "ppo"], "needs ALGO and ENV"),
        (["train", "--resume", "/nonexistent/run"], "config.json"),
        (["eval", "/nonexistent/run"], "does not exist"),
        (["plot", "/nonexistent/run"], "progress.csv not found"),
        (["fly"], "unknown command 'fly'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("rlx: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_installed_command_reports_errors_without_traceback():
    result = subprocess.run([sys.executable, "-m", "rlx.cli", "train", "ppo", "Nope-v0"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.startswith("rlx: error: unknown environment id")
        and "Traceback" not in result.stderr
    )


def test_train_help_lists_run_and_algorithm_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "ppo", "CartPole-v1", "--help"])
    out = capsys.readouterr().out
    assert (
        "--total-steps" in out and "--clip" in out and "Clip range of the probability ratio" in out
    )


def test_train_eval_and_video(tmp_path, capsys):
    run_dir = train(tmp_path, "run", "--total-steps", "600")
    for name in ("config.json", "progress.csv", "log.txt", "curves.png"):
        assert (run_dir / name).exists(), name
    assert main(["eval", str(run_dir), "--episodes", "3"]) == 0
    assert "episodes 3  average return" in capsys.readouterr().out
    newest = sorted((run_dir / "checkpoints").glob("*.pt"))[-1]
    videos = tmp_path / "videos"
    assert main(["eval", str(newest), "--episodes", "2", "--video", str(videos)]) == 0
    assert len(list(videos.glob("*.mp4"))) == 2


def test_plot_groups_seeds_and_draws_their_mean(tmp_path):
    runs = [train(tmp_path, f"s{s}", "--seed", str(s), "--total-steps", "1500") for s in (0, 1)]
    other = tmp_path / "a2c"
    assert main(["train", "a2c", "CartPole-v1", "--num-envs", "4", "--no-progress", "--no-tensorboard",
                 "--total-steps", "1500", "--run-dir", str(other)]) == 0  # fmt: skip
    out = tmp_path / "curves.png"
    assert main(["plot", *map(str, runs), str(other), "-o", str(out)]) == 0
    data = curves([*runs, other])
    assert set(data) == {"ppo CartPole-v1", "a2c CartPole-v1"}
    ppo = data["ppo CartPole-v1"]
    assert int(ppo["runs"]) == 2 and len(ppo["x"]) == 200
    from rlx.runner.plot import read_progress

    each = [read_progress(r) for r in runs]
    expected = np.mean([np.interp(ppo["x"], d["CumSteps"], d["ReturnAverage"]) for d in each], 0)
    np.testing.assert_allclose(ppo["mean"], expected)
    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (450, 700)
    drawn = (image[..., :3] < 0.9).any(-1)  # non-white pixels: axes, lines, legend
    assert drawn.mean() > 0.02


@pytest.mark.parametrize("policytype", ["mlp", "rnn"])
@pytest.mark.parametrize("algo", ["rf", "ac", "a2c", "ppo", "offpac"])
def test_original_main_runs_each_algorithm(algo, policytype, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["--algo", algo, "--policytype", policytype, "--batch_size", "4",
            "--max_episode", "12", "--horizon", "50", "--env", "CartPole-v0",
            "--standardize_return"]  # fmt: skip
    assert original_main(argv) == 0
    out = capsys.readouterr().out
    episodes = int(out.split("episodes ")[1].split()[0])
    assert episodes >= 12


def test_main_py_is_the_seed_command_line(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--algo", "nope"],
                            capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "unknown algorithm 'nope'" in result.stderr


def test_resume_accepts_run_options_and_refuses_algorithm_options(tmp_path, capsys):
    run_dir = train(tmp_path, "run", "--total-steps", "300")
    assert main(["train", "--resume", str(run_dir), "--lr", "0.1"]) == 2
    assert "--lr cannot change on --resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir), "--total-steps", "700"]) == 0
    from rlx.runner.plot import read_progress

    assert read_progress(run_dir)["CumSteps"][-1] >= 700


def test_plot_labels_name_the_settings_that_differ(tmp_path):
    from rlx.runner.plot import group_labels

    a = train(tmp_path, "a", "--total-steps", "300", "--lr", "0.001")
    b = train(tmp_path, "b", "--total-steps", "300", "--lr", "0.001", "--seed", "7")
    c = train(tmp_path, "c", "--total-steps", "300", "--lr", "0.01")
    assert group_labels([a, b, c]) == ["ppo CartPole-v1 (lr=0.001)"] * 2 + [
        "ppo CartPole-v1 (lr=0.01)"
    ]


def test_resume_refuses_options_that_change_the_run(tmp_path, capsys):
    run_dir = train(tmp_path, "run", "--total-steps", "300")
    for flag, value in (("--policy", "lstm"), ("--hidden", "32"), ("--seed", "5")):
        assert main(["train", "--resume", str(run_dir), flag, value]) == 2
        assert f"{flag} cannot change on --resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir), "--seed", "0", "--eval-every", "100"]) == 0


def test_missing_extras_and_dependencies_are_one_line_errors(tmp_path, monkeypatch, capsys):
    import gymnasium as gym

    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    assert main(["train", "ppo", "CartPole-v1", "--wandb", "--run-dir", str(tmp_path / "w")]) == 2
    assert "--wandb needs Weights & Biases" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()

    def needs_box2d():
        raise gym.error.DependencyNotInstalled("Box2D is not installed")

    gym.register("NeedsBox2D-v0", entry_point=needs_box2d)
    try:
        assert main(["train", "ppo", "NeedsBox2D-v0", "--run-dir", str(tmp_path / "b")]) == 2
        assert "Box2D is not installed" in capsys.readouterr().err
    finally:
        del gym.registry["NeedsBox2D-v0"]


def test_original_main_stops_when_the_horizon_cuts_every_episode(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["--algo", "a2c", "--horizon", "5", "--max_episode", "20", "--batch_size", "4",
            "--env", "Pendulum-v1"]  # fmt: skip
    assert original_main(argv) == 0
    out = capsys.readouterr().out
    assert int(out.split("episodes ")[1].split()[0]) == 20


def test_friendly_numbers_and_flag_suggestions(tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert (
        main(
            [
                "train",
                "ppo",
                "CartPole-v1",
                *QUICK,
                "--total-steps",
                "3e2",
                "--run-dir",
                str(run_dir),
            ]
        )
        == 0
    )
    with pytest.raises(SystemExit):
        main(["train", "ppo", "CartPole-v1", "--totl-steps", "100"])
    assert "did you mean --total-steps?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "ppo", "CartPole-v1", "--total-steps", "1.5"])
    assert "invalid int value: '1.5'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given", "full"),
    [("rf", "reinforce"), ("ac", "reinforce-baseline"), ("REINFORCE", "reinforce"),
     ("cma-es", "cmaes"), ("ppo", "ppo")],
)  # fmt: skip
def test_short_names_are_aliases_of_the_full_ones(given, full, tmp_path):
    from rlx.algos.registry import ALGORITHMS, algorithm_class

    assert algorithm_class(given) is ALGORITHMS[full] and ALGORITHMS[full].name == full
    if given == "ac":  # the run is recorded under the full name
        run_dir = tmp_path / "run"
        argv = ["train", given, "CartPole-v1", "--num-envs", "2", "--total-steps", "200",
                "--no-progress", "--no-tensorboard", "--run-dir", str(run_dir)]  # fmt: skip
        assert main(argv) == 0
        import json

        assert json.loads((run_dir / "config.json").read_text())["run"]["algo"] == full

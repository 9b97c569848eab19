"""The training runner: determinism, resume, checkpoints, logging."""

import csv
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rlx.algos.pg import PPOConfig
from rlx.runner import RunConfig, Runner
from rlx.runner import checkpoint as ckpt

WALL_CLOCK = {"CumTime", "StepsPerSecond"}


def small_run(run_dir, **overrides) -> tuple[RunConfig, PPOConfig]:
    run = RunConfig(algo="ppo", env="CartPole-v1", total_steps=2000, seed=3, run_dir=str(run_dir),
                    checkpoint_every=4, progress=False, plot=False, tensorboard=False,
                    eval_every=1000, eval_episodes=2)  # fmt: skip
    for k, v in overrides.items():
        setattr(run, k, v)
    return run, PPOConfig(num_envs=4, steps=32, epochs=2, minibatches=2, lr=1e-3)


def rows(run_dir) -> list[dict]:
    with open(Path(run_dir) / "progress.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in csv.DictReader(f)]


def test_same_seed_same_progress(tmp_path):
    for name in ("a", "b"):
        Runner(*small_run(tmp_path / name)).train()
    a, b = rows(tmp_path / "a"), rows(tmp_path / "b")
    assert len(a) >= 16 and a == b
    assert int(a[-1]["CumSteps"]) >= 2000 > int(a[-2]["CumSteps"])
    assert a[-1]["EvalReturnAverage"] != "" and a[0]["EvalReturnAverage"] == ""
    assert {"PolicyLoss", "ValueLoss", "Entropy", "GradNorm", "LearningRate"} <= set(a[0])
    different = Runner(*small_run(tmp_path / "c", seed=4))
    different.train()
    assert rows(tmp_path / "c") != a


def test_resume_continues_exactly(tmp_path):
    Runner(*small_run(tmp_path / "full")).train()
    run, algo = small_run(tmp_path / "cut", total_steps=1100)
    Runner(run, algo).train()
    stopped = len(rows(tmp_path / "cut"))
    resumed = Runner.resume(tmp_path / "cut", total_steps=2000)
    assert resumed.iteration == stopped and stopped % 4 != 0  # from the final checkpoint
    resumed.train()
    assert rows(tmp_path / "cut") == rows(tmp_path / "full")


@pytest.mark.slow
def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path):
    args = ["ppo", "CartPole-v1", "--num-envs", "4", "--steps", "32", "--epochs", "2",
            "--total-steps", "6000", "--checkpoint-every", "5", "--seed", "1",
            "--no-progress", "--no-plot", "--no-tensorboard"]  # fmt: skip
    command = [sys.executable, "-m", "rlx.cli", "train"]
    subprocess.run([*command, *args, "--run-dir", str(tmp_path / "full")], check=True,
                   capture_output=True)  # fmt: skip
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, *args, "--run-dir", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        progress = killed / "progress.csv"
        if progress.exists() and progress.read_text().count("\n") >= 14:  # header + 13 rows
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    cut = len(rows(killed))
    assert 13 <= cut < 47, "the run must be killed part-way"
    resume = subprocess.run([*command, "--resume", str(killed)], capture_output=True, text=True)
    assert resume.returncode == 0, resume.stderr
    assert "resumed from" in (killed / "log.txt").read_text()
    assert rows(killed) == rows(tmp_path / "full")


def test_truncated_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
    run, algo = small_run(tmp_path, checkpoint_every=2, total_steps=600)
    Runner(run, algo).train()  # 5 iterations: checkpoints 4 and 5 kept
    files = ckpt.checkpoint_files(tmp_path / "checkpoints")
    assert [f.name for f in files] == ["checkpoint-00000005.pt", "checkpoint-00000004.pt"]
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="not a torch checkpoint file \\(truncated"):
        ckpt.read(files[0])
    with caplog.at_level(logging.WARNING, logger="rlx"):
        runner = Runner.resume(tmp_path)
    assert runner.iteration == 4
    assert "falling back to the previous checkpoint" in caplog.text


class Exploit:
    def __reduce__(self):
        return os.system, (f"touch {Path(os.environ['RLX_MARKER'])}",)


def test_a_malicious_checkpoint_is_refused_without_running_it(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("RLX_MARKER", str(marker))
    run, algo = small_run(tmp_path, total_steps=256)
    Runner(run, algo).train()
    evil = tmp_path / "checkpoints" / "checkpoint-99999999.pt"
    torch.save({"format": ckpt.FORMAT, "payload": Exploit()}, evil)
    with pytest.raises(ckpt.CheckpointError, match="refused"):
        ckpt.read(evil)
    evil.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ckpt.CheckpointError, match="not a torch checkpoint file"):
        ckpt.read(evil)
    runner = Runner.resume(tmp_path)  # falls back to the real checkpoint
    assert runner.iteration == len(rows(tmp_path))
    assert not marker.exists()


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    ckpt.save(folder, 1, {"x": torch.ones(3)})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(OSError):
        ckpt.save(folder, 2, {"x": torch.zeros(3)})
    assert [f.name for f in ckpt.checkpoint_files(folder)] == ["checkpoint-00000001.pt"]
    assert torch.equal(ckpt.load_latest(folder)["x"], torch.ones(3))


def test_tensorboard_events_hold_the_logged_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, algo = small_run(tmp_path, tensorboard=True, total_steps=512)
    Runner(run, algo).train()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("PolicyLoss")]
    table = rows(tmp_path)
    assert [s for s, _ in logged] == [int(r["CumSteps"]) for r in table]
    assert [v for _, v in logged] == pytest.approx([float(r["PolicyLoss"]) for r in table])


def test_weights_and_biases_receives_every_row(tmp_path, monkeypatch):
    calls = []

    class FakeRun:
        def log(self, values, step):
            calls.append((step, values))

        def finish(self):
            calls.append("finish")

    fake = type(sys)("wandb")
    fake.init = lambda **kwargs: calls.append(("init", kwargs["project"])) or FakeRun()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run, algo = small_run(tmp_path, wandb=True, wandb_project="demo", total_steps=384)
    Runner(run, algo).train()
    assert calls[0] == ("init", "demo") and calls[-1] == "finish"
    assert [c[0] for c in calls[1:-1]] == [int(r["CumSteps"]) for r in rows(tmp_path)]
    assert all("ReturnAverage" in c[1] or "PolicyLoss" in c[1] for c in calls[1:-1])


def test_debug_log_shows_the_loss_before_and_after_each_update(tmp_path):
    run, algo = small_run(tmp_path, log_level="DEBUG", total_steps=256)
    Runner(run, algo).train()
    text = (tmp_path / "log.txt").read_text()
    assert text.count("loss") >= 2 and "->" in text


def test_runner_refuses_bad_configuration(tmp_path):
    with pytest.raises(ValueError, match="--total-steps must be positive"):
        Runner(RunConfig(total_steps=-1, run_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="unknown algorithm 'ppp'.*'ppo'"):
        Runner(RunConfig(algo="ppp", run_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="unknown environment id"):
        Runner(RunConfig(env="CartPol-v1", run_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="config.json"):
        Runner.resume(tmp_path / "nothing")


@pytest.mark.parametrize("policy", ["rnn", "mlp"])
def test_resume_of_recurrent_and_off_policy_runs(tmp_path, policy):
    from rlx.algos.pg import OffPACConfig

    def config(name, total):
        run = RunConfig(algo="offpac", env="CartPole-v1", policy=policy, total_steps=total, seed=5,
                        run_dir=str(tmp_path / name), checkpoint_every=3, progress=False,
                        plot=False, tensorboard=False)  # fmt: skip
        return run, OffPACConfig(
            num_envs=3, horizon=60, replay_episodes=10, batch_episodes=4, updates=2
        )

    Runner(*config("full", 1500)).train()
    Runner(*config("cut", 700)).train()
    Runner.resume(tmp_path / "cut", total_steps=1500).train()
    assert rows(tmp_path / "cut") == rows(tmp_path / "full")


def test_a_run_without_finished_episodes_ends_cleanly(tmp_path, caplog):
    run, algo = small_run(tmp_path, env="MountainCar-v0", total_steps=256, plot=True, eval_every=0)
    with caplog.at_level(logging.WARNING, logger="rlx"):
        row = Runner(run, algo).train()
    assert row["ReturnAverage"] != row["ReturnAverage"]  # NaN: no episode finished yet
    assert "no curves.png" in caplog.text and not (tmp_path / "curves.png").exists()


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_cuda_device_without_cuda_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="CUDA is not available"):
        Runner(RunConfig(device="cuda", run_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="not a torch device"):
        Runner(RunConfig(device="gpu0", run_dir=str(tmp_path)))

"""rlx launch: grids of variants x seeds as rlx train runs on slots, the summary, resume,
bad input; and the queue underneath it."""

import json
import shutil
import sys
import time

import pytest

from rlx.cli import main
from rlx.runner import launch
from rlx.runner.grid import Grid, Variant, grid_variants, read_variants, split_values, variant_argv
from rlx.runner.plot import group_labels, read_progress
from rlx.runner.slots import Call, Command, cpu_slots, run_on_slots

# a2c on CartPole: 40 steps an iteration, a checkpoint every 2; a run takes a few seconds,
# most of it importing torch.
QUICK = ["--total-steps", "300", "--checkpoint-every", "2", "--no-tensorboard", "--no-plot"]


def config(run_dir):
    return json.loads((run_dir / "config.json").read_text())["run"]


def test_grid_runs_every_variant_and_seed_then_resume_continues_it(tmp_path, capsys):
    out = tmp_path / "grid"
    argv = ["launch", "a2c", "CartPole-v1", *QUICK, "--grid", "lr=1e-3,7e-4", "--seeds", "0", "1",
            "--slots", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    runs = sorted(out.glob("*/s*"))
    assert [r.relative_to(out).as_posix() for r in runs] == [
        "lr=1e-3/s0", "lr=1e-3/s1", "lr=7e-4/s0", "lr=7e-4/s1"
    ]  # fmt: skip
    for run in runs:
        assert config(run)["variant"] == run.parent.name
        assert config(run)["seed"] == int(run.name[1:])
        assert json.loads((run / "exit_status.json").read_text())["status"] == "done"
        assert (run / "stdout.txt").exists() and (run / "stderr.txt").exists()
    assert "lr=1e-3/s0: done" in printed  # not a terminal: one line per change
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["variant"], s["done"], len(s["finals"])) for s in summary] == [
        ("lr=1e-3", 2, 2), ("lr=7e-4", 2, 2)
    ]  # fmt: skip
    finals = [read_progress(r)["ReturnAverage"][-1] for r in runs[:2]]
    assert summary[0]["mean"] == pytest.approx(sum(finals) / 2)
    assert "final return (mean ± std)" in printed and "lr=7e-4" in (out / "summary.txt").read_text()
    assert (out / "curves.png").stat().st_size > 0
    assert group_labels(runs) == ["lr=1e-3"] * 2 + ["lr=7e-4"] * 2  # plot: one line per variant

    # An interrupted grid: s0 of lr=1e-3 finished; s1 stopped after its first checkpoint
    # (no end recorded, the newest checkpoint not yet written); lr=7e-4/s1 never started.
    finished, stopped, unstarted = runs[0], runs[1], runs[3]
    before = (finished / "progress.csv").stat().st_mtime_ns
    (stopped / "exit_status.json").unlink()
    sorted((stopped / "checkpoints").glob("*.pt"))[-1].unlink()
    shutil.rmtree(unstarted)
    assert main(["launch", "--resume", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 finished before, 1 to resume" in printed
    assert (finished / "progress.csv").stat().st_mtime_ns == before
    assert "resumed from" in (stopped / "log.txt").read_text()
    assert read_progress(stopped)["CumSteps"][-1] >= 300
    assert config(unstarted)["variant"] == "lr=7e-4" and (unstarted / "progress.csv").exists()
    assert all(json.loads((r / "exit_status.json").read_text())["status"] == "done" for r in runs)


def test_a_failing_run_is_reported_and_the_others_finish(tmp_path, capsys):
    out = tmp_path / "grid"
    # An unknown policy type passes the option parser and fails when the run builds it.
    argv = ["launch", "a2c", "CartPole-v1", *QUICK, "--grid", "policy=mlp,transformer",
            "--slots", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "policy=transformer/s0: FAILED (exit code 2)" in printed
    assert "unknown policy type 'transformer'" in printed  # its last stderr lines
    assert "1 of 2 runs failed: policy=transformer/s0" in printed
    assert (out / "policy=mlp" / "s0" / "progress.csv").exists()
    summary = {s["variant"]: s["done"] for s in json.loads((out / "summary.json").read_text())}
    assert summary == {"policy=mlp": 1, "policy=transformer": 0}


def bad_variants(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--grid", "lrr=1e-3,7e-4"], "a2c has no option 'lrr' (did you mean lr?)"),
        (["--grid", "gamma=0.99,1.5"], "variant 'gamma=1.5': --gamma must be in (0, 1]"),
        (["--grid", "lr"], "write OPTION=VALUE,VALUE"),
        (["--variants", "broken.py"], "cannot read variants from"),
        (["--variants", "broken.json"], "cannot read variants from"),
        (["--variants", "missing.yaml"], "not found"),
        (["--slots", "0"], "--slots must be at least 1, got 0"),
        (["--seed", "3"], "use --seeds"),
        (["--lrr", "3"], "unrecognized arguments: --lrr 3 (did you mean --lr?)"),
        (
            ["--other-grid"],
            "holds another grid (launch.json); continue it with rlx launch --resume",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_starts_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "grid"
    bad_variants(tmp_path, "broken.py", "VARIANTS = [{'lr': 1e-3}\n")
    bad_variants(tmp_path, "broken.json", '[{"lr": 1e-3},]')
    extra = [str(tmp_path / e) if e.startswith(("broken", "missing")) else e for e in extra]
    if extra == ["--other-grid"]:
        launch.prepare(Grid("a2c", "CartPole-v1", [Variant("a", {})], [0]), out)
        extra = ["--grid", "lr=1e-3"]
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["launch", "a2c", "CartPole-v1", *extra, "--out", str(out)]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("rlx: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("grid/*/s*"))


def test_variant_files_and_grid_values():
    assert split_values("3e-4, linear(1e-3, 0, 1e5)") == ["3e-4", "linear(1e-3, 0, 1e5)"]
    grid = grid_variants(["lr=1e-3,7e-4", "--anneal-lr=true,false"])
    assert [v.name for v in grid] == [
        "lr=1e-3_anneal_lr=true", "lr=1e-3_anneal_lr=false",
        "lr=7e-4_anneal_lr=true", "lr=7e-4_anneal_lr=false",
    ]  # fmt: skip
    assert variant_argv(Grid("ppo", "CartPole-v1", grid, [0]), grid[1]) == [
        "--lr", "1e-3", "--no-anneal-lr"
    ]  # fmt: skip


def test_variants_file_forms(tmp_path):
    path = tmp_path / "variants.py"
    path.write_text("VARIANTS = [{'name': 'fast', 'lr': 1e-3}, {'gamma': 0.99}]\n")
    assert read_variants(path) == [
        Variant("fast", {"lr": 1e-3}), Variant("gamma=0.99", {"gamma": 0.99})
    ]  # fmt: skip
    path = tmp_path / "variants.json"
    path.write_text('{"slow": {"lr": 1e-4, "total-steps": 500}}')
    assert read_variants(path) == [
        Variant("slow", {"lr": 1e-4, "total_steps": 500})
    ]  # fmt: skip
    path = tmp_path / "variants.yaml"
    path.write_text("- name: wide\n  hidden: 128\n- lr: 0.001\n  gamma: 0.99\n")
    assert read_variants(path) == [
        Variant("wide", {"hidden": 128}), Variant("lr=0.001_gamma=0.99", {"lr": 1e-3, "gamma": 0.99})
    ]  # fmt: skip


def sleeper(seconds):
    return [sys.executable, "-c", f"import time; time.sleep({seconds})"]


def test_queue_keeps_to_its_slots(tmp_path):
    jobs = [Command(f"j{i}", sleeper(0.5), tmp_path / f"{i}.out", tmp_path / f"{i}.err")
            for i in range(4)]  # fmt: skip
    most = []
    start = time.monotonic()
    run_on_slots(jobs, cpu_slots(2),
                 on_tick=lambda: most.append(sum(j.status == "running" for j in jobs)))  # fmt: skip
    assert time.monotonic() - start < 4 * 0.5 + 1.5  # two at a time, not one
    assert max(most) == 2 and all(j.status == "done" for j in jobs)
    assert {j.slot.index for j in jobs} == {0, 1}


def test_queue_stops_every_job_when_interrupted(tmp_path):
    jobs = [Command(f"j{i}", sleeper(30), tmp_path / f"{i}.out", tmp_path / f"{i}.err")
            for i in range(3)]  # fmt: skip

    def interrupt():
        raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_on_slots(jobs, cpu_slots(2), on_tick=interrupt)
    assert time.monotonic() - start < 5
    assert [j.status for j in jobs] == ["stopped", "stopped", "queued"]
    assert all(j.process.poll() is not None for j in jobs[:2])


def test_calls_return_their_value_or_their_traceback():
    # Each call is a spawned process that imports rlx (and torch): two, side by side.
    calls = [Call("abs", abs, -2), Call("int", int, "seven")]
    run_on_slots(calls, cpu_slots(2))
    assert (calls[0].status, calls[0].result) == ("done", 2)
    assert calls[1].status == "failed" and "invalid literal for int" in calls[1].error

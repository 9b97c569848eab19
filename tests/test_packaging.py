"""The release: a wheel and an sdist that twine accepts, and the README's install line
working from the wheel in a fresh virtual environment."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

import rlx

ROOT = Path(__file__).resolve().parents[1]


def run(*args: object, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.slow
def test_the_wheel_installs_in_a_fresh_venv_and_trains(tmp_path):
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
    wheel, sdist = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert [w.name for w in wheel] == [f"rlx-{rlx.__version__}-py3-none-any.whl"] and sdist
    assert "PASSED" in run(sys.executable, "-m", "twine", "check", *wheel, *sdist)
    # The README's first command, with the wheel in place of the checkout.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    pip, rlx_cli = venv / "bin" / "pip", venv / "bin" / "rlx"
    run(pip, "install", "-q", "torch==2.13.0")
    run(pip, "install", "-q", wheel[0])
    out = run(rlx_cli, "train", "ppo", "CartPole-v1", "--total-steps", "1024", "--run-dir",
              tmp_path / "run", cwd=tmp_path)  # fmt: skip
    assert "average return" in out
    with open(tmp_path / "run" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert int(rows[-1]["CumSteps"]) >= 1024
    version = run(venv / "bin" / "python", "-c", "import rlx; print(rlx.__version__)", cwd=tmp_path)
    assert version.strip() == rlx.__version__

"""Soak test: 2,000 PPO iterations through the full runner; resident memory must not grow.

Runs the real training stack — sampling, PPO updates, progress.csv, TensorBoard events,
checkpoints every 100 iterations, the online return window — on CartPole-v1 for 2,000
iterations (4 environments x 32 steps, 2 epochs, so that it takes minutes here) and
prints the resident set size (RSS, from /proc) at the start, after a warm-up of 100
iterations, and at the end. Target: growth from the warm-up to the end below 5%. The
first iterations allocate torch's and the allocator's working memory once; what the
target guards against is memory that keeps growing with the iteration count.

Run: ``python -m benchmarks.soak [--iterations 2000]``. Exits non-zero on a miss.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rlx.algos.pg import PPOConfig
from rlx.runner import RunConfig, Runner

TARGET_GROWTH = 0.05
WARM_UP = 100


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    samples: dict[str, float] = {"start": rss_mib()}

    def measure(runner: Runner, row: dict) -> None:
        if runner.iteration == WARM_UP:
            samples["after warm-up"] = rss_mib()

    algo = PPOConfig(num_envs=4, steps=32, epochs=2, minibatches=2, lr=3e-4)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunConfig(algo="ppo", env="CartPole-v1", seed=0, run_dir=str(Path(tmp) / "soak"),
                        total_steps=10**9, total_iterations=args.iterations,
                        checkpoint_every=100, progress=False, plot=False,
                        tensorboard=True)  # fmt: skip
        runner = Runner(run, algo)
        start = time.perf_counter()
        row = runner.train(callbacks=[measure])
        wall = time.perf_counter() - start
        samples["end"] = rss_mib()
    growth = samples["end"] / samples["after warm-up"] - 1
    print("PPO on CartPole-v1, 4 envs x 32 steps, 2 epochs x 2 minibatches, seed 0; "
          "runner with progress.csv, TensorBoard, checkpoints every 100 iterations")  # fmt: skip
    print(f"iterations {runner.iteration}, environment steps {row['CumSteps']}, "
          f"wall {wall:.0f} s, final average return {row['ReturnAverage']:.1f}\n")  # fmt: skip
    print(f"{'moment':16s} {'RSS (MiB)':>10s}")
    for name, value in samples.items():
        print(f"{name:16s} {value:10.1f}")
    passed = int(growth < TARGET_GROWTH)
    print(f"\ngrowth after warm-up: {growth * 100:+.2f}% (target < {TARGET_GROWTH * 100:.0f}%): "
          f"{'passed' if passed else 'MISSED'}")  # fmt: skip
    print(f"{passed} passed, {1 - passed} failed")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

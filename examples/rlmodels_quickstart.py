"""rlmodels' quickstart in rlx: DQN with prioritized replay on CartPole-v0, every
hyper-parameter a function of the step, then a plot of the run.

Reinforcement learning is tuned by hand, and rlmodels' idea is that a tuned value is
usually a value *over time*: explore a lot and then little, learn fast and then slowly,
correct the prioritized sampling more and more. In rlx any numeric option takes a
function of the step (environment steps so far), a plain lambda or one of
``rlx.schedules``; the runner logs each one's value in ``progress.csv``
(``Schedule/<option>``) and plots the learning curve.

Run: python examples/rlmodels_quickstart.py [--steps 30000] [--run-dir DIR] [--seed S]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from rlx import schedules
from rlx.algos.dqn import DQNConfig
from rlx.runner import RunConfig, Runner


def config(total: int) -> DQNConfig:
    """The schedules of the run, for a run of ``total`` environment steps."""
    return DQNConfig(
        prioritized=True,
        # rlmodels' exponential decay of exploration, floored
        epsilon=lambda step: max(0.02, 0.9995**step),
        # small batches while the replay is small, larger ones later
        batch_size=schedules.piecewise([(0, 32), (total // 4, 64)], interpolate=False),
        # prioritization as strong as usual; its bias corrected fully by the end
        priority_alpha=0.6,
        priority_beta=schedules.linear(0.4, 1.0, total),
        # a target network that follows quickly at first, then holds steadier
        target_update_interval=lambda step: 100 if step < total // 2 else 250,
        # the learning rate as a factor of its initial value, as rlmodels' schedulers
        lr=lambda step: 1e-3 * max(0.1, 1.0 - step / total),
        # environment steps per update: update after every step at first, then every 2
        steps=lambda step: 1 if step < total // 3 else 2,
        learning_starts=500,
        buffer_size=50_000,
        gamma=0.99,
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30_000, help="environment steps")
    parser.add_argument("--run-dir", default="runs/rlmodels-quickstart")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    run = RunConfig(algo="dqn", env="CartPole-v0", total_steps=args.steps, seed=args.seed,
                    hidden=64, run_dir=args.run_dir, progress=args.progress,
                    tensorboard=False)  # fmt: skip
    last = Runner(run, config(args.steps)).train()
    with open(Path(args.run_dir) / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    print(f"{len(rows)} iterations, {last['CumSteps']} steps; last 100 episodes average "
          f"{last['ReturnAverage']:.1f}; schedules at the end: "
          + ", ".join(f"{k[9:]}={float(v):.3g}" for k, v in rows[-1].items()
                      if k.startswith("Schedule/")))  # fmt: skip
    print(f"learning curve: {Path(args.run_dir) / 'curves.png'}")
    return last


if __name__ == "__main__":
    main()

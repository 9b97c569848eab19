"""rlmodels' quickstart in rlx: DQN with prioritized replay on CartPole-v0, every
hyper-parameter a function of the step, then a plot of the run.

Reinforcement learning is tuned by hand, and rlmodels' idea is that a tuned value is
usually a value *over time*: explore a lot and then little, learn fast and then slowly,
correct the prioritized sampling more and more. In rlx any numeric option takes a
function of the step (environment steps so far), a plain lambda or one of
``rlx.schedules``; the runner logs each one's value in ``progress.csv``
(``Schedule/<option>``) and plots the learning curve.

``--env LunarLander-v3`` (``pip install "rlx[box2d]"``) trains DQN on LunarLander
instead, at the RL Baselines3 Zoo's settings for it (those of ``benchmarks/learning_dqn.py``'s
``dqn-lunarlander`` case: constant values, ε a linear schedule), for 100,000 steps unless
``--steps`` says otherwise, with a greedy evaluation every 10,000 steps.

Run: python examples/rlmodels_quickstart.py [--steps 30000] [--run-dir DIR] [--seed S]
[--env LunarLander-v3]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import math
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


LUNAR = "LunarLander-v3"


def lunar_config() -> DQNConfig:
    """The RL Baselines3 Zoo's DQN settings for LunarLander (``hyperparams/dqn.yml``) in
    rlx's options: 4 updates every 4 steps, the target copied every 250 updates, ε from 1
    to 0.1 over the first 12,000 steps, no Double DQN and Adam's epsilon at torch's 1e-8
    (as SB3's DQN)."""
    return DQNConfig(
        lr=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0, gamma=0.99,
        target_update_interval=250, steps=4, gradient_steps=4,
        epsilon=schedules.linear(1.0, 0.1, 12_000), double=False, adam_eps=1e-8,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", choices=["CartPole-v0", LUNAR], default="CartPole-v0")
    parser.add_argument("--steps", type=int, help="environment steps (30000; LunarLander 100000)")
    parser.add_argument("--run-dir", help="default runs/rlmodels-quickstart[-lunarlander]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    lunar = args.env == LUNAR
    if lunar and importlib.util.find_spec("Box2D") is None:
        raise SystemExit(f'{LUNAR} needs Box2D: pip install "rlx[box2d]"')
    steps = args.steps if args.steps is not None else (100_000 if lunar else 30_000)
    run_dir = args.run_dir or ("runs/rlmodels-quickstart" + ("-lunarlander" if lunar else ""))
    run = RunConfig(algo="dqn", env=args.env, total_steps=steps, seed=args.seed,
                    hidden=256 if lunar else 64, run_dir=run_dir, progress=args.progress,
                    tensorboard=False,
                    # LunarLander: a greedy evaluation every 10k steps; a checkpoint (with
                    # the 50k replay) every 10k steps rather than every 200
                    eval_every=10_000 if lunar else 0,
                    checkpoint_every=2_500 if lunar else 50)  # fmt: skip
    last = Runner(run, lunar_config() if lunar else config(steps)).train()
    with open(Path(run_dir) / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if lunar:
        evaluation = last["EvalReturnAverage"]
        print(f"{len(rows)} iterations, {last['CumSteps']} steps; last 100 episodes average "
              f"{last['ReturnAverage']:.1f}; last greedy evaluation (10 episodes) "
              + ("none yet" if math.isnan(evaluation) else f"{evaluation:.1f}"))  # fmt: skip
    else:
        print(f"{len(rows)} iterations, {last['CumSteps']} steps; last 100 episodes average "
              f"{last['ReturnAverage']:.1f}; schedules at the end: "
              + ", ".join(f"{k[9:]}={float(v):.3g}" for k, v in rows[-1].items()
                          if k.startswith("Schedule/")))  # fmt: skip
    print(f"learning curve: {Path(run_dir) / 'curves.png'}")
    return last


if __name__ == "__main__":
    main()

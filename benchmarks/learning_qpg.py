"""Learning curves of the Q-function policy gradients against the targets of their issue.

Each case trains one algorithm with its ready actor and critic on fixed seeds for a
budget of environment steps; training acts with exploration noise, so the final return
is the mean of 10 deterministic episodes on separate environments (the measure the RL
Baselines3 Zoo reports), evaluated every 2,000 steps too (see ``learning.py``). The
settings are the Zoo's for Pendulum-v1. Run: ``python -m benchmarks.learning_qpg
[--only sac-pendulum] [--seeds 0 1 2]``. Exits non-zero when a target is missed.
"""

from __future__ import annotations

import sys

from benchmarks.learning import Case, main, train

__all__ = ["CASES", "train"]

# The Zoo's TD3 and DDPG Pendulum-v1 settings: half the budget of random actions first.
DETERMINISTIC = dict(gamma=0.98, buffer_size=200_000, learning_starts=10_000,
                     exploration_noise=0.1, lr=1e-3)  # fmt: skip

CASES = [
    Case("sac-pendulum", "sac", "Pendulum-v1", 20_000, -200.0, options=dict(lr=1e-3),
         evaluate=True, eval_every=2_000),
    Case("td3-pendulum", "td3", "Pendulum-v1", 20_000, -200.0, options=DETERMINISTIC,
         evaluate=True, eval_every=2_000),
    Case("ddpg-pendulum", "ddpg", "Pendulum-v1", 20_000, -250.0, options=DETERMINISTIC,
         evaluate=True, eval_every=2_000),
    # rlmodels' "DDPG with PER": priorities from the critic's TD errors, importance weights
    # in its loss (the defaults: alpha 0.6, beta 0.4).
    Case("ddpg-per-pendulum", "ddpg", "Pendulum-v1", 20_000, -250.0,
         options={**DETERMINISTIC, "prioritized": True}, evaluate=True, eval_every=2_000),
]  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(CASES, __doc__.split("\n")[0]))

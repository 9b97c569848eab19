"""Learning curves of the policy-gradient algorithms against the targets of their issue.

Each case trains one algorithm with its ready policy on fixed seeds for a budget of
environment steps; the final return is the mean of the last 10 training episodes (see
``learning.py`` for the table). Run: ``python -m benchmarks.learning_pg [--only
ppo-cartpole,a2c-cartpole] [--seeds 0 1 2] [--set lr=1e-3]``. Exits non-zero when a
target is missed.
"""

from __future__ import annotations

import sys

from benchmarks.learning import Case, main, train

__all__ = ["CASES", "train"]

# Recurrent PPO on the partially observed CartPoles, for the GRU and for the memoryless
# MLP beside it: 64 environments x 32 steps, backpropagation through whole rollouts.
# (The earlier 32 x 64 steps with 0.98/0.98 reached 335 on one kernel path and 500 on
# another for the same seed on IncompleteCartPole-v1.)
MEMORY = dict(num_envs=64, steps=32, epochs=10, minibatches=4, lr=1e-3, anneal_lr=True,
              gamma=0.98, lam=0.8, sequence_length=None)  # fmt: skip

CASES = [
    # lr 1e-3 annealed: 500 on seeds 0-9 under both the default and the avx2 kernel path,
    # where the default 3e-4 ended at 466 or 457 on some seeds by 100k steps.
    Case(
        "ppo-cartpole", "ppo", "CartPole-v1", 100_000, 475.0, options=dict(lr=1e-3, anneal_lr=True)
    ),  # fmt: skip
    Case(
        "a2c-cartpole",
        "a2c",
        "CartPole-v1",
        300_000,
        475.0,
        options=dict(
            num_envs=16, steps=5, lr=7e-4, lam=1.0, anneal_lr=True, normalize_advantages=True
        ),
    ),
    Case(
        "reinforce-baseline-cartpole",
        "reinforce-baseline",
        "CartPole-v1",
        500_000,
        475.0,
        options=dict(num_envs=16, lr=1e-2, anneal_lr=True, standardize_return=True),
    ),
    Case(
        "reinforce-cartpole",
        "reinforce",
        "CartPole-v1",
        500_000,
        None,
        options=dict(num_envs=16, lr=1e-2, anneal_lr=True, standardize_return=True),
    ),
    Case(
        "offpac-cartpole",
        "offpac",
        "CartPole-v1",
        500_000,
        450.0,
        options=dict(num_envs=8, lr=1e-3, anneal_lr=True, batch_episodes=8, updates=4),
    ),
    Case(
        "ppo-gru-incomplete-cartpole",
        "ppo",
        "IncompleteCartPole-v1",
        300_000,
        450.0,
        policy="gru",
        options=MEMORY,
        policy_options=dict(hidden=128),
    ),
    Case(
        "ppo-mlp-incomplete-cartpole",
        "ppo",
        "IncompleteCartPole-v1",
        300_000,
        None,
        options=MEMORY,
    ),
    Case(
        "ppo-gru-positions-cartpole",
        "ppo",
        "PositionOnlyCartPole-v1",
        500_000,
        450.0,
        policy="gru",
        options=MEMORY,
        policy_options=dict(hidden=128),
    ),
    Case(
        "ppo-mlp-positions-cartpole",
        "ppo",
        "PositionOnlyCartPole-v1",
        500_000,
        None,
        options=MEMORY,
    ),
    Case(
        "ppo-pendulum",
        "ppo",
        "Pendulum-v1",
        300_000,
        -250.0,
        options=dict(
            num_envs=8,
            steps=256,
            gamma=0.9,
            lam=0.95,
            lr=1e-3,
            epochs=10,
            minibatches=8,
            anneal_lr=True,
        ),
    ),
]


if __name__ == "__main__":
    sys.exit(main(CASES, __doc__.split("\n")[0]))

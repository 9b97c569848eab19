"""Replay-buffer costs: rlx's uniform and prioritized replay against Stable-Baselines3's.

Printed, from one run (CartPole-v1 transitions from 8 environments, capacity 1M, torch on
one thread, medians of interleaved rounds of 200 calls):

- microseconds for ``sample(256)`` from rlx's uniform ``ReplayBuffer`` (1-step and 3-step
  returns) and from SB3's ``ReplayBuffer`` (1 step; SB3 has no n-step or prioritized
  replay);
- microseconds for ``sample(256)`` plus ``update_priorities`` on rlx's
  ``PrioritizedReplay`` (1M transitions).

The frame-buffer memory target of the replay issue is not measured here yet (no frame
buffer exists). Run: ``python benchmarks/replay.py [--rounds 5]``. No targets: exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import rlx
from rlx.policies import make_policy
from rlx.replay import PrioritizedReplay, ReplayBuffer

CAPACITY, BATCH, CALLS = 1_000_000, 256, 200


def filled_rlx(cls: type, **kwargs) -> ReplayBuffer:
    agent = rlx.Agent("CartPole-v1", num_envs=8, seed=0)
    policy = make_policy(agent.observation_space, agent.action_space)
    buffer = cls(CAPACITY, **kwargs)
    with torch.no_grad():
        rollout = agent(policy).steps(1000)
    for _ in range(CAPACITY // 8000):
        buffer.add(rollout)
    return buffer


def filled_sb3():
    import gymnasium as gym
    from stable_baselines3.common.buffers import ReplayBuffer as SB3Buffer

    env = gym.make("CartPole-v1")
    buffer = SB3Buffer(CAPACITY, env.observation_space, env.action_space, device="cpu")
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((CAPACITY, 1, 4)).astype(np.float32)
    buffer.observations[:] = obs
    buffer.next_observations[:] = obs
    buffer.actions[:] = rng.integers(0, 2, (CAPACITY, 1, 1))
    buffer.rewards[:] = 1.0
    buffer.full = True
    return buffer


def timed(fn) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        fn()
    return (time.perf_counter() - start) / CALLS * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    uniform = filled_rlx(ReplayBuffer)
    nstep = filled_rlx(ReplayBuffer, n_step=3)
    prioritized = filled_rlx(PrioritizedReplay, n_step=3)
    errors = torch.rand(BATCH)

    def per_step() -> None:
        batch = prioritized.sample(BATCH)
        prioritized.update_priorities(batch.indices, errors)

    variants = {
        "rlx ReplayBuffer sample(256), 1-step": lambda: uniform.sample(BATCH),
        "rlx ReplayBuffer sample(256), 3-step": lambda: nstep.sample(BATCH),
        "rlx PrioritizedReplay sample(256) + update, 3-step": per_step,
    }
    try:
        sb3 = filled_sb3()
        variants["SB3 ReplayBuffer sample(256), 1-step"] = lambda: sb3.sample(BATCH)
    except ImportError:
        print("stable-baselines3 not installed (pip install -e '.[bench]'): SB3 row skipped")
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            times[name].append(timed(fn))
    print(f"CartPole-v1 transitions, capacity {CAPACITY:,}, torch {torch.__version__}, 1 thread")
    print(f"{'operation':52} {'median us':>10} {'min':>8} {'max':>8}")
    for name, values in times.items():
        print(f"{name:52} {statistics.median(values):10.0f} {min(values):8.0f} {max(values):8.0f}")
    if "SB3 ReplayBuffer sample(256), 1-step" in times:
        sb3_us = statistics.median(times["SB3 ReplayBuffer sample(256), 1-step"])
        ratio = sb3_us / statistics.median(times["rlx ReplayBuffer sample(256), 1-step"])
        print(f"rlx uniform sample speed / SB3's: {ratio:.2f}x")
    print("0 passed, 0 failed (no targets measured here yet)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Replay-buffer costs: rlx's uniform and prioritized replay against Stable-Baselines3's.

Printed, from one run (CartPole-v1 transitions from 8 environments, capacity 1M, torch on
one thread, medians of interleaved rounds of 200 calls):

- microseconds for ``sample(256)`` from rlx's uniform ``ReplayBuffer`` (1-step and 3-step
  returns) and from SB3's ``ReplayBuffer`` (1 step; SB3 has no n-step or prioritized
  replay);
- microseconds for ``sample(256)`` plus ``update_priorities`` on rlx's
  ``PrioritizedReplay`` (1M transitions).

- bytes per stored transition for 84x84 uint8 frames stacked 4 deep, in rlx's
  ``FrameReplay`` (each frame once) against ``ReplayBuffer`` storing the stacked
  observation and next observation; target ratio <= 0.3. Measured from the storage
  tensors the buffers allocated once filled (random frames: the memory does not depend
  on what the frames show), divided by the capacity.

Run: ``python -m benchmarks.replay [--rounds 5] [--memory-only]``. Ends with
``N passed, M failed`` over the targets and exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.wrappers import FrameStackObservation

import rlx
from rlx.policies import make_policy
from rlx.policies.random import RandomPolicy
from rlx.replay import PrioritizedReplay, ReplayBuffer
from rlx.replay.frames import FrameReplay

CAPACITY, BATCH, CALLS = 1_000_000, 256, 200
FRAME_CAPACITY, FRAME_RATIO_TARGET = 4_000, 0.3


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


class RandomFrames(gym.Env):
    """84x84 uint8 frames of noise, in episodes of 500 steps (Atari-like lengths)."""

    observation_space = spaces.Box(0, 255, (84, 84), np.uint8)
    action_space = spaces.Discrete(4)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.integers(0, 256, (84, 84), dtype=np.uint8), {}

    def step(self, action):
        self.t += 1
        frame = self.np_random.integers(0, 256, (84, 84), dtype=np.uint8)
        return frame, 0.0, False, self.t >= 500, {}


def allocated_bytes(buffer: ReplayBuffer) -> int:
    """Bytes of every tensor the buffer holds, its storage and (FrameReplay) frames."""
    found: dict[int, int] = {}

    def walk(x) -> None:
        if isinstance(x, torch.Tensor):
            found[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
        elif isinstance(x, (dict, list, tuple)):
            for value in x.values() if isinstance(x, dict) else x:
                walk(value)

    walk(vars(buffer))
    return sum(found.values())


def frame_memory() -> dict[str, float]:
    """Bytes per transition of both buffers after filling them past their capacity with
    the same rollouts of 4-frame stacks from 4 environments."""
    agent = rlx.Agent(lambda: FrameStackObservation(RandomFrames(), 4), num_envs=4, seed=0)
    policy = RandomPolicy(agent.action_space)
    buffers = {
        "FrameReplay": FrameReplay(FRAME_CAPACITY, 4),
        "ReplayBuffer": ReplayBuffer(FRAME_CAPACITY),
    }
    for _ in range(FRAME_CAPACITY // 4 // 250 + 1):
        with torch.no_grad():
            rollout = agent(policy).steps(250)
        for buffer in buffers.values():
            buffer.add(rollout)
    return {name: allocated_bytes(b) / FRAME_CAPACITY for name, b in buffers.items()}


def timed(fn) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        fn()
    return (time.perf_counter() - start) / CALLS * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory-only", action="store_true", help="skip the timings")
    args = parser.parse_args()
    torch.set_num_threads(1)
    memory = frame_memory()
    memory_ratio = memory["FrameReplay"] / memory["ReplayBuffer"]
    passed = memory_ratio <= FRAME_RATIO_TARGET
    print(f"84x84 uint8 frames stacked 4 deep, capacity {FRAME_CAPACITY:,}, 4 environments")
    print(f"{'buffer':52} {'bytes per transition':>21}")
    for name, size in memory.items():
        print(f"{name:52} {size:21,.0f}")
    verdict = "pass" if passed else "FAIL"
    target = f"target <= {FRAME_RATIO_TARGET}"
    print(f"FrameReplay / ReplayBuffer: {memory_ratio:.3f} ({target}): {verdict}")
    if args.memory_only:
        print(f"{int(passed)} passed, {int(not passed)} failed")
        return 0 if passed else 1
    print()
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
    print(f"{int(passed)} passed, {int(not passed)} failed")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())

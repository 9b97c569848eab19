"""SAC throughput and MuJoCo returns: rlx against Stable-Baselines3, side by side.

1. *Pendulum-v1 throughput*: SAC with Stable-Baselines3's defaults (two 256-unit ReLU
   layers for actor and each of two critics, batch 256, one update per environment
   step, learning rate 3e-4, automatic temperature, 100 random steps first), for rlx
   and SB3 configured identically; steps per second over the same number of steps, in
   rounds that alternate between them (this machine is noisy). Target: rlx >= 1.5x SB3.
2. *HalfCheetah-v5* (MuJoCo): SAC with the same settings (10,000 random steps first, as
   the Zoo) for ``--cheetah-steps`` steps each: the mean return of 10 deterministic
   episodes at the end and steps/s, printed side by side (no target).

Torch runs on one thread for both. Run: ``python -m benchmarks.speed_qpg [--steps 6000]
[--rounds 3] [--cheetah-steps 50000]`` (``--cheetah-steps 0`` skips part 2). Needs
``stable-baselines3`` and MuJoCo (``pip install -e ".[bench,mujoco]"``). Exits non-zero
when the throughput target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium as gym
import numpy as np
import torch

import rlx
from benchmarks.speed_pg import RlxTrainer, SB3Trainer, compare, has_sb3
from rlx.algos.qpg import SAC, SACConfig

TARGET = 1.5


class RlxSAC(RlxTrainer):
    def __init__(self, env: str, learning_starts: int, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.agent = rlx.Agent(env, seed=seed)
        config = SACConfig(learning_starts=learning_starts, lr=3e-4)
        policy = SAC.default_policy(self.agent.observation_space, self.agent.action_space,
                                    config, hidden=256)  # fmt: skip
        self.algo = SAC(self.agent, policy, config)

    def evaluate(self, env: str, episodes: int = 10) -> float:
        agent = rlx.Agent(env, num_envs=episodes, seed=123)
        with torch.no_grad():
            rollout = agent(self.algo.policy).episode(1000, deterministic=True)
        return rollout.rewards.double().sum(0).mean().item()


class SB3SAC(SB3Trainer):
    def __init__(self, env: str, learning_starts: int, seed: int = 0) -> None:
        from stable_baselines3 import SAC as SB3Algo

        self.model = SB3Algo("MlpPolicy", gym.make(env), learning_starts=learning_starts,
                             seed=seed, device="cpu")  # fmt: skip

    def evaluate(self, env: str, episodes: int = 10) -> float:
        e = gym.make(env)
        returns = []
        for k in range(episodes):
            obs, _ = e.reset(seed=123 + k)
            total, done = 0.0, False
            while not done:
                action, _ = self.model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = e.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6000, help="Pendulum steps per variant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cheetah-steps", type=int, default=50_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not has_sb3():
        return 2
    variants = {"sb3": SB3SAC("Pendulum-v1", 100), "rlx": RlxSAC("Pendulum-v1", 100)}
    for model in variants.values():  # past the random steps, into steady training
        model.train(200)
    rates = compare(variants, args.steps, args.rounds)
    ratio = rates["rlx"] / rates["sb3"]
    print(f"SAC, Pendulum-v1, SB3 defaults, torch {torch.__version__}, 1 thread, seed 0, "
          f"{args.steps:,} steps per variant in {args.rounds} interleaved rounds")  # fmt: skip
    print(f"{'variant':10} {'steps/s':>9}")
    for name, rate in rates.items():
        print(f"{name:10} {rate:>9.1f}")
    ok = ratio >= TARGET
    print(f"ratio rlx / SB3: {ratio:.2f} (target >= {TARGET}x): {'pass' if ok else 'FAIL'}")

    if args.cheetah_steps:
        print(f"\nSAC, HalfCheetah-v5, {args.cheetah_steps:,} steps (10,000 random first), seed 0")
        print(f"{'variant':10} {'steps/s':>9} {'return (10 deterministic episodes)':>36}")
        for name, cls in (("sb3", SB3SAC), ("rlx", RlxSAC)):
            model = cls("HalfCheetah-v5", 10_000)
            start = time.perf_counter()
            done = model.train(args.cheetah_steps)
            rate = done / (time.perf_counter() - start)
            print(f"{name:10} {rate:>9.1f} {model.evaluate('HalfCheetah-v5'):>36.1f}", flush=True)
    print(f"{int(ok)} passed, {int(not ok)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

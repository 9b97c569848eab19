"""Sampling throughput: ``agent(policy).steps(128)`` against a plain hand-written loop.

Setting (issue target): a 2x64 tanh MLP policy on 8 CartPole-v1 environments (gymnasium's
vector implementation), 128-step batches, torch on one thread. The hand-written loop does
what a user would write: one torch forward and one ``Categorical`` sample per step, then
``env.step``. It is timed twice, with torch.distributions argument validation on (torch's
default) and off; the target compares rlx with the faster of the two.

Variants are interleaved over several rounds and the median of the per-round ratios is
reported, because this machine is noisy. Also printed: the cost of one
``Categorical.sample`` at batch 8 with validation on and off, and rlx's sampler.

Run: ``python benchmarks/sampling.py [--rounds 9] [--batches 12]``. Exits non-zero when a
target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit

import gymnasium as gym
import torch
from torch import nn
from torch.distributions import Categorical, Distribution

import rlx

TARGET_RATIO = 0.9
NUM_ENVS, HORIZON = 8, 128


def mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2)
    )


class Policy(rlx.Parametric):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *states):
        _, obs = states
        return None, rlx.ActionDistribution(Categorical(logits=self.net(obs)))


def hand_loop(net: nn.Module, batches: int, validate: bool) -> float:
    """Steps per second of the plain loop."""
    saved = Distribution._validate_args
    Distribution.set_default_validate_args(validate)
    env = gym.make_vec("CartPole-v1", num_envs=NUM_ENVS)
    obs, _ = env.reset(seed=0)
    try:
        with torch.no_grad():
            start = time.perf_counter()
            for _ in range(batches * HORIZON):
                action = Categorical(logits=net(torch.as_tensor(obs))).sample()
                obs, reward, terminated, truncated, _ = env.step(action.numpy())
            elapsed = time.perf_counter() - start
    finally:
        Distribution.set_default_validate_args(saved)
        env.close()
    return batches * HORIZON * NUM_ENVS / elapsed


def rlx_loop(policy: Policy, batches: int, dry: bool) -> float:
    agent = rlx.Agent("CartPole-v1", num_envs=NUM_ENVS, seed=0)
    with torch.no_grad():
        agent(policy).steps(HORIZON, dry=dry)  # warm-up: first reset
        start = time.perf_counter()
        for _ in range(batches):
            agent(policy).steps(HORIZON, dry=dry)
        elapsed = time.perf_counter() - start
    agent.close()
    return batches * HORIZON * NUM_ENVS / elapsed


def sample_costs() -> dict[str, float]:
    logits = torch.randn(NUM_ENVS, 2)
    costs = {}
    saved = Distribution._validate_args
    for validate in (True, False):
        Distribution.set_default_validate_args(validate)
        dist = Categorical(logits=logits)
        n = 5000
        key = "on" if validate else "off"
        costs[f"Categorical(logits) + .sample(), validation {key}"] = (
            min(timeit.repeat(lambda: Categorical(logits=logits).sample(), number=n, repeat=3)) / n
        )
        costs[f"Categorical.sample() alone, validation {key}"] = (
            min(timeit.repeat(dist.sample, number=n, repeat=3)) / n
        )
    Distribution.set_default_validate_args(False)
    joint = rlx.ActionDistribution(Categorical(logits=logits))
    costs["rlx ActionDistribution.sample()"] = (
        min(timeit.repeat(joint.sample, number=n, repeat=3)) / n
    )
    net = mlp()
    obs = torch.randn(NUM_ENVS, 4)
    with torch.no_grad():
        costs["2x64 MLP forward (reference)"] = (
            min(timeit.repeat(lambda: net(obs), number=n, repeat=3)) / n
        )
    Distribution.set_default_validate_args(saved)
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batches", type=int, default=12, help="128-step batches per timing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = mlp()
    policy = Policy(net)

    variants = {
        "hand loop, validation on": lambda: hand_loop(net, args.batches, True),
        "hand loop, validation off": lambda: hand_loop(net, args.batches, False),
        "rlx steps(128)": lambda: rlx_loop(policy, args.batches, dry=False),
        "rlx steps(128, dry=True)": lambda: rlx_loop(policy, args.batches, dry=True),
    }
    rates: dict[str, list[float]] = {k: [] for k in variants}
    ratios: list[float] = []
    ratios_dry: list[float] = []
    for run in variants.values():  # warm-up round, not counted
        run()
    start = time.perf_counter()
    for _ in range(args.rounds):
        for name, run in variants.items():
            rates[name].append(run())
        best_hand = max(
            rates["hand loop, validation on"][-1], rates["hand loop, validation off"][-1]
        )
        ratios.append(rates["rlx steps(128)"][-1] / best_hand)
        ratios_dry.append(rates["rlx steps(128, dry=True)"][-1] / best_hand)
    wall = time.perf_counter() - start

    print(
        f"torch {torch.__version__}, gymnasium {gym.__version__}, 1 thread, "
        f"{NUM_ENVS} x CartPole-v1, 2x64 MLP, seed 0"
    )
    print(
        f"{args.rounds} rounds x {args.batches} batches x {HORIZON} steps x {NUM_ENVS} envs "
        f"= {args.batches * HORIZON * NUM_ENVS} env steps per timing; wall {wall:.0f} s\n"
    )
    print(f"{'variant':32s} {'median steps/s':>15s} {'min':>9s} {'max':>9s}")
    for name, values in rates.items():
        print(
            f"{name:32s} {statistics.median(values):15,.0f} {min(values):9,.0f} {max(values):9,.0f}"
        )
    ratio, ratio_dry = statistics.median(ratios), statistics.median(ratios_dry)
    print(
        f"\nratio rlx / faster hand loop (median of rounds): {ratio:.3f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(f"ratio rlx dry / faster hand loop:                {ratio_dry:.3f}")

    print(f"\n{'one call at batch 8':52s} {'us':>8s}")
    for name, seconds in sample_costs().items():
        print(f"{name:52s} {seconds * 1e6:8.1f}")

    passed = int(ratio >= TARGET_RATIO)
    print(
        f"\ntarget: rlx steps(128) >= {TARGET_RATIO} x hand loop: "
        f"{'passed' if passed else 'MISSED'} ({ratio:.3f})"
    )
    print(f"{passed} passed, {1 - passed} failed")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""Sampling throughput: ``agent(policy).steps(128)`` against a plain hand-written loop.

Setting (issue target): a 2x64 tanh MLP policy on 8 CartPole-v1 environments (gymnasium's
vector implementation), 128-step batches, torch on one thread. The hand-written loop does
what a user would write: one torch forward and one ``Categorical`` sample per step, then
``env.step``. It is timed twice, with torch.distributions argument validation on (torch's
default) and off; the target compares rlx with the faster of the two.

Variants are interleaved over several rounds and the median of the per-round ratios is
reported, because this machine is noisy. Also printed: the cost of one
``Categorical.sample`` at batch 8 with validation on and off, and rlx's sampler.

The parallel sampler (2 worker processes) is compared with the serial one on a slow
CartPole (1 ms of computation per step), and the alternating sampler with the parallel
one (same 2 workers; each alternating worker holds a share of both halves): with the
2x64 MLP on that CartPole, whose acting is cheap next to stepping (it must not be
slower), and with a CNN on 4x84x84 image observations (16 environments), whose acting
for a half costs as much as the half's step (target 1.3x): each image environment's
step takes the CNN's measured acting time for a half divided by the half's 8
environments. There the environment *waits* (sleeps) for its step, as a simulator in
another process or machine, a robot or a game server does: the alternating sampler
overlaps acting with stepping. With busy-looping environments it cannot on this 2-core
machine: its 2 workers and the main process's acting compete for the two cores (the
parallel sampler's main process steps environments itself while its one worker steps
the rest; rlpyt built the alternating sampler to overlap GPU acting with CPU
environments). Printed for information: the CNN case with busy environments, and the
MLP on a CartPole that waits 1 ms a step.

Run: ``python -m benchmarks.sampling [--rounds 9] [--batches 12]``. Exits non-zero when a
target is missed.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
import timeit

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution

import rlx
from benchmarks.report import verdict

TARGET_RATIO = 0.9
NUM_ENVS, HORIZON = 8, 128
PARALLEL_TARGET = 1.7  # parallel sampler, 2 workers, over serial, on the slow environment
STEP_COST, SLOW_HORIZON, SLOW_WORKERS = 1e-3, 128, 2
ALTERNATING_TARGET = 1.3  # alternating over parallel sampler, CNN policy on images
IMAGE_SHAPE, IMAGE_ENVS = (4, 84, 84), 16  # each half: 8 images, stepped as long as acting for them


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


def rlx_loop(policy: Policy, batches: int, dry: bool, vectorization: str | None = None) -> float:
    agent = rlx.Agent("CartPole-v1", num_envs=NUM_ENVS, seed=0, vectorization=vectorization)
    with torch.no_grad():
        agent(policy).steps(HORIZON, dry=dry)  # warm-up: first reset
        start = time.perf_counter()
        for _ in range(batches):
            agent(policy).steps(HORIZON, dry=dry)
        elapsed = time.perf_counter() - start
    agent.close()
    return batches * HORIZON * NUM_ENVS / elapsed


class SlowCartPole(gym.Wrapper):
    """CartPole whose step also computes for ``STEP_COST`` seconds: a busy loop, not a
    sleep, so that parallel workers need real cores, as a physics simulator would."""

    def step(self, action):
        end = time.perf_counter() + STEP_COST
        while time.perf_counter() < end:
            pass
        return self.env.step(action)


def slow_cartpole() -> gym.Env:
    return SlowCartPole(gym.make("CartPole-v1"))


class WaitingCartPole(gym.Wrapper):
    """CartPole whose step also waits (sleeps) ``STEP_COST`` seconds."""

    def step(self, action):
        time.sleep(STEP_COST)
        return self.env.step(action)


def waiting_cartpole() -> gym.Env:
    return WaitingCartPole(gym.make("CartPole-v1"))


def slow_env_rates(policy: Policy, rounds: int, batches: int) -> tuple[list[float], list[float]]:
    """Steps/s of the serial and the parallel sampler on the slow environment, per round."""
    serial = rlx.Agent(slow_cartpole, num_envs=NUM_ENVS, seed=0, vectorization="sync")
    parallel = rlx.Agent(
        slow_cartpole, num_envs=NUM_ENVS, seed=0, sampler="parallel", workers=SLOW_WORKERS
    )
    rates: tuple[list[float], list[float]] = ([], [])
    try:
        with torch.no_grad():
            for agent in (serial, parallel):
                agent(policy).steps(SLOW_HORIZON)  # warm-up
            for _ in range(rounds):
                for agent, out in zip((serial, parallel), rates, strict=True):
                    start = time.perf_counter()
                    for _ in range(batches):
                        agent(policy).steps(SLOW_HORIZON)
                    out.append(batches * SLOW_HORIZON * NUM_ENVS / (time.perf_counter() - start))
    finally:
        serial.close()
        parallel.close()
    return rates


class SlowImages(gym.Env):
    """Image observations (uint8 frames, ``IMAGE_SHAPE``) and ``cost`` seconds per step,
    like a slow simulator that renders: spent waiting (``waits``: the simulation runs
    elsewhere) or computing (a busy loop); episodes of 500 steps."""

    observation_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    action_space = gym.spaces.Discrete(4)

    def __init__(self, cost: float, waits: bool) -> None:
        self.cost, self.waits = cost, waits
        self.t, self.frame = 0, np.zeros(self.observation_space.shape, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.frame[:] = self.np_random.integers(0, 255, self.frame.shape, dtype=np.uint8)
        return self.frame, {}

    def step(self, action):
        if self.waits:
            time.sleep(self.cost)
        else:
            end = time.perf_counter() + self.cost
            while time.perf_counter() < end:
                pass
        self.t += 1
        self.frame[:, self.t % 84] = (self.t * (int(action) + 1)) % 255
        return self.frame, float(action == self.t % 4), False, self.t >= 500, {}


class ConvPolicy(rlx.Parametric):
    """The Nature DQN network's convolutions and a 512-unit layer, as a policy."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(4, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(),
            nn.Linear(512, 4),
        )  # fmt: skip

    def forward(self, *states):
        _, obs = states
        logits = self.net(obs.float() / 255)
        return None, rlx.ActionDistribution(Categorical(logits=logits))


def act_cost(policy: rlx.Parametric, batch: int) -> float:
    """Seconds for one forward and sample at ``batch`` image observations."""
    obs = torch.zeros(batch, *IMAGE_SHAPE, dtype=torch.uint8)
    with torch.no_grad():
        return min(timeit.repeat(lambda: policy(None, obs)[1].sample(), number=20, repeat=3)) / 20


def sampler_rates(
    make, policy: rlx.Parametric, rounds: int, num_envs: int = NUM_ENVS
) -> tuple[list[float], list[float]]:
    """Steps/s of the parallel and the alternating sampler (same workers), per round."""
    agents = [
        rlx.Agent(make, num_envs=num_envs, seed=0, sampler=kind, workers=SLOW_WORKERS)
        for kind in ("parallel", "alternating")
    ]
    rates: tuple[list[float], list[float]] = ([], [])
    try:
        with torch.no_grad():
            for agent in agents:
                agent(policy).steps(SLOW_HORIZON, dry=True)  # warm-up
            for _ in range(rounds):
                for agent, out in zip(agents, rates, strict=True):
                    start = time.perf_counter()
                    agent(policy).steps(SLOW_HORIZON, dry=True)
                    out.append(SLOW_HORIZON * num_envs / (time.perf_counter() - start))
    finally:
        for agent in agents:
            agent.close()
    return rates


def median_ratio(parallel: list[float], alternating: list[float]) -> float:
    """The median over rounds of alternating / parallel steps/s."""
    return statistics.median(a / p for p, a in zip(parallel, alternating, strict=True))


def slow_agent() -> rlx.Agent:
    return rlx.Agent(slow_cartpole, num_envs=NUM_ENVS, seed=0, vectorization="sync")


def ppo_throughput(asynchronous: bool, iterations: int) -> float:
    """Training steps/s of PPO on the slow environment, sampling in or out of process."""
    from rlx.algos.pg import PPO
    from rlx.policies import make_policy
    from rlx.sampling import AsyncSampler

    torch.manual_seed(0)
    agent = slow_agent()
    policy = make_policy(agent.observation_space, agent.action_space)
    config = PPO.Config(num_envs=NUM_ENVS, steps=SLOW_HORIZON, epochs=4, minibatches=4)
    ppo = PPO(agent, policy, config)
    if asynchronous:
        ppo.sampler = AsyncSampler(slow_agent, policy, config.steps)
    try:
        ppo.iteration()  # warm-up (the sampling process starts)
        start = time.perf_counter()
        for _ in range(iterations):
            ppo.iteration()
        return iterations * config.steps * NUM_ENVS / (time.perf_counter() - start)
    finally:
        if ppo.sampler is not None:
            ppo.sampler.close()
        agent.close()


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

    try:
        import envpool  # noqa: F401

        pool_ratios = []
        for _ in range(max(3, args.rounds // 3)):
            gym_rate = rlx_loop(policy, args.batches, dry=False)
            pool_ratios.append(rlx_loop(policy, args.batches, False, "envpool") / gym_rate)
        print(
            f"\nEnvPool / gymnasium vector env, rlx steps(128), {NUM_ENVS} x CartPole-v1 "
            f"(median of rounds): {statistics.median(pool_ratios):.2f} "
            f"(rounds: {', '.join(f'{r:.2f}' for r in pool_ratios)})"
        )
    except ImportError:
        print("\nEnvPool: not installed (pip install 'rlx[envpool]'); ratio not measured")

    serial, parallel = slow_env_rates(policy, max(3, args.rounds // 3), 1)
    speedups = [p / s for s, p in zip(serial, parallel, strict=True)]
    speedup = statistics.median(speedups)
    print(
        f"\nslow environment: {NUM_ENVS} x CartPole-v1 + {STEP_COST * 1e3:.0f} ms of computation "
        f"per step, steps({SLOW_HORIZON})"
    )
    print(f"{'serial sampler':32s} {statistics.median(serial):15,.0f} steps/s")
    print(f"{f'parallel sampler, {SLOW_WORKERS} workers':32s} {statistics.median(parallel):15,.0f}"
          " steps/s")  # fmt: skip
    print(f"speed-up parallel / serial (median of rounds): {speedup:.2f} "
          f"(rounds: {', '.join(f'{r:.2f}' for r in speedups)})")  # fmt: skip

    # The alternating sampler: the same workers in two halves, the policy acting for one
    # while the other steps. Today's case (the 2x64 MLP) and one where acting costs about
    # as much as stepping (a CNN on image observations).
    mlp_parallel, mlp_alternating = sampler_rates(slow_cartpole, policy, max(3, args.rounds // 3))
    wait_parallel, wait_alternating = sampler_rates(waiting_cartpole, policy,
                                                    max(3, args.rounds // 3))  # fmt: skip
    cnn = ConvPolicy()
    act_half, act_all = act_cost(cnn, IMAGE_ENVS // 2), act_cost(cnn, IMAGE_ENVS)
    image_cost = act_half / (IMAGE_ENVS // 2)  # a half's step costs its acting
    cnn_rates = {
        waits: sampler_rates(functools.partial(SlowImages, image_cost, waits), cnn,
                             max(3, args.rounds // 3), IMAGE_ENVS)
        for waits in (True, False)
    }  # fmt: skip
    cnn_parallel, cnn_alternating = cnn_rates[True]
    busy_parallel, busy_alternating = cnn_rates[False]
    mlp_ratio = median_ratio(mlp_parallel, mlp_alternating)
    wait_ratio = median_ratio(wait_parallel, wait_alternating)
    cnn_ratio = median_ratio(cnn_parallel, cnn_alternating)
    busy_ratio = median_ratio(busy_parallel, busy_alternating)
    print(f"\nalternating sampler, {SLOW_WORKERS} workers: {NUM_ENVS} CartPoles for the MLP "
          f"({STEP_COST * 1e3:.0f} ms per step); {IMAGE_ENVS} image environments "
          f"for the CNN, each step {image_cost * 1e3:.2f} ms (a half of {IMAGE_ENVS // 2} "
          f"steps as long as acting for it)")  # fmt: skip
    print(f"{'case':52s} {'parallel':>10s} {'alternating':>12s} {'ratio':>6s}")
    for name, par, alt, r in (
        ("2x64 MLP, busy CartPole (acting << stepping)", mlp_parallel, mlp_alternating,
         mlp_ratio),
        ("2x64 MLP, CartPole that waits (information)", wait_parallel, wait_alternating,
         wait_ratio),
        ("CNN, images, environments that wait", cnn_parallel, cnn_alternating, cnn_ratio),
        ("CNN, images, busy environments (information)", busy_parallel, busy_alternating,
         busy_ratio),
    ):  # fmt: skip
        print(f"{name:52s} {statistics.median(par):10,.0f} {statistics.median(alt):12,.0f} "
              f"{r:6.3f}")  # fmt: skip
    print(
        f"CNN acting: {act_half * 1e3:.1f} ms at batch {IMAGE_ENVS // 2}, "
        f"{act_all * 1e3:.1f} ms at batch {IMAGE_ENVS}"
    )

    sync_rate, async_rate = ppo_throughput(False, 6), ppo_throughput(True, 6)
    print(
        f"PPO on the slow environment ({NUM_ENVS} envs x {SLOW_HORIZON} steps, 4 epochs): "
        f"sync {sync_rate:,.0f} steps/s, async {async_rate:,.0f} steps/s, "
        f"ratio {async_rate / sync_rate:.2f}"
    )

    checks = [
        (f"rlx steps(128) >= {TARGET_RATIO} x hand loop", ratio, ratio >= TARGET_RATIO),
        (f"parallel >= {PARALLEL_TARGET} x serial, slow environment", speedup,
         speedup >= PARALLEL_TARGET),
        (f"alternating >= {ALTERNATING_TARGET} x parallel, CNN on images", cnn_ratio,
         cnn_ratio >= ALTERNATING_TARGET),
        ("alternating not slower than parallel, 2x64 MLP", mlp_ratio, mlp_ratio >= 1.0),
    ]  # fmt: skip
    return verdict([(name, f"{value:.3f}", ok) for name, value, ok in checks])


if __name__ == "__main__":
    sys.exit(main())

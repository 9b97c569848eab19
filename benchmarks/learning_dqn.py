"""Learning curves of the deep Q-learning family against the targets of their issue.

Each case trains one algorithm with its ready Q-network on fixed seeds for a budget of
environment steps. Training episodes explore (ε-greedy or noisy layers), so the final
return is the mean of 10 greedy episodes on separate environments, the measure the
RL Baselines3 Zoo reports; cases are also evaluated every 5,000 steps, and "reached at"
is the first evaluation at or above the target (see ``learning.py``). Run: ``python -m
benchmarks.learning_dqn [--only dqn-cartpole] [--seeds 0 1 2] [--set lr=1e-3]``.
Exits non-zero when a target is missed.

``dqn-lunarlander`` runs only when named (``--only dqn-lunarlander``; it needs ``pip
install -e ".[bench]"`` for Box2D and Stable-Baselines3): rlx's DQN and SB3's side by
side on LunarLander-v3 at the Zoo's DQN settings for LunarLander (``hyperparams/dqn.yml``:
100k steps, lr 6.3e-4, batches of 128, a 50k replay, learning from the first step, γ
0.99, the target copied every 250 steps, 4 updates every 4 steps, ε from 1 to 0.1 over
the first 12% of the run, a 256x256 network). Both are judged the same way: the mean
return of 10 greedy episodes on LunarLander-v3 seeded ``seed + 1000``, played by rlx's
own evaluation (SB3's trained network copied into an rlx Q-network of the same shape),
every 10,000 steps and at the end. Target: rlx's median at least SB3's median minus a
tenth of its size (0.9 x SB3's median when that is positive, as it is when SB3 learns;
were it negative, rlx could be at most 10% of it lower). ``--set`` changes rlx's side
only; ``--budget`` both. Where rlx's options differ from SB3's:

- the target update period counts gradient steps in rlx and environment steps in SB3;
  with one update per environment step both copy every 250 steps (rlx after its 250th
  update, at step 252; SB3 at step 250, 248 updates in).
- ε: SB3's linear schedule over 12% of the budget is ``linear(1.0, 0.1, 12_000)``; SB3
  acts greedily on the very first step (its ε is 0 until the first step's callback).
- Adam's eps: 1e-8 on both sides, torch's default, which SB3's DQN keeps (rlx's default
  is 1e-5: ``adam_eps=1e-8`` here). It matters at this budget: with 1e-5, rlx's seeds
  ended at 77, 66 and 170.
- Double DQN is off (``double=False``), as in SB3's DQN; both use the Huber loss and
  clip the gradient norm at 10, and the same ReLU MLP with torch's default init.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from benchmarks.learning import (
    WINDOW,
    Case,
    evaluate,
    main,
    parse_sets,
    run_jobs,
    select,
    train,
)
from rlx.algos.registry import algorithm_class
from rlx.schedules import linear

__all__ = ["CASES", "VERSUS", "train", "train_sb3"]

# The Zoo's CartPole-v1 DQN settings: bursts of 128 updates every 256 steps, a 256x256
# network, ε from 1 to 0.04 over the first 8,000 steps.
CARTPOLE = dict(
    lr=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1_000, steps=256,
    gradient_steps=128, target_update_interval=128, epsilon=linear(1.0, 0.04, 8_000),
)  # fmt: skip

CASES = [
    # The learning rate annealed to zero over the budget: at a constant rate the greedy
    # policy swings between 100 and 500 until the end, so the final evaluation depended
    # on the processor's rounding (268.6 vs 500.0 for one seed on two kernel paths).
    Case("dqn-cartpole", "dqn", "CartPole-v1", 50_000, 475.0,
         options=dict(CARTPOLE, anneal_lr=True),
         policy_options=dict(hidden=256), evaluate=True),
    Case("rainbow-cartpole", "rainbow", "CartPole-v1", 50_000, 475.0,
         options=dict(CARTPOLE, epsilon=0.0, v_min=0.0, v_max=200.0),
         policy_options=dict(hidden=256), evaluate=True),
    Case("c51-cartpole", "c51", "CartPole-v1", 100_000, 475.0,
         options=dict(CARTPOLE, v_min=0.0, v_max=200.0),
         policy_options=dict(hidden=256), evaluate=True),
    Case("r2d2-gru-incomplete-cartpole", "r2d2", "IncompleteCartPole-v1", 200_000, 450.0,
         policy="gru", options=dict(gradient_steps=8, lr=2e-3, dueling=True,
         target_update_interval=100, epsilon=linear(1.0, 0.02, 20_000)),
         evaluate=True, eval_every=10_000),
]  # fmt: skip

# The Zoo's DQN settings for LunarLander, as SB3 takes them and as rlx's DQN options
# (examples/rlmodels_quickstart.py --env LunarLander-v3 trains with the latter).
SB3_LUNAR = dict(
    learning_rate=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0, gamma=0.99,
    target_update_interval=250, train_freq=4, gradient_steps=-1, exploration_fraction=0.12,
    exploration_final_eps=0.1, policy_kwargs=dict(net_arch=[256, 256]),
)  # fmt: skip
LUNAR = dict(
    lr=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0, gamma=0.99,
    target_update_interval=250, steps=4, gradient_steps=4, epsilon=linear(1.0, 0.1, 12_000),
    double=False, adam_eps=1e-8,
)  # fmt: skip


@dataclass(frozen=True)
class Versus:
    """A case that rlx and Stable-Baselines3 train side by side; rlx passes when its
    median final return is at least ``ratio`` of SB3's (see the module's docstring)."""

    case: Case
    """rlx's side (its own ``target`` unused)."""
    sb3: dict[str, Any] = field(default_factory=dict)
    """Arguments of SB3's algorithm."""
    ratio: float = 0.9

    @property
    def name(self) -> str:
        return self.case.name

    def target(self, sb3_median: float) -> float:
        return sb3_median - (1.0 - self.ratio) * abs(sb3_median)


VERSUS = [
    Versus(Case("dqn-lunarlander", "dqn", "LunarLander-v3", 100_000, None, options=LUNAR,
                policy_options=dict(hidden=256), evaluate=True, eval_every=10_000),
           sb3=SB3_LUNAR),
]  # fmt: skip


def train_sb3(case: Case, sb3: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train SB3's DQN on one seed and judge it as :func:`train` judges rlx's: the same
    evaluation episodes, played by rlx's Q-network holding SB3's weights."""
    import gymnasium as gym
    from stable_baselines3 import DQN as SB3DQN
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)
    cls = algorithm_class(case.algo)
    model = SB3DQN("MlpPolicy", gym.make(case.env), seed=seed, device="cpu", **sb3)
    env = model.get_env()
    greedy = cls.default_policy(
        env.observation_space, env.action_space, cls.Config(**case.options),
        **case.policy_options,
    )  # fmt: skip
    theirs = [m for m in model.q_net.modules() if isinstance(m, torch.nn.Linear)]
    ours = [m for m in greedy.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.weight.shape for m in theirs] == [m.weight.shape for m in ours]

    def score() -> float:
        with torch.no_grad():
            for src, dst in zip(theirs, ours, strict=True):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
        return evaluate(case, greedy, seed + 1000)

    curve: list[tuple[int, float]] = []

    class Every(BaseCallback):
        next_eval = case.eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                curve.append((self.num_timesteps, score()))
                while self.next_eval <= self.num_timesteps:
                    self.next_eval += case.eval_every
            return True

    start = time.perf_counter()
    model.learn(case.budget, callback=Every())
    final = score()
    seconds = time.perf_counter() - start
    recent = [info["r"] for info in list(model.ep_info_buffer)[-WINDOW:]]
    return {
        "case": case.name,
        "seed": seed,
        "final": final,
        "online": sum(recent) / len(recent) if recent else float("nan"),
        "steps": model.num_timesteps,
        "seconds": seconds,
        "curve": curve,
    }


def _versus_job(job: tuple[str, Versus, int]) -> dict[str, Any]:
    side, versus, seed = job
    run = train_sb3(versus.case, versus.sb3, seed) if side == "sb3" else train(versus.case, seed)
    return {**run, "side": side}


def run_versus(argv: list[str] | None = None) -> int:
    """The command line for :data:`VERSUS` cases, as the harness's for :data:`CASES`:
    both sides on every seed, one table, ``N passed, M failed``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="override: key=value")
    parser.add_argument("--budget", type=int, default=None, help="override every budget")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--curves", action="store_true", help="print each run's curve")
    args = parser.parse_args(argv)
    chosen = select(parser, VERSUS, args.only)
    extra = parse_sets(args.set)
    if extra or args.budget:
        chosen = [
            replace(v, case=replace(v.case, options={**v.case.options, **extra},
                                    budget=args.budget or v.case.budget))
            for v in chosen
        ]  # fmt: skip
    jobs = [(side, v, s) for v in chosen for s in args.seeds for side in ("sb3", "rlx")]
    results, total = run_jobs(_versus_job, jobs, args.workers)

    header = f"{'case':18} {'side':4} {'env':15} {'budget':>8} {'target':>7} {'final (median)':>15}"
    header += f" {'per seed':>18} {'steps per seed':>25} {'wall s per seed':>17}  result"
    print(header)
    print("-" * len(header))
    passed = failed = 0
    for versus in chosen:
        case = versus.case
        rows = {side: [r for r in results if r["case"] == case.name and r["side"] == side]
                for side in ("sb3", "rlx")}  # fmt: skip
        medians = {side: statistics.median(r["final"] for r in rs) for side, rs in rows.items()}
        target = versus.target(medians["sb3"])
        ok = medians["rlx"] >= target
        passed, failed = passed + ok, failed + (not ok)
        for side, label, shown, verdict in (
            ("sb3", "SB3", "-", "(reference)"),
            ("rlx", "rlx", f"{target:.1f}", "pass" if ok else "FAIL"),
        ):
            rs = rows[side]
            seeds = " ".join(f"{r['final']:.0f}" for r in rs)
            steps = " ".join(f"{r['steps']:,}" for r in rs)
            wall = " ".join(f"{r['seconds']:.0f}" for r in rs)
            print(
                f"{case.name:18} {label:4} {case.env:15} {case.budget:>8,} {shown:>7}"
                f" {medians[side]:>15.1f} {seeds:>18} {steps:>25} {wall:>17}  {verdict}"
            )
        for side, label in (("sb3", "SB3"), ("rlx", "rlx")):
            online = " ".join(f"{r['online']:.0f}" for r in rows[side])
            wall = statistics.median(r["seconds"] for r in rows[side])
            print(f"    {label}: last {WINDOW} training episodes {online}; median wall {wall:.0f}s")
            if args.curves:
                for r in rows[side]:
                    points = " ".join(f"{s // 1000}k:{m:.0f}" for s, m in r["curve"])
                    print(f"    {label} seed {r['seed']}: {points}")
        print(f"    target: rlx's median >= SB3's {medians['sb3']:.1f} - "
              f"{1 - versus.ratio:g} x |{medians['sb3']:.1f}|")  # fmt: skip
    print("final: mean return of 10 greedy episodes (eval seed = seed + 1000), both sides")
    shown = [(v.name, v.case.options, v.sb3) for v in chosen] if extra else "as in VERSUS"
    print(f"seeds {args.seeds}; options {shown}")
    print(f"total wall time {total:.0f} s with {min(args.workers, len(results))} workers")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def cli(argv: list[str] | None = None) -> int:
    """:data:`CASES` through the harness, or the :data:`VERSUS` cases named in
    ``--only`` (the two kinds cannot be mixed in one run)."""
    argv = sys.argv[1:] if argv is None else argv
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--only", default="")
    names = set(filter(None, peek.parse_known_args(argv)[0].only.split(",")))
    versus = {v.name for v in VERSUS}
    known = [c.name for c in CASES] + sorted(versus)
    if names - set(known):
        peek.error(f"unknown cases {sorted(names - set(known))}; choose from {known}")
    if not names & versus:
        return main(CASES, __doc__.split("\n")[0])
    if names - versus:
        peek.error(f"run {sorted(names & versus)} apart from {sorted(names - versus)}")
    return run_versus(argv)


if __name__ == "__main__":
    sys.exit(cli())

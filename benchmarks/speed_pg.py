"""PPO training throughput: rlx against Stable-Baselines3 and against a hand-written loop.

Two comparisons, measured side by side in one run with torch on one thread for all:

1. *SB3 settings*: Stable-Baselines3's PPO with its defaults (2048 steps, minibatches of
   64, 10 epochs, lr 3e-4, 2x64 tanh actor and critic, one CartPole-v1 environment)
   against rlx's PPO configured identically. Target: rlx >= 3x SB3's steps/s.
2. *Hand-written loop*: a plain PPO loop written directly on torch and gymnasium (4
   environments x 128 steps, 4 epochs x 4 minibatches, the same networks and losses)
   against rlx's PPO with the same settings. Target: rlx >= 1.0x (no overhead).

Both comparisons also run rlx with its fast paths off (``rlx-plain``, plain PyTorch
throughout; no target), so the speed of both paths is printed side by side.

Every variant trains for the same number of environment steps, in rounds that
alternate between the variants (this machine is noisy); steps/s is the total steps
over the total time of each variant, and the ratio of those is the figure checked.

Run: ``python -m benchmarks.speed_pg [--steps 102400] [--rounds 5]``. Needs
``stable-baselines3`` (``pip install -e ".[bench]"``). Exits non-zero on a miss.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import gymnasium as gym
import torch
from torch import nn
from torch.distributions import Categorical

import rlx
from rlx.algos.pg import PPO
from rlx.policies import MLPPolicy

SB3_TARGET, HAND_TARGET = 3.0, 1.0
SB3 = dict(num_envs=1, steps=2048, epochs=10, minibatch=64)
HAND = dict(num_envs=4, steps=128, epochs=4, minibatch=128)


# ----------------------------------------------------------------------------- rlx
class RlxTrainer:
    """An rlx algorithm ``self.algo`` on ``self.agent``; ``train(n)`` runs whole
    iterations until ``n`` more environment steps are done."""

    agent: rlx.Agent
    algo: Any

    def train(self, n: int) -> int:
        start = self.agent.total_steps
        while self.agent.total_steps - start < n:
            self.algo.iteration()
        return self.agent.total_steps - start


class RlxPPO(RlxTrainer):
    """rlx's PPO with the given settings."""

    def __init__(self, num_envs: int, steps: int, epochs: int, minibatch: int) -> None:
        torch.manual_seed(0)
        self.agent = rlx.Agent("CartPole-v1", num_envs=num_envs, seed=0)
        policy = MLPPolicy(self.agent.observation_space, self.agent.action_space)
        config = PPO.Config(
            num_envs=num_envs,
            steps=steps,
            epochs=epochs,
            minibatches=num_envs * steps // minibatch,
            lr=3e-4,
            gamma=0.99,
            lam=0.95,
            clip=0.2,
            grad_clip=0.5,
        )
        self.algo = PPO(self.agent, policy, config)


class PlainRlxPPO(RlxPPO):
    """The same, built and trained with rlx's fast paths off (``rlx.fast_paths(False)``):
    the plain-PyTorch reference path, for its speed beside the fast one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with rlx.fast_paths(False):
            super().__init__(*args, **kwargs)

    def train(self, n: int) -> int:
        with rlx.fast_paths(False):
            return super().train(n)


# ---------------------------------------------------------------------- hand loop
def mlp(outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, outputs)
    )


class HandPPO:
    """PPO written out by hand on torch and a gymnasium vector environment."""

    def __init__(self, num_envs: int, steps: int, epochs: int, minibatch: int) -> None:
        torch.manual_seed(0)
        self.env = gym.make_vec(
            "CartPole-v1",
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
        )
        self.actor, self.critic = mlp(2), mlp(1)
        self.params = [*self.actor.parameters(), *self.critic.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=3e-4, eps=1e-5)
        self.T, self.B, self.epochs, self.minibatch = steps, num_envs, epochs, minibatch
        obs, _ = self.env.reset(seed=0)
        self.obs = torch.as_tensor(obs)

    def train(self, n: int) -> int:
        done_steps = 0
        T, B = self.T, self.B
        while done_steps < n:
            obs_buf = torch.zeros(T, B, 4)
            act_buf = torch.zeros(T, B, dtype=torch.long)
            rew_buf, done_buf = torch.zeros(T, B), torch.zeros(T, B)
            logp_buf, val_buf = torch.zeros(T, B), torch.zeros(T, B)
            with torch.no_grad():
                for t in range(T):
                    dist = Categorical(logits=self.actor(self.obs))
                    action = dist.sample()
                    obs_buf[t], act_buf[t] = self.obs, action
                    logp_buf[t] = dist.log_prob(action)
                    val_buf[t] = self.critic(self.obs).squeeze(-1)
                    obs, reward, term, trunc, _ = self.env.step(action.numpy())
                    rew_buf[t] = torch.as_tensor(reward)
                    done_buf[t] = torch.as_tensor(term | trunc)
                    self.obs = torch.as_tensor(obs)
                next_value = self.critic(self.obs).squeeze(-1)
                adv = torch.zeros(T, B)
                running = torch.zeros(B)
                for t in reversed(range(T)):
                    following = next_value if t == T - 1 else val_buf[t + 1]
                    alive = 1.0 - done_buf[t]
                    delta = rew_buf[t] + 0.99 * following * alive - val_buf[t]
                    running = delta + 0.99 * 0.95 * alive * running
                    adv[t] = running
                ret = adv + val_buf
            N = T * B
            o, a, lp = obs_buf.view(N, 4), act_buf.view(N), logp_buf.view(N)
            ad, rt = adv.view(N), ret.view(N)
            for _ in range(self.epochs):
                perm = torch.randperm(N)
                for i in range(0, N, self.minibatch):
                    idx = perm[i : i + self.minibatch]
                    dist = Categorical(logits=self.actor(o[idx]))
                    ratio = (dist.log_prob(a[idx]) - lp[idx]).exp()
                    mb_adv = ad[idx]
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                    clipped = ratio.clamp(0.8, 1.2)
                    policy_loss = -torch.min(ratio * mb_adv, clipped * mb_adv).mean()
                    value_loss = 0.5 * (self.critic(o[idx]).squeeze(-1) - rt[idx]).pow(2).mean()
                    loss = policy_loss + 0.5 * value_loss
                    self.opt.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(self.params, 0.5)
                    self.opt.step()
            done_steps += N
        return done_steps


# ---------------------------------------------------------------------------- SB3
class SB3Trainer:
    """A Stable-Baselines3 model ``self.model``; ``train(n)`` continues its learning for
    ``n`` more environment steps."""

    model: Any
    first = True

    def train(self, n: int) -> int:
        before = self.model.num_timesteps
        self.model.learn(n, reset_num_timesteps=self.first)
        self.first = False
        return self.model.num_timesteps - before


class SB3PPO(SB3Trainer):
    def __init__(self) -> None:
        from stable_baselines3 import PPO as SB3Algo

        self.model = SB3Algo("MlpPolicy", gym.make("CartPole-v1"), seed=0, device="cpu")


def compare(variants: dict, steps: int, rounds: int) -> dict[str, float]:
    """Steps/s of each variant over interleaved rounds of ``steps / rounds`` steps."""
    totals = {name: [0, 0.0] for name in variants}
    per_round = steps // rounds
    for _ in range(rounds):
        for name, model in variants.items():
            start = time.perf_counter()
            done = model.train(per_round)
            totals[name][0] += done
            totals[name][1] += time.perf_counter() - start
    return {name: n / seconds for name, (n, seconds) in totals.items()}


def has_sb3() -> bool:
    """Whether Stable-Baselines3 imports; says how to install it when not."""
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        print("stable-baselines3 is missing: pip install -e '.[bench]'")
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=102_400, help="steps per variant")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not has_sb3():
        return 2
    results = []
    sb3 = compare(
        {"sb3": SB3PPO(), "rlx": RlxPPO(**SB3), "hand": HandPPO(**SB3),
         "rlx-plain": PlainRlxPPO(**SB3)},
        args.steps, args.rounds,
    )  # fmt: skip
    results.append(("SB3 defaults (1 env x 2048, 10 epochs x mb 64)", sb3, "sb3", SB3_TARGET))
    hand = compare(
        {"hand": HandPPO(**HAND), "rlx": RlxPPO(**HAND), "rlx-plain": PlainRlxPPO(**HAND)},
        args.steps, args.rounds,
    )  # fmt: skip
    setting = "hand loop settings (4 envs x 128, 4 epochs x 4 mb)"
    results.append((setting, hand, "hand", HAND_TARGET))

    print(f"CartPole-v1, torch {torch.__version__}, 1 thread, seed 0, {args.steps:,} steps "
          f"per variant in {args.rounds} interleaved rounds")  # fmt: skip
    header = f"{'setting':52} {'variant':9} {'steps/s':>9} {'rlx ratio':>10} {'target':>7}  result"
    print(header)
    print("-" * len(header))
    passed = failed = 0
    for setting, rates, baseline, target in results:
        ratio = rates["rlx"] / rates[baseline]
        ok = ratio >= target
        passed, failed = passed + ok, failed + (not ok)
        for name, rate in rates.items():
            is_base = name == baseline
            cells = (f"{ratio:>10.2f} {target:>6.1f}x  {'pass' if ok else 'FAIL'}" if is_base
                     else f"{rates['rlx'] / rate:>10.2f}" if name != "rlx" else "")  # fmt: skip
            print(f"{setting:52} {name:9} {rate:>9,.0f} {cells}")
            setting = ""
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

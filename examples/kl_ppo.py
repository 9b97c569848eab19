"""PPO with an adaptive KL penalty instead of the clipped ratio (Schulman et al. 2017, sec. 4),
written with ``rollout.distributions`` and ``rlx.kl``; trains on CartPole-v1.

Run: python examples/kl_ppo.py [--iterations N] [--seed S]

Each iteration samples 8 x 128 steps, computes GAE advantages, and takes 4 epochs of
minibatch steps on ``-ratio * advantage + beta * KL(old || new)`` (with a small entropy
bonus and a value loss), the learning rate falling linearly to 0 over the run. After the
epochs, ``beta`` doubles when the mean KL between the policy before and after them
overshot 1.5 x its target, and halves when it fell below target / 1.5.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import rlx


def mlp(inputs: int, outputs: int, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
        nn.Linear(hidden, outputs),
    )  # fmt: skip


class PolicyValue(rlx.Parametric):
    def __init__(self, obs_dim: int, n_actions: int) -> None:
        super().__init__()
        self.actor, self.critic = mlp(obs_dim, n_actions), mlp(obs_dim, 1)

    def forward(self, *states):
        _, obs = states
        logits = self.actor(obs)
        return None, rlx.ActionDistribution(torch.distributions.Categorical(logits=logits)), \
            self.critic(obs)  # fmt: skip


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--kl-target", type=float, default=0.01)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    policy = PolicyValue(4, 2)
    agent = rlx.Agent("CartPole-v1", optimizer=torch.optim.Adam(policy.parameters(), lr=args.lr),
                      grad_clip=0.5, num_envs=8, seed=args.seed)  # fmt: skip
    beta, generator = 1.0, torch.Generator().manual_seed(args.seed)
    recent: list[float] = []
    for iteration in range(args.iterations):
        for group in agent.optimizer.param_groups:  # the learning rate falls linearly to 0
            group["lr"] = args.lr * (1 - iteration / args.iterations)
        with torch.no_grad():
            batch = agent(policy).steps(128)
            batch.gae(batch.others[0], gamma=0.99, lam=0.95)
        advantages = batch.standardize(batch.advantages)
        for _ in range(4):
            for idx in torch.randperm(8, generator=generator).split(2):
                old, new = batch[:, idx], agent(policy).evaluate(batch[:, idx])
                ratio = (new.logprobs - old.logprobs).exp()
                kl = rlx.kl(old.distributions, new.distributions)  # [T, B], per step
                loss = old.step_mean(-ratio * advantages[:, idx] + beta * kl
                                     - 0.01 * new.entropy) \
                    + 0.5 * old.step_mean((new.others[0] - old.returns).pow(2))  # fmt: skip
                agent.zero_grad()
                loss.backward()
                agent.step()
        with torch.no_grad():  # how far the whole update moved the policy
            moved = agent(policy).evaluate(batch)
            mean_kl = batch.step_mean(rlx.kl(batch.distributions, moved.distributions)).item()
        beta = beta * 2 if mean_kl > 1.5 * args.kl_target else beta
        beta = beta / 2 if mean_kl < args.kl_target / 1.5 else beta
        recent = (recent + [r for r, _ in agent.pop_episodes()])[-20:]
        mean_return = sum(recent) / max(len(recent), 1)
        print(f"iteration {iteration:3d}  KL {mean_kl:.4f}  beta {beta:6.3f}  "
              f"mean return {mean_return:6.1f}")  # fmt: skip
    agent.close()
    return mean_return


if __name__ == "__main__":
    main()

"""The rlx README's PPO snippet, inside a complete script that trains on CartPole-v1.

Run: python examples/readme_ppo.py [--iterations N] [--seed S]

Each iteration samples a batch of whole episodes, then takes ``k_epochs`` clipped
policy-gradient steps on them, exactly as the README shows.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.distributions import Categorical

import rlx


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, outputs),
    )


class PolicyValue(rlx.Parametric):
    """A feed-forward policy and a state-value baseline (separate networks)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.actor = mlp(obs_dim, hidden, n_actions)
        self.critic = mlp(obs_dim, hidden, 1)

    def forward(self, *states):
        recur_state, obs = states  # not recurrent: recur_state is None
        dist = rlx.ActionDistribution(Categorical(logits=self.actor(obs)))
        return None, dist, self.critic(obs)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--episodes", type=int, default=8, help="episodes per iteration")
    parser.add_argument("--horizon", type=int, default=500)
    parser.add_argument("--k-epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    policy = PolicyValue(4, 2)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    agent = rlx.Agent(
        "CartPole-v1", optimizer=optimizer, grad_clip=0.5, num_envs=args.episodes, seed=args.seed
    )
    clip, k_epochs = 0.2, args.k_epochs

    mean_return = 0.0
    for iteration in range(args.iterations):
        with torch.no_grad():
            base_rollout = agent(policy).episode(args.horizon)  # sample episodes as a 'Rollout'
        base_rewards, base_logprobs = base_rollout.rewards, base_rollout.logprobs
        base_returns = base_rollout.mc_returns(gamma=0.99)  # Monte-Carlo returns

        for _ in range(k_epochs):
            rollout = agent(policy).evaluate(base_rollout)  # re-evaluate against the policy
            logprobs, entropy = rollout.logprobs, rollout.entropy  # for all timesteps
            (values,) = rollout.others  # .. also 'value' estimates

            ratios = (logprobs - base_logprobs.detach()).exp()
            advantage = base_returns - values
            adv = advantage.detach()  # the policy loss does not train the values
            policyloss = -torch.min(ratios * adv, torch.clamp(ratios, 1 - clip, 1 + clip) * adv)
            valueloss = advantage.pow(2)
            loss = policyloss.sum() + 0.5 * valueloss.sum() - entropy.sum() * 0.01

            agent.zero_grad()
            loss.backward()
            agent.step()

        mean_return = base_rewards.sum(0).mean().item()
        steps = base_rollout.num_steps
        print(f"iteration {iteration:3d}  steps {steps:5d}  mean return {mean_return:7.1f}")
    agent.close()
    return mean_return


if __name__ == "__main__":
    main()

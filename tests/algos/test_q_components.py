"""ε-greedy exploration as an action component, and target networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rlx
from rlx.algos.target import TargetNetwork


class QPolicy(rlx.Parametric):
    """Q-values as the extra, ε-greedy actions."""

    def __init__(self, epsilon: float) -> None:
        super().__init__()
        self.q = nn.Linear(4, 2)
        self.epsilon = epsilon

    def forward(self, *states):
        _, obs = states
        q = self.q(obs)
        return None, rlx.ActionDistribution(rlx.EpsilonGreedy(q, self.epsilon)), q


def test_epsilon_greedy_mixes_the_greedy_and_uniform_actions():
    q = torch.tensor([[0.0, 3.0, 1.0, 2.0]]).expand(20_000, 4)
    d = rlx.EpsilonGreedy(q, 0.2)
    counts = torch.bincount(d.sample(), minlength=4).float() / 20_000
    torch.testing.assert_close(counts, torch.tensor([0.05, 0.85, 0.05, 0.05]), atol=0.01, rtol=0)
    assert (d.mode == 1).all()
    one = rlx.EpsilonGreedy(q[:1], 0.2)
    torch.testing.assert_close(one.log_prob(torch.tensor([1])), torch.log(torch.tensor([0.85])))
    assert rlx.EpsilonGreedy(q[:1], 0.0).entropy().item() == pytest.approx(0.0, abs=1e-6)


def test_a_q_network_samples_and_acts_greedily_through_the_agent():
    agent = rlx.Agent("CartPole-v1", num_envs=3, seed=0)
    policy = QPolicy(epsilon=0.5)
    with torch.no_grad():
        rollout = agent(policy).steps(40)
        greedy = agent(policy).steps(10, deterministic=True)
    (q,) = rollout.others
    assert q.shape == (40, 3, 2)
    chose_greedy = rollout.actions == q.argmax(-1)
    assert 0.6 < chose_greedy[rollout.valid].float().mean() < 0.9  # 0.75 expected
    (q2,) = greedy.others
    assert (greedy.actions == q2.argmax(-1))[greedy.valid].all()


def test_target_network_hard_and_polyak_updates():
    source = nn.Linear(3, 2)
    target = TargetNetwork(source)
    assert not any(p.requires_grad for p in target.parameters())
    pairs = zip(target.parameters(), source.parameters(), strict=True)
    assert all(a is not b for a, b in pairs)  # a copy, and the source is not registered
    x = torch.randn(5, 3)
    torch.testing.assert_close(target(x), source(x))
    before = target.target.weight.clone()
    with torch.no_grad():
        source.weight.add_(1.0)
    target.update(tau=0.25)
    torch.testing.assert_close(target.target.weight, before + 0.25)
    target.update()
    torch.testing.assert_close(target.target.weight, source.weight)
    with pytest.raises(ValueError, match="tau"):
        target.update(tau=0.0)

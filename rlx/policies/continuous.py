"""Ready networks for the Q-function policy gradients (DDPG, TD3, SAC) and their
exploration: a deterministic actor (DDPG, TD3) and a tanh-squashed Gaussian one (SAC),
critics of ``n`` Q-functions (feed-forward, or recurrent for partially observed tasks),
and Gaussian or Ornstein-Uhlenbeck exploration around a deterministic actor.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from rlx.core.components import Deterministic, TanhNormal
from rlx.core.distribution import ActionDistribution, categorical
from rlx.core.parametric import Parametric, extras_wanted
from rlx.policies.layers import flat_size, flatten, mlp
from rlx.tree import tree_map


def _box(space: spaces.Space, who: str) -> spaces.Box:
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        hint = (
            " For discrete actions use sac (it takes Discrete actions) or the deep Q-learning"
            " family (dqn, c51, rainbow, r2d2)."
            if isinstance(space, spaces.Discrete)
            else ""
        )
        raise TypeError(f"{who} needs a one-dimensional Box action space, got {space}.{hint}")
    if not space.is_bounded():
        raise ValueError(f"{who} needs finite action bounds, got {space}.")
    return space


class _Bounds(nn.Module):
    """The centre and half-width of an action Box, as buffers."""

    def __init__(self, space: spaces.Box) -> None:
        super().__init__()
        low = torch.as_tensor(space.low, dtype=torch.float32)
        high = torch.as_tensor(space.high, dtype=torch.float32)
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self.register_buffer("centre", (high + low) / 2)
        self.register_buffer("radius", (high - low) / 2)


class DeterministicActor(Parametric):
    """``mu(s) = centre + half * tanh(MLP(s))``: a deterministic action inside the Box."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 hidden: tuple[int, ...] = (256, 256)) -> None:  # fmt: skip
        super().__init__()
        box = _box(action_space, "DeterministicActor")
        self.observation_space = observation_space
        self.bounds = _Bounds(box)
        self.net = mlp(flat_size(observation_space), hidden, box.shape[0], activation="relu")

    def action(self, obs: Any) -> torch.Tensor:
        x = torch.tanh(self.net(flatten(self.observation_space, obs)))
        return self.bounds.centre + self.bounds.radius * x

    def forward(self, *states: Any):
        return None, ActionDistribution(Deterministic(self.action(states[1])))


class GaussianActor(Parametric):
    """SAC's policy: a tanh-squashed Gaussian over the action Box, mean and log-std from
    one MLP; for a Discrete action space a Categorical whose log-probabilities of every
    action come back as an extra ``[B, A]`` (discrete SAC needs them all)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 hidden: tuple[int, ...] = (256, 256), log_std_bounds: tuple[float, float]
                 = (-20.0, 2.0)) -> None:  # fmt: skip
        super().__init__()
        self.observation_space = observation_space
        self.discrete = isinstance(action_space, spaces.Discrete)
        if self.discrete:
            outputs = int(action_space.n)
        else:
            box = _box(action_space, "GaussianActor")
            self.bounds = _Bounds(box)
            outputs = 2 * box.shape[0]
        self.log_std_bounds = log_std_bounds
        self.net = mlp(flat_size(observation_space), hidden, outputs, activation="relu")

    def forward(self, *states: Any):
        y = self.net(flatten(self.observation_space, states[1]))
        if self.discrete:
            dist = categorical(y)
            if not extras_wanted():
                return None, ActionDistribution(dist)
            return None, ActionDistribution(dist), dist.logits
        mean, log_std = y.chunk(2, -1)
        std = log_std.clamp(*self.log_std_bounds).exp()
        return None, ActionDistribution(TanhNormal(mean, std, self.bounds.low, self.bounds.high))


class Critic(nn.Module):
    """``n`` independent Q-networks (ReLU MLPs): ``critic(obs, actions) -> [n, B]`` for a
    Box action space, ``critic(obs) -> [n, B, A]`` for a Discrete one. Observations and
    actions may carry any leading dimensions (``[T, N, ...]`` from a replay sample)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 hidden: tuple[int, ...] = (256, 256), n: int = 2) -> None:  # fmt: skip
        super().__init__()
        self.observation_space = observation_space
        self.discrete = isinstance(action_space, spaces.Discrete)
        inputs = flat_size(observation_space)
        if self.discrete:
            outputs = int(action_space.n)
        else:
            inputs += int(_box(action_space, "Critic").shape[0])
            outputs = 1
        self.nets = nn.ModuleList(mlp(inputs, hidden, outputs, activation="relu") for _ in range(n))

    def forward(self, obs: Any, actions: torch.Tensor | None = None) -> torch.Tensor:
        leaf, space = obs, self.observation_space
        while not isinstance(leaf, torch.Tensor):  # Dict/Tuple observations: any leaf
            key = next(iter(leaf)) if isinstance(leaf, dict) else 0
            leaf, space = leaf[key], space[key]
        lead = leaf.shape[: leaf.dim() - len(space.shape)]  # [B] or [T, N]
        flat_obs = tree_map(lambda x: x.reshape(-1, *x.shape[len(lead) :]), obs)
        x = flatten(self.observation_space, flat_obs)
        if not self.discrete:
            if actions is None:
                raise TypeError("a critic of Box actions needs critic(obs, actions).")
            x = torch.cat([x, actions.reshape(x.shape[0], -1).to(x.dtype)], -1)
        q = torch.stack([net(x) for net in self.nets])  # [n, flat B, outputs]
        q = q.reshape(len(self.nets), *lead, q.shape[-1])
        return q if self.discrete else q.squeeze(-1)


class RecurrentCritic(nn.Module):
    """``n`` Q-functions with memory, for partially observed tasks: each runs a GRU over
    the observations of a sequence (from a zero state, reset at episode starts) and
    reads ``Q`` from its state and the action with a ReLU head.

    Called on whole sequences: ``critic(obs [T, N, ...], actions [T, N, ...], starts [T,
    N]) -> [n, T, N]`` (``critic(obs, None, starts) -> [n, T, N, A]`` for a Discrete
    action space). The state depends on the observations alone, so ``Q`` at a step can be
    asked for any action there. DDPG, TD3 and SAC call it on every step of their sequence
    samples (``sequence_length`` set), so the burn-in steps warm its state too.
    """

    recurrent = True

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 hidden: int = 64, n: int = 2) -> None:  # fmt: skip
        super().__init__()
        self.observation_space = observation_space
        self.discrete = isinstance(action_space, spaces.Discrete)
        actions = 0 if self.discrete else int(_box(action_space, "RecurrentCritic").shape[0])
        outputs = int(action_space.n) if self.discrete else 1
        inputs = flat_size(observation_space)
        self.encoders = nn.ModuleList(nn.Linear(inputs, hidden) for _ in range(n))
        self.cells = nn.ModuleList(nn.GRUCell(hidden, hidden) for _ in range(n))
        self.heads = nn.ModuleList(
            mlp(hidden + actions, (hidden,), outputs, activation="relu") for _ in range(n)
        )

    def forward(self, obs: Any, actions: torch.Tensor | None = None,
                starts: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        leaf, space = obs, self.observation_space
        while not isinstance(leaf, torch.Tensor):
            key = next(iter(leaf)) if isinstance(leaf, dict) else 0
            leaf, space = leaf[key], space[key]
        if leaf.dim() != len(space.shape) + 2:
            raise ValueError(
                "a RecurrentCritic reads sequences: observations [T, N, ...], got shape "
                f"{tuple(leaf.shape)}; learn from sequence replay (set sequence_length)."
            )
        T, N = leaf.shape[:2]
        x = flatten(self.observation_space, tree_map(lambda v: v.flatten(0, 1), obs))
        x = x.reshape(T, N, -1)
        if not self.discrete and actions is None:
            raise TypeError("a critic of Box actions needs critic(obs, actions, starts).")
        keep = None if starts is None else (~starts.bool()).unsqueeze(-1).to(x.dtype)
        qs = []
        for encoder, cell, head in zip(self.encoders, self.cells, self.heads, strict=True):
            inputs = torch.relu(encoder(x))
            h = x.new_zeros(N, cell.hidden_size)
            states = []
            for t in range(T):
                if keep is not None:
                    h = h * keep[t]
                h = cell(inputs[t], h)
                states.append(h)
            features = torch.stack(states)  # [T, N, hidden]
            if not self.discrete:
                features = torch.cat([features, actions.reshape(T, N, -1).to(x.dtype)], -1)
            qs.append(head(features))
        q = torch.stack(qs)  # [n, T, N, outputs]
        return q if self.discrete else q.squeeze(-1)


class GaussianExploration(Parametric):
    """A deterministic actor acting with Gaussian noise of std ``std`` (in units of the
    Box's half-width; the agent clips actions to the bounds). Set ``std`` before
    sampling to follow a schedule."""

    def __init__(self, actor: DeterministicActor, std: float = 0.1) -> None:
        super().__init__()
        self.actor = actor
        self.std = std

    def forward(self, *states: Any):
        mu = self.actor.action(states[1])
        scale = (self.std * self.actor.bounds.radius).expand_as(mu)
        if self.std == 0:  # noise annealed away: a Normal may not have a zero scale
            return None, ActionDistribution(Deterministic(mu))
        return None, ActionDistribution(torch.distributions.Normal(mu, scale))


class OUExploration(Parametric):
    """A deterministic actor acting with Ornstein-Uhlenbeck noise (Lillicrap et al. 2016):
    ``x <- x + theta (0 - x) dt + sigma sqrt(dt) N(0, 1)``, in units of the Box's
    half-width. The noise ``x`` is this policy's recurrent state, so rlx keeps it per
    environment and resets it to 0 at every episode start."""

    def __init__(self, actor: DeterministicActor, sigma: float = 0.2, theta: float = 0.15,
                 dt: float = 1e-2) -> None:  # fmt: skip
        super().__init__()
        self.actor = actor
        self.sigma, self.theta, self.dt = sigma, theta, dt

    def forward(self, *states: Any):
        noise, obs = states[0], states[1]
        mu = self.actor.action(obs)
        if noise is None:
            noise = torch.zeros_like(mu)
        shock = self.sigma * self.dt**0.5 * torch.randn_like(mu)
        noise = noise - self.theta * noise * self.dt + shock
        bounds = self.actor.bounds
        action = (mu + noise * bounds.radius).clamp(bounds.low, bounds.high)
        return noise, ActionDistribution(Deterministic(action))

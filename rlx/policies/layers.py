"""Building blocks of the ready networks: observations flattened to vectors, MLPs, noisy
linear layers (NoisyNet) and the Nature DQN convolutional encoder."""

from __future__ import annotations

import math
from typing import Any

import torch
from gymnasium import spaces
from torch import nn

import rlx.fast
from rlx.fast import mlp as fast_mlp


def flat_size(space: spaces.Space) -> int:
    """Width of the flat float vector an observation of ``space`` becomes (Discrete parts
    one-hot, as gymnasium's ``flatdim``)."""
    return spaces.flatdim(space)


def flatten(space: spaces.Space, obs: Any) -> torch.Tensor:
    """A batch of observations ``[B, ...]`` (nested for Dict/Tuple) as floats ``[B, D]``."""
    if isinstance(space, spaces.Dict):
        return torch.cat([flatten(s, obs[k]) for k, s in space.spaces.items()], -1)
    if isinstance(space, spaces.Tuple):
        return torch.cat([flatten(s, o) for s, o in zip(space.spaces, obs, strict=True)], -1)
    if isinstance(space, spaces.Discrete):
        return nn.functional.one_hot(obs.long() - int(space.start), int(space.n)).float()
    if isinstance(space, spaces.MultiDiscrete):
        parts = [
            nn.functional.one_hot(obs[:, i].long() - int(space.start[i]), int(n)).float()
            for i, n in enumerate(space.nvec)
        ]
        return torch.cat(parts, -1)
    return obs.reshape(obs.shape[0], -1).float()


class MLP(nn.Sequential):
    """``nn.Sequential`` of Linear and Tanh (or ReLU) layers: the ready networks' MLP.

    With the fast paths on it runs through :mod:`rlx.fast.mlp` (no module call per
    layer; large forwards as one autograd node with a written-out backward); otherwise,
    and for any other layers, it is the plain Sequential.
    """

    fused: bool = True
    """With the fast paths on, run large forwards as one autograd node."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if rlx.fast.enabled():
            return fast_mlp.forward(self, x)
        return super().forward(x)


def mlp(
    inputs: int, hidden: tuple[int, ...], outputs: int | None = None, activation: str = "tanh"
) -> MLP:
    """Linear + tanh (or ``activation="relu"``) layers; a final linear layer to ``outputs``
    if given."""
    if activation not in ("tanh", "relu"):
        raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}.")
    act = nn.Tanh if activation == "tanh" else nn.ReLU
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), act()]
        inputs = width
    if outputs is not None:
        layers.append(nn.Linear(inputs, outputs))
    return MLP(*layers)


class NoisyLinear(nn.Module):
    """A linear layer with learned, factorised Gaussian noise on its weights (NoisyNet,
    Fortunato et al. 2018): exploration that the network learns to turn down.

    In training mode (``module.train()``, the default) every forward draws new noise; in
    eval mode the layer uses its mean weights.
    """

    def __init__(self, inputs: int, outputs: int, sigma0: float = 0.5) -> None:
        super().__init__()
        self.inputs, self.outputs = inputs, outputs
        bound = 1 / math.sqrt(inputs)
        self.weight_mu = nn.Parameter(torch.empty(outputs, inputs).uniform_(-bound, bound))
        self.bias_mu = nn.Parameter(torch.empty(outputs).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((outputs, inputs), sigma0 * bound))
        self.bias_sigma = nn.Parameter(torch.full((outputs,), sigma0 * bound))

    @staticmethod
    def _scaled(size: int, device: torch.device) -> torch.Tensor:
        x = torch.randn(size, device=device)
        return x.sign() * x.abs().sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return nn.functional.linear(x, self.weight_mu, self.bias_mu)
        noise_in = self._scaled(self.inputs, x.device)
        noise_out = self._scaled(self.outputs, x.device)
        weight = self.weight_mu + self.weight_sigma * torch.outer(noise_out, noise_in)
        bias = self.bias_mu + self.bias_sigma * noise_out
        return nn.functional.linear(x, weight, bias)


class NatureCNN(nn.Module):
    """The convolutional encoder of Mnih et al. 2015 for stacked frames ``[B, C, 84, 84]``
    (uint8 pixels, scaled to [0, 1] here): three convolutions and a 512-unit layer."""

    def __init__(self, channels: int, height: int = 84, width: int = 84, features: int = 512):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )  # fmt: skip
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, channels, height, width)).shape[1]
        self.linear = nn.Linear(flat, features)
        self.features = features

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0 if not obs.is_floating_point() else obs
        return torch.relu(self.linear(self.convs(x)))


def rnn_step(cell: nn.RNNCellBase, x: torch.Tensor, state: Any) -> tuple[Any, torch.Tensor]:
    """One step of a GRU or LSTM cell from ``state`` (``[B, H]``, or ``(h, c)`` for an
    LSTM; ``None`` means zeros): the new state and the features ``h``."""
    lstm = isinstance(cell, nn.LSTMCell)
    if state is None:
        zeros = x.new_zeros(x.shape[0], cell.hidden_size)
        state = (zeros, zeros) if lstm else zeros
    state = cell(x, state)
    return state, state[0] if lstm else state


def previous_size(action_space: spaces.Space) -> int:
    """Width :func:`with_previous` adds: the flat previous action and the reward."""
    return flat_size(action_space) + 1


def with_previous(
    x: torch.Tensor, action_space: spaces.Space, prev_action: Any, prev_reward: torch.Tensor
) -> torch.Tensor:
    """Features ``[B, H]`` with the previous action (flattened, Discrete ones one-hot) and
    reward appended, as R2D1's recurrent core takes them."""
    action = flatten(action_space, prev_action).to(x.dtype)
    return torch.cat([x, action, prev_reward.to(x.dtype).unsqueeze(-1)], -1)


def is_image(space: spaces.Space) -> bool:
    """A Box of uint8 with three dimensions (channels first): stacked frames."""
    return isinstance(space, spaces.Box) and space.dtype == "uint8" and len(space.shape) == 3

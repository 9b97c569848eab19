"""Acting in numpy: the ready MLP policy's actor run on numpy arrays during dry rollouts
(no gradients or extras; how the algorithms sample feed-forward policies), where each
torch call costs several times its arithmetic and numpy's a fraction. Actions come from
the distribution the policy's ``forward`` gives, with noise drawn ahead in blocks from
torch's generator (``torch.manual_seed`` decides it, but the generator's state afterwards
differs from torch's own sampling). ``benchmarks/sampling.py`` measures dry sampling
against a hand-written loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlx.fast.mlp import numpy_function

Actor = Callable[[np.ndarray, bool], np.ndarray]


def numpy_view(store: object) -> np.ndarray | None:
    """A numpy view of sampling's observation storage when it is one CPU tensor, through
    which each step's observations are written (about 1 us instead of 5 for a torch
    copy) and the numpy actor reads them; None otherwise."""
    cpu = isinstance(store, torch.Tensor) and store.device.type == "cpu"
    return store.numpy() if cpu and store.dtype != torch.bfloat16 else None  # no numpy bf16


class _Noise:
    """One acting step's noise at a time, drawn from torch's generator a block at a time."""

    def __init__(self, shape: tuple[int, ...], draw: Callable[[tuple[int, ...]], torch.Tensor],
                 block: int = 256) -> None:  # fmt: skip
        self.shape, self.draw, self.block = shape, draw, block
        self.values: np.ndarray = np.empty((0, *shape), dtype=np.float32)
        self.used = 0

    def next(self) -> np.ndarray:
        if self.used == len(self.values):
            self.values, self.used = self.draw((self.block, *self.shape)).numpy(), 0
        self.used += 1
        return self.values[self.used - 1]


def _gumbel(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.empty(shape).exponential_().log_().neg_()


def mlp_policy_actor(
    policy: nn.Module, observation_space: spaces.Space, body: nn.Sequential,
    action_space: spaces.Space, linear: nn.Linear, log_std: torch.Tensor | None,
    squash: bool, batch_size: int,
) -> Actor | None:  # fmt: skip
    """``act(obs, deterministic) -> actions`` for a policy whose actor is the MLP ``body``
    followed by ``linear`` (logits of a Discrete action, or the mean, then the log-std
    where ``log_std`` is None, of an unsquashed Box one). None for other spaces, squashed
    actions, parameters not float32 on the CPU, forward hooks, or batches where torch is
    as fast (more than 65,536 multiply-adds in a layer)."""
    if (
        any(m._forward_hooks or m._forward_pre_hooks for m in policy.modules())
        or nn.modules.module._global_forward_hooks
        or nn.modules.module._global_forward_pre_hooks
        or not isinstance(observation_space, spaces.Box)
    ):
        return None
    widest = max(m.weight.numel() for m in policy.modules() if isinstance(m, nn.Linear))
    if batch_size * widest > 2**16:
        return None
    run = numpy_function(body)
    if run is None:
        return None
    w, b = linear.weight, linear.bias
    if w.device.type != "cpu" or w.dtype != torch.float32:
        return None
    weight, bias = w.detach().numpy().T, b.detach().numpy()

    def features(obs: np.ndarray) -> np.ndarray:
        x = obs.reshape(len(obs), -1)
        return run(x.astype(np.float32, copy=False)) @ weight

    if isinstance(action_space, spaces.Discrete):
        # Gumbel-max: argmax(logits + G) with G = -log E, E ~ Exp(1), is a draw from the
        # softmax (the exponential race of rlx.fast.distributions.sample, in log space).
        gumbel = _Noise((batch_size, int(action_space.n)), _gumbel)

        def categorical(obs: np.ndarray, deterministic: bool) -> np.ndarray:
            y = features(obs)
            y += bias
            if not deterministic:
                y += gumbel.next()
            return y.argmax(-1)

        return categorical
    if not isinstance(action_space, spaces.Box) or squash:
        return None
    shape, size = action_space.shape, int(math.prod(action_space.shape))
    fixed_log_std = None if log_std is None else log_std.detach().numpy().reshape(-1)
    gaussian = _Noise((batch_size, size), torch.randn)

    def normal(obs: np.ndarray, deterministic: bool) -> np.ndarray:
        y = features(obs)
        y += bias
        mean = y[:, :size]
        if not deterministic:
            if fixed_log_std is None:
                std = np.exp(np.clip(y[:, size:], -20.0, 2.0))
            else:
                std = np.exp(fixed_log_std)
            mean = mean + std * gaussian.next()
        return mean.reshape(len(y), *shape)

    return normal

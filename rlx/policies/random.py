"""``RandomPolicy``: uniformly random actions for any supported action space.

Off-policy algorithms act with it before they start learning (``learning_starts``), so
the first transitions in the replay cover the action space evenly.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from torch.distributions import Bernoulli, Distribution, Normal, Uniform

from rlx.core.distribution import ActionDistribution, categorical
from rlx.core.parametric import Parametric
from rlx.tree import tree_leaves


def _uniform(space: spaces.Space, batch: int, part: bool = False) -> list[Distribution]:
    """The uniform components for ``space``; one component only when ``part`` (a part
    of a Tuple or Dict space)."""
    if isinstance(space, spaces.Discrete):
        return [categorical(torch.zeros(batch, int(space.n)))]
    if isinstance(space, spaces.MultiDiscrete):
        sizes = space.nvec.reshape(-1)
        if (sizes == sizes[0]).all():  # one Categorical over [B, k]
            return [categorical(torch.zeros(batch, len(sizes), int(sizes[0])))]
        if part:
            raise TypeError(
                f"RandomPolicy supports a MultiDiscrete part of a Tuple/Dict space only "
                f"with equal sizes, got {space!r}"
            )
        return [categorical(torch.zeros(batch, int(n))) for n in sizes]
    if isinstance(space, spaces.MultiBinary):
        return [Bernoulli(probs=torch.full((batch, *space.shape), 0.5))]
    if isinstance(space, spaces.Box):
        low = torch.as_tensor(space.low, dtype=torch.float32).expand(batch, *space.shape)
        high = torch.as_tensor(space.high, dtype=torch.float32).expand(batch, *space.shape)
        if bool(torch.isfinite(low).all() and torch.isfinite(high).all()):
            return [Uniform(low, high, validate_args=False)]
        return [Normal(torch.zeros_like(low), torch.ones_like(low))]  # unbounded: N(0, 1)
    if isinstance(space, spaces.Tuple) and not part:
        return [_uniform(s, batch, part=True)[0] for s in space.spaces]
    raise TypeError(f"RandomPolicy does not support action space {space!r}")


class RandomPolicy(Parametric):
    """Uniform actions over ``action_space`` (a standard normal on unbounded Box
    dimensions); no extras, no parameters."""

    def __init__(self, action_space: spaces.Space) -> None:
        super().__init__()
        self.action_space = action_space
        self.forward(None, torch.zeros(1))  # unsupported spaces fail here, at construction

    def forward(self, *states: Any):
        batch = tree_leaves(states[1])[0].shape[0]
        space = self.action_space
        if isinstance(space, spaces.Dict):
            named = {k: _uniform(s, batch, part=True)[0] for k, s in space.spaces.items()}
            return None, ActionDistribution(**named)
        return None, ActionDistribution(*_uniform(space, batch))

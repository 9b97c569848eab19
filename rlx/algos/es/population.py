"""Several parameter vectors of one policy acting side by side in one agent's environments,
so that ``agent(population).episode(horizon)`` scores B candidates' episodes at once: each
runs in a copy of any :class:`rlx.Parametric` on its own consecutive rows of the batch,
their action distributions joined by :class:`Blocks`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch.distributions import Distribution
from torch.nn.utils import vector_to_parameters

from rlx.core.distribution import ActionDistribution, component_mode, sample_component
from rlx.core.parametric import Parametric
from rlx.tree import tree_index, tree_map


def load_vector(module: torch.nn.Module, vector: torch.Tensor) -> None:
    """Set ``module``'s parameters from a flat vector (as ``parameters_to_vector`` made it)."""
    first = next(module.parameters())
    # A copy: vector_to_parameters makes the parameters views of the vector it gets.
    vector_to_parameters(vector.to(first.device, first.dtype, copy=True), module.parameters())


class Blocks(Distribution):
    """One distribution over a batch whose consecutive blocks of rows come from different
    distributions of the same kind (one per candidate)."""

    def __init__(self, parts: list[Distribution]) -> None:
        self.parts = parts
        self.sizes = [p.batch_shape[0] for p in parts]
        shape = torch.Size([sum(self.sizes), *parts[0].batch_shape[1:]])
        super().__init__(shape, parts[0].event_shape, validate_args=False)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        if sample_shape:
            return torch.cat([p.sample(sample_shape) for p in self.parts], len(sample_shape))
        return torch.cat([sample_component(p) for p in self.parts])

    @property
    def mode(self) -> torch.Tensor:
        return torch.cat([component_mode(p) for p in self.parts])

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        rows = value.split(self.sizes)
        return torch.cat([p.log_prob(v) for p, v in zip(self.parts, rows, strict=True)])

    def entropy(self) -> torch.Tensor:
        return torch.cat([p.entropy() for p in self.parts])


def join(dists: list[ActionDistribution]) -> ActionDistribution:
    """The action distributions of consecutive blocks of rows as one."""
    first = dists[0]
    parts = [Blocks([d.components[i] for d in dists]) for i in range(len(first.components))]
    if first.names is not None:
        return ActionDistribution(**dict(zip(first.names, parts, strict=True)))
    return ActionDistribution(*parts)


class Population(Parametric):
    """Copies of ``policy`` acting for consecutive blocks of environments, with candidates
    from :meth:`assign`. ``forward`` returns ``(state, distribution)``: no extras."""

    def __init__(self, policy: Parametric, members: int) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(copy.deepcopy(policy) for _ in range(members))
        self.previous_action_reward = getattr(policy, "previous_action_reward", False)
        self.blocks: list[tuple[Parametric, int, int]] = []

    def assign(self, candidates: torch.Tensor, owners: torch.Tensor) -> None:
        """Environment ``b`` acts with ``candidates[owners[b]]``; equal owners must be
        consecutive (``owners`` is ``[B]``, sorted by block)."""
        starts = [0] + [b for b in range(1, len(owners)) if owners[b] != owners[b - 1]]
        if len(starts) > len(self.members):
            raise ValueError(
                f"{len(starts)} candidates in one round, but the population has "
                f"{len(self.members)} members."
            )
        bounds = [*starts, len(owners)]
        self.blocks = list(zip(self.members, bounds, bounds[1:], strict=False))
        for member, start, _ in self.blocks:
            load_vector(member, candidates[int(owners[start])])

    def initial_state(self, batch_size: int) -> Any:
        if not self.blocks:
            return self.members[0].initial_state(batch_size)
        return _cat([m.initial_state(stop - start) for m, start, stop in self.blocks])

    def forward(self, *inputs: Any) -> tuple[Any, ActionDistribution]:
        if len(self.blocks) == 1:
            out = self.blocks[0][0](*inputs)
            return out[0], out[1]
        outs = [member(*tree_index(inputs, slice(a, b))) for member, a, b in self.blocks]
        return _cat([out[0] for out in outs]), join([out[1] for out in outs])


def _cat(states: list[Any]) -> Any:
    """The members' recurrent states as one batch (None for feed-forward members)."""
    return None if states[0] is None else tree_map(lambda *xs: torch.cat(xs), *states)

"""Target networks: a frozen copy of a network that follows it by copies or averaging."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from rlx.core.parametric import Parametric, parameters_and_buffers


class TargetNetwork(Parametric):
    """A copy of ``source`` without gradients, for bootstrap targets.

    ``update()`` copies the source's parameters and buffers (DQN's hard update);
    ``update(tau)`` moves each parameter a fraction ``tau`` of the way (Polyak averaging,
    as DDPG, TD3 and SAC). ``agent(target).evaluate(batch)`` works as for the source.
    """

    def __init__(self, source: nn.Module) -> None:
        super().__init__()
        self.target = copy.deepcopy(source).requires_grad_(False)
        self._source = [source]  # not a submodule: its parameters are not this module's

    @property
    def source(self) -> nn.Module:
        return self._source[0]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.target(*args, **kwargs)

    # A target network samples and evaluates like its source: the same inputs and start.
    @property
    def previous_action_reward(self) -> bool:
        return bool(getattr(self.target, "previous_action_reward", False))

    def initial_state(self, batch_size: int) -> Any:
        if isinstance(self.target, Parametric):
            return self.target.initial_state(batch_size)
        return None

    @torch.no_grad()
    def update(self, tau: float = 1.0) -> None:
        if not 0 < tau <= 1:
            raise ValueError(f"tau must be in (0, 1], got {tau}.")
        mine, mine_buffers = parameters_and_buffers(self.target)
        theirs, their_buffers = parameters_and_buffers(self.source)
        if len(mine) != len(theirs) or len(mine_buffers) != len(their_buffers):
            raise ValueError(
                f"the target network no longer matches its source ({len(mine)} parameters and "
                f"{len(mine_buffers)} buffers against {len(theirs)} and {len(their_buffers)}): "
                "make a new TargetNetwork after changing the source's layers."
            )
        if mine:
            if tau == 1.0:
                torch._foreach_copy_(mine, theirs)
            else:
                torch._foreach_lerp_(mine, theirs, tau)
        if mine_buffers:
            torch._foreach_copy_(mine_buffers, their_buffers)

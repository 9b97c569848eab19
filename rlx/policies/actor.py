"""``ActorPolicy``: a policy network without a critic, for gradient-free search.

An evolution strategy searches the space of all of a policy's parameters, and its cost
grows with their number: CMA-ES keeps an n × n covariance and needs about 4 + 3 ln n
candidates per generation, and its covariance learning rates fall as 1 / n². A value
head would be dead weight there (nothing scores it), so this is the actor of
:class:`~rlx.policies.MLPPolicy` alone: one small tanh layer by default, and the same
action heads (:class:`~rlx.policies.ActionHead`) for every supported action space.
"""

from __future__ import annotations

from typing import Any

from gymnasium import spaces

from rlx.core.distribution import ActionDistribution
from rlx.core.parametric import Parametric
from rlx.policies.actor_critic import ActionHead
from rlx.policies.layers import flat_size, flatten, mlp


class ActorPolicy(Parametric):
    """Feed-forward actor: an MLP of ``hidden`` tanh layers (none: a linear policy) and an
    action head; ``forward`` returns ``(None, distribution)`` with no extras.

    Args:
        observation_space, action_space: the environment's single spaces.
        hidden: widths of the hidden layers; ``()`` maps observations to the action
            head's inputs directly.
        squash: Box actions from a tanh-squashed Gaussian rescaled to the bounds (so the
            mode stays inside them) instead of a Gaussian clipped by the agent.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden: tuple[int, ...] = (16,),
        squash: bool = False,
    ) -> None:
        super().__init__()
        self.observation_space = observation_space
        inputs = flat_size(observation_space)
        self.body = mlp(inputs, tuple(hidden))
        self.head = ActionHead(action_space, hidden[-1] if hidden else inputs, squash=squash)

    def forward(self, *states: Any) -> tuple[None, ActionDistribution]:
        _, obs = states
        return None, self.head(self.body(flatten(self.observation_space, obs)))

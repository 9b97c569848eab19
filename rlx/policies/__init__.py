"""Ready networks built from an environment's spaces, for users who don't write their own.

- :mod:`~rlx.policies.actor_critic`: policy-value networks for the policy-gradient
  algorithms (``make_policy(obs_space, act_space, "mlp" | "gru" | "lstm")``).
- :mod:`~rlx.policies.layers`: observation flattening and MLPs.
"""

from rlx.policies.actor_critic import (
    ActionHead,
    MLPPolicy,
    RecurrentCore,
    RecurrentPolicy,
    make_policy,
)
from rlx.policies.layers import MLP, flat_size, flatten, mlp

__all__ = [
    "MLP",
    "ActionHead",
    "MLPPolicy",
    "RecurrentCore",
    "RecurrentPolicy",
    "flat_size",
    "flatten",
    "make_policy",
    "mlp",
]

"""rlx: deep reinforcement learning for research, as granular operations on rollouts."""

from rlx.core import (
    ActionDistribution,
    Agent,
    BoundAgent,
    Deterministic,
    DryRolloutError,
    EpsilonGreedy,
    Parametric,
    Rollout,
    TanhNormal,
    cat,
    clipped_surrogate,
    distributed,
    extras_wanted,
    frozen,
    kl,
)
from rlx.envs.pomdp import register as _register_environments
from rlx.fast import fast_paths

_register_environments()

__version__ = "0.1.0"

__all__ = [
    "ActionDistribution",
    "Agent",
    "BoundAgent",
    "DryRolloutError",
    "Deterministic",
    "EpsilonGreedy",
    "Parametric",
    "Rollout",
    "TanhNormal",
    "cat",
    "clipped_surrogate",
    "distributed",
    "extras_wanted",
    "fast_paths",
    "frozen",
    "kl",
]

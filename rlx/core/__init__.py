"""The rlx core: Parametric, ActionDistribution, Agent, Rollout. Knows no algorithm."""

from rlx.core.agent import Agent, BoundAgent
from rlx.core.components import Deterministic, EpsilonGreedy, TanhNormal
from rlx.core.distribution import ActionDistribution, kl
from rlx.core.losses import clipped_surrogate
from rlx.core.optim import frozen
from rlx.core.parametric import Parametric, extras_wanted
from rlx.core.rollout import DryRolloutError, Rollout, cat

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
    "extras_wanted",
    "frozen",
    "kl",
]

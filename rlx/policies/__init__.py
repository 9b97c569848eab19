"""Ready networks built from an environment's spaces, for users who don't write their own:
policy-value networks for the policy gradients (``make_policy(obs_space, act_space,
"mlp" | "gru" | "lstm")``), an actor without a critic (CMA-ES), Q-networks for the deep
Q-learning family, actors, critics and exploration for DDPG, TD3 and SAC, uniformly random
actions, and the layers they are built from (:mod:`~rlx.policies.layers`).
"""

from rlx.policies.actor import ActorPolicy
from rlx.policies.actor_critic import (
    ActionHead,
    MLPPolicy,
    RecurrentCore,
    RecurrentPolicy,
    make_policy,
)
from rlx.policies.continuous import (
    Critic,
    DeterministicActor,
    GaussianActor,
    GaussianExploration,
    OUExploration,
    RecurrentCritic,
)
from rlx.policies.layers import MLP, NatureCNN, NoisyLinear, flat_size, flatten, mlp
from rlx.policies.q import QNetwork
from rlx.policies.random import RandomPolicy

__all__ = [
    "ActorPolicy",
    "Critic",
    "DeterministicActor",
    "GaussianActor",
    "GaussianExploration",
    "OUExploration",
    "RecurrentCritic",
    "MLP",
    "ActionHead",
    "MLPPolicy",
    "NatureCNN",
    "NoisyLinear",
    "QNetwork",
    "RandomPolicy",
    "RecurrentCore",
    "RecurrentPolicy",
    "flat_size",
    "flatten",
    "make_policy",
    "mlp",
]

"""Ready networks built from an environment's spaces, for users who don't write their own.

- :mod:`~rlx.policies.actor_critic`: policy-value networks for the policy-gradient
  algorithms (``make_policy(obs_space, act_space, "mlp" | "gru" | "lstm")``).
- :mod:`~rlx.policies.actor`: an actor without a critic (CMA-ES).
- :mod:`~rlx.policies.q`: Q-networks for the deep Q-learning family (dueling,
  distributional, noisy, recurrent, convolutional).
- :mod:`~rlx.policies.continuous`: actors, critics and exploration for DDPG, TD3, SAC.
- :mod:`~rlx.policies.random`: uniformly random actions for any action space.
- :mod:`~rlx.policies.layers`: observation flattening, MLPs, NoisyLinear, NatureCNN.
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

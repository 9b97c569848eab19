"""Q-function policy gradients: DDPG, TD3 and SAC (Box or Discrete actions)."""

from rlx.algos.qpg.base import QPGAlgorithm, QPGConfig
from rlx.algos.qpg.ddpg import DDPG, TD3, DDPGConfig, TD3Config
from rlx.algos.qpg.sac import SAC, SACConfig

__all__ = [
    "DDPG",
    "SAC",
    "TD3",
    "QPGAlgorithm",
    "DDPGConfig",
    "QPGConfig",
    "SACConfig",
    "TD3Config",
]

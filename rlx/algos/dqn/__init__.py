"""Deep Q-learning: DQN (double, dueling, noisy, prioritized, n-step), C51, Rainbow, R2D2."""

from rlx.algos.dqn.c51 import C51, C51Config, Rainbow, RainbowConfig
from rlx.algos.dqn.dqn import DQN, DQNConfig
from rlx.algos.dqn.r2d2 import R2D2, R2D2Config

__all__ = [
    "C51",
    "DQN",
    "R2D2",
    "C51Config",
    "DQNConfig",
    "R2D2Config",
    "Rainbow",
    "RainbowConfig",
]

"""Deep Q-learning: DQN (double, dueling, noisy, prioritized, n-step), C51, Rainbow."""

from rlx.algos.dqn.c51 import C51, C51Config, Rainbow, RainbowConfig
from rlx.algos.dqn.dqn import DQN, DQNConfig

__all__ = ["C51", "DQN", "C51Config", "DQNConfig", "Rainbow", "RainbowConfig"]

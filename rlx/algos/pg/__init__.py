"""Policy gradients: REINFORCE (with and without a value baseline), A2C, PPO, OffPAC."""

from rlx.algos.pg.a2c import A2C, A2CConfig
from rlx.algos.pg.offpac import OffPAC, OffPACConfig
from rlx.algos.pg.ppo import PPO, PPOConfig
from rlx.algos.pg.reinforce import REINFORCE, REINFORCEBaseline, REINFORCEConfig

__all__ = [
    "A2C",
    "A2CConfig",
    "OffPAC",
    "OffPACConfig",
    "PPO",
    "PPOConfig",
    "REINFORCE",
    "REINFORCEBaseline",
    "REINFORCEConfig",
]

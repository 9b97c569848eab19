"""Evolution strategies: CMA-ES over a policy's parameters."""

from rlx.algos.es.cmaes import CMAES, CMAESConfig
from rlx.algos.es.strategy import CMA

__all__ = ["CMA", "CMAES", "CMAESConfig"]

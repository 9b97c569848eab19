"""Algorithms, each a short module written with the public rlx API only."""

from rlx.algos.base import Algorithm
from rlx.algos.config import AlgorithmConfig
from rlx.algos.registry import ALGORITHMS, make_algorithm

__all__ = ["ALGORITHMS", "Algorithm", "AlgorithmConfig", "make_algorithm"]

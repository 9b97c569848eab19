"""Algorithms by name, for the runner and the command line."""

from __future__ import annotations

import difflib

from rlx.algos.base import Algorithm
from rlx.algos.dqn import C51, DQN, R2D2, Rainbow
from rlx.algos.es import CMAES
from rlx.algos.pg import A2C, PPO, REINFORCE, OffPAC, REINFORCEBaseline
from rlx.algos.qpg import DDPG, SAC, TD3

ALGORITHMS: dict[str, type[Algorithm]] = {
    "reinforce": REINFORCE,
    "reinforce-baseline": REINFORCEBaseline,
    "a2c": A2C,
    "ppo": PPO,
    "offpac": OffPAC,
    "dqn": DQN,
    "c51": C51,
    "rainbow": Rainbow,
    "r2d2": R2D2,
    "ddpg": DDPG,
    "td3": TD3,
    "sac": SAC,
    "cmaes": CMAES,
}

ALIASES: dict[str, str] = {"rf": "reinforce", "ac": "reinforce-baseline", "cma-es": "cmaes"}
"""Short names (the original rlx command line's ``rf`` and ``ac``) for full ones."""


def canonical_name(name: str) -> str:
    """The full name of algorithm ``name`` (given in any case, or as an alias)."""
    name = name.lower()
    return ALIASES.get(name, name)


def algorithm_class(name: str) -> type[Algorithm]:
    """The algorithm class called ``name``; a ValueError listing the choices otherwise."""
    try:
        return ALGORITHMS[canonical_name(name)]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), [*ALGORITHMS, *ALIASES], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown algorithm {name!r}.{hint} Choose one of: {', '.join(ALGORITHMS)}."
        ) from None


def make_algorithm(name: str, agent, policy, config=None) -> Algorithm:
    """Algorithm ``name`` on ``agent`` and ``policy``, with its default config if none."""
    cls = algorithm_class(name)
    return cls(agent, policy, config if config is not None else cls.Config())

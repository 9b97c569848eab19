"""Replay buffers: of transitions (uniform, prioritized, n-step) and of whole episodes."""

from rlx.replay.buffer import PrioritizedReplay, ReplayBuffer
from rlx.replay.episodes import EpisodeReplay
from rlx.replay.sumtree import SumTree

__all__ = ["EpisodeReplay", "PrioritizedReplay", "ReplayBuffer", "SumTree"]

"""Replay buffers: of transitions (uniform, prioritized, n-step; stacked frames stored
once), of sequences with their recurrent states (R2D2), and of whole episodes."""

from rlx.replay.buffer import PrioritizedReplay, ReplayBuffer
from rlx.replay.episodes import EpisodeReplay
from rlx.replay.frames import FrameReplay, PrioritizedFrameReplay
from rlx.replay.sequence import SequenceReplay, sequence_priority
from rlx.replay.sumtree import SumTree

__all__ = [
    "EpisodeReplay",
    "FrameReplay",
    "PrioritizedFrameReplay",
    "PrioritizedReplay",
    "ReplayBuffer",
    "SequenceReplay",
    "SumTree",
    "sequence_priority",
]

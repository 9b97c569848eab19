"""Replay buffers."""

from rlx.replay.episodes import EpisodeReplay

__all__ = ["EpisodeReplay"]

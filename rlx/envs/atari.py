"""Atari games with the standard deep Q-learning preprocessing, as environment factories.

``make_atari("ALE/Pong-v5")`` returns a function that builds one environment:

- the ALE game with ``frameskip=1``, so that frames are skipped (and max-pooled over the
  last two, against flicker) by the preprocessing instead of the emulator;
- gymnasium's ``AtariPreprocessing``: up to 30 random no-ops after each reset, the action
  repeated for 4 frames, 84x84 grayscale uint8 frames, episodes ending with the game
  (not with each lost life);
- gymnasium's ``FrameStackObservation``: the last ``frame_stack`` frames, ``[k, 84, 84]``
  uint8, the first observation of an episode padded with copies of its frame.

Pass the function to :class:`rlx.Agent` (it calls it once per environment, in worker
processes too) and store the stacks with :class:`rlx.replay.FrameReplay`
(``frame_stack=4`` in the off-policy configs). Needs ``pip install 'rlx[atari]'``
(ale-py, which ships the game ROMs, and OpenCV for the resizing).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import gymnasium as gym

from rlx.envs.vector import unknown_id_error

_INSTALL = "pip install 'rlx[atari]'"


def _register() -> None:
    """Register the ALE ids (``ALE/Pong-v5``...) with gymnasium; a clear error without ale-py."""
    try:
        import ale_py
    except ImportError as err:
        raise ImportError(
            f"Atari environments need ale-py, which is not installed: {_INSTALL}"
        ) from err
    gym.register_envs(ale_py)


def make_atari(
    env_id: str,
    frame_stack: int = 4,
    *,
    noop_max: int = 30,
    frame_skip: int = 4,
    screen_size: int = 84,
    terminal_on_life_loss: bool = False,
    **kwargs: Any,
) -> Callable[[], gym.Env]:
    """A function that makes the preprocessed, frame-stacked Atari game ``env_id``.

    Args:
        env_id: an ALE id such as ``"ALE/Pong-v5"`` (v5 keeps its sticky actions,
            ``repeat_action_probability=0.25``, unless ``kwargs`` say otherwise).
        frame_stack: frames per observation (k); 1 still gives ``[1, H, W]``.
        noop_max, frame_skip, screen_size, terminal_on_life_loss: as gymnasium's
            ``AtariPreprocessing``.
        kwargs: passed to ``gymnasium.make`` (``repeat_action_probability``,
            ``full_action_space``, ``max_episode_steps``...).
    """
    _register()
    try:
        gym.spec(env_id)
    except gym.error.Error as err:
        raise unknown_id_error(env_id, err) from None
    try:
        import cv2  # noqa: F401  (AtariPreprocessing resizes with OpenCV)
    except ImportError as err:
        raise ImportError(
            f"Atari preprocessing resizes frames with OpenCV, which is not installed: {_INSTALL}"
        ) from err
    if frame_stack < 1:
        raise ValueError(f"frame_stack must be at least 1, got {frame_stack}.")
    preprocessing = {
        "noop_max": noop_max,
        "frame_skip": frame_skip,
        "screen_size": screen_size,
        "terminal_on_life_loss": terminal_on_life_loss,
    }
    return partial(_make, env_id, frame_stack, preprocessing, kwargs)


def _make(
    env_id: str, frame_stack: int, preprocessing: dict[str, Any], kwargs: dict[str, Any]
) -> gym.Env:
    _register()  # again: worker processes start without the ALE ids
    env = gym.make(env_id, frameskip=1, **kwargs)
    env = gym.wrappers.AtariPreprocessing(env, grayscale_obs=True, scale_obs=False, **preprocessing)
    return gym.wrappers.FrameStackObservation(env, frame_stack)

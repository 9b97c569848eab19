"""Transition replay for stacked frames: each frame stored once, stacks rebuilt when sampled.

An Atari observation is the last k preprocessed frames, ``[k, H, W]`` uint8 (gymnasium's
``FrameStackObservation`` after ``AtariPreprocessing``). Consecutive observations share
k - 1 frames, so :class:`~rlx.replay.ReplayBuffer` stores every frame 2k times;
:class:`FrameReplay` stores each once and samples exactly what the environment returned,
in the same format and with the same n-step windows.

Layout. Each environment (column) has a stream of frames in a ring ``frames[F, B, ...]``:
the frames of an episode's first observation, then the newest frame of each step's
``next_observations``. A stack is two absolute frame numbers ``(first, newest)``: frames
``newest - k + 1 ... newest``, any number before ``first`` reading ``first``. That clamp
reproduces the wrapper's padding of an episode's first observation: the repeated reset
frame of ``padding_type="reset"`` (the default) costs one frame, zero or custom padding
(stored as the leading run of equal frames) two. ``storage["observations"]`` and
``storage["next_observations"]`` hold these pairs (int64 ``[T, B, 2]``), so
:class:`ReplayBuffer`'s adding, n-step windows and checkpoints work on them unchanged.

The ring holds ``capacity // B + k`` frames per environment, plus ``spare_frames`` times
``capacity // B`` for episodes' first frames. When short episodes use up the spare, the
oldest transitions whose frames are overwritten stop being sampled (``valid`` cleared):
the buffer then holds a little less than ``capacity``, never a wrong stack.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rlx.core.rollout import Rollout
from rlx.replay.buffer import _STORED, PrioritizedReplay, ReplayBuffer


class FrameReplay(ReplayBuffer):
    """Replay of frame-stack observations, each frame stored once; see the module docstring.

    Args:
        capacity: transitions kept (as :class:`ReplayBuffer`).
        frame_stack: frames per observation, k: observations are ``[k, *frame_shape]``.
        prioritized: make a :class:`PrioritizedFrameReplay`, a :class:`PrioritizedReplay`
            with its ``alpha``, ``beta`` and ``eps`` (ignored otherwise).
        spare_frames: extra frame slots for episodes' first frames, as a fraction of
            ``capacity // B``: episodes longer than ``1 / spare_frames`` steps on average
            never cost a transition.
        kwargs: ``n_step``, ``gamma``, ``device``, ``seed`` (as :class:`ReplayBuffer`).
    """

    def __new__(cls, *args: Any, prioritized: bool = False, **kwargs: Any) -> FrameReplay:
        if prioritized and not issubclass(cls, PrioritizedReplay):
            cls = PrioritizedFrameReplay
        return super().__new__(cls)

    def __init__(
        self,
        capacity: int,
        frame_stack: int,
        *,
        prioritized: bool = False,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
        spare_frames: float = 0.05,
        **kwargs: Any,
    ) -> None:
        if isinstance(self, PrioritizedReplay):
            kwargs.update(alpha=alpha, beta=beta, eps=eps)
        super().__init__(capacity, **kwargs)
        if frame_stack < 1:
            raise ValueError(f"frame_stack must be at least 1, got {frame_stack}.")
        if spare_frames < 0:
            raise ValueError(f"spare_frames must be 0 or positive, got {spare_frames}.")
        self.frame_stack, self.spare_frames = frame_stack, spare_frames
        self.frames: torch.Tensor | None = None  # [F, B, *frame_shape], allocated on first add
        self.written = torch.zeros(0, dtype=torch.int64)  # [B] frames each column wrote
        self.live_from = torch.zeros(0, dtype=torch.int64)  # [B] oldest row not evicted
        self.rows = 0  # time rows ever added: row r of the stream sits at r % T

    # ------------------------------------------------------------------ adding
    def add(self, rollout: Rollout) -> None:
        """Store every step of a ``[T, B]`` rollout of frame stacks (its B must stay the same)."""
        obs, nxt = self._checked(rollout)
        dev, k = self.device, self.frame_stack
        valid, starts = rollout.valid.to(dev), rollout.starts.to(dev)
        L, B = valid.shape
        if self.storage is None:
            self.written = torch.zeros(B, dtype=torch.int64, device=dev)
            self.live_from = torch.zeros(B, dtype=torch.int64, device=dev)

        # A step continues the stored stream if its observation is the previous step's
        # next observation; otherwise (episode starts, steps after invalid rows, rollouts
        # from elsewhere) a new segment stores the observation's own frames.
        same = torch.zeros(L, B, dtype=torch.bool, device=dev)
        same[1:] = _equal(obs[1:], nxt[:-1], 2) & valid[:-1]
        carry = torch.full((B,), -1, dtype=torch.int64, device=dev)
        if self.storage is not None and self.filled:
            last = (self.cursor - 1) % self.T
            previous = self.storage["next_observations"][last]  # [B, 2]
            same[0] = _equal(obs[0], self._stacks(previous), 1) & self.storage["valid"][last]
            carry = previous[:, 0]
        new = valid & ~(same & ~starts)

        # Frames each step adds: its next observation's newest frame, and for a new segment
        # the observation's frames from the last of its leading run of equal frames on.
        rows, cols = new.nonzero(as_tuple=True)
        lead = _equal(obs[rows, cols], obs[rows, cols, :1], 2).long().cumprod(-1).sum(-1)  # 1..k
        added = valid.long()
        added[rows, cols] += k - lead + 1
        end = self.written + added.cumsum(0)  # [L, B] one past each step's last frame
        newest = torch.where(valid, end - 2, end - 1)  # the observation's newest frame
        first = torch.full((L, B), -1, dtype=torch.int64, device=dev)
        first[rows, cols] = newest[rows, cols] - (k - lead)
        first = torch.cat([carry[None], first]).cummax(0).values[1:]  # segments carry on
        fields = {name: getattr(rollout, name) for name in _STORED}
        fields["observations"] = torch.stack([first, newest], -1)
        fields["next_observations"] = torch.stack([first, end - 1], -1)
        super().add(Rollout(**fields))
        if self.frames is None:
            size = self.T + k + math.ceil(self.spare_frames * self.T)
            self.frames = torch.zeros((size, B, *obs.shape[3:]), dtype=obs.dtype, device=dev)

        # Where each frame goes: (absolute frame number, column, frame).
        at_rows, at_cols = valid.nonzero(as_tuple=True)
        numbers = [(end - 1)[at_rows, at_cols]]
        columns = [at_cols]
        sources = [nxt[at_rows, at_cols, -1]]
        for j in range(k if len(rows) else 0):  # new segments' frames from j0 = lead - 1
            keep = j >= lead - 1
            r, c = rows[keep], cols[keep]
            numbers.append(first[r, c] + j - (lead[keep] - 1))
            columns.append(c)
            sources.append(obs[r, c, j])
        numbers, columns, sources = torch.cat(numbers), torch.cat(columns), torch.cat(sources)
        size = self.frames.shape[0]
        kept = numbers >= (end[-1] - size)[columns]  # skip frames overwritten in this call
        slots = (numbers[kept] % size) * B + columns[kept]
        self.frames.view(-1, *self.frames.shape[2:]).index_copy_(0, slots, sources[kept])
        self.written = end[-1]
        self.rows += L
        self._evict_overwritten()

    def _checked(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """The rollout's observations and next observations, after checking that they are
        stacks of ``frame_stack`` frames that roll by one frame per step."""
        obs, nxt = rollout.observations, rollout.next_observations
        k = self.frame_stack
        if not isinstance(obs, torch.Tensor) or obs.dim() < 4 or obs.shape[2] != k:
            shape = tuple(obs.shape[2:]) if isinstance(obs, torch.Tensor) else type(obs).__name__
            raise ValueError(
                f"FrameReplay(frame_stack={k}) stores observations that are stacks of {k} "
                f"frames, [{k}, H, W]; this rollout's observations are {shape} per step. "
                f"Stack frames with gymnasium.wrappers.FrameStackObservation(env, {k}) "
                "(rlx.envs.atari.make_atari does), or use ReplayBuffer."
            )
        self._check_batch(rollout)
        if self.frames is not None and (
            obs.shape[3:] != self.frames.shape[2:] or obs.dtype != self.frames.dtype
        ):
            raise ValueError(
                f"this buffer stores {self.frames.dtype} frames of shape "
                f"{tuple(self.frames.shape[2:])}; the rollout's are {obs.dtype} "
                f"{tuple(obs.shape[3:])}."
            )
        obs, nxt = obs.to(self.device), nxt.to(self.device)
        valid = rollout.valid.to(self.device)
        rolling = _equal(nxt[:, :, :-1], obs[:, :, 1:], 2) | ~valid
        if not bool(rolling.all()):
            t, b = (int(i) for i in (~rolling).nonzero()[0])
            raise ValueError(
                f"step {t} of environment {b}: next_observations[:-1] differs from "
                "observations[1:]. FrameReplay needs observations that roll by one frame "
                "per step (gymnasium's FrameStackObservation); use ReplayBuffer for others."
            )
        return obs, nxt

    def _evict_overwritten(self) -> None:
        """Clear ``valid`` (and the priority) of the oldest rows whose frames the ring has
        overwritten. A row's oldest frame only grows with time, so they are a prefix."""
        s, k, B = self.storage, self.frame_stack, self.B
        columns = torch.arange(B, device=self.device)
        limit = self.written - self.frames.shape[0]  # the oldest frame number still held
        row = self.live_from.clamp_min(self.rows - self.filled)
        while True:
            slot = row % self.T
            first, newest = s["observations"][slot, columns].unbind(-1)
            stale = (row < self.rows) & (torch.maximum(first, newest - k + 1) < limit)
            if not bool(stale.any()):
                break
            self._drop(slot[stale] * B + columns[stale])
            row = row + stale.long()
        self.live_from = row

    def _drop(self, slots: torch.Tensor) -> None:
        """Stop sampling the flat slots ``t * B + b``."""
        self.storage["valid"].view(-1)[slots] = False

    # ---------------------------------------------------------------- sampling
    def _stacks(self, pointers: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """The frame stacks ``[N, k, ...]`` of ``(first, newest)`` pairs ``[N, 2]`` in
        ``columns`` ``[N]`` (default: one pair per column)."""
        if columns is None:
            columns = torch.arange(pointers.shape[0], device=self.device)
        first, newest = pointers[:, :1], pointers[:, 1:]
        back = torch.arange(self.frame_stack - 1, -1, -1, device=self.device)
        numbers = torch.maximum(newest - back, first)  # [N, k], padding clamped to first
        slots = (numbers % self.frames.shape[0]) * self.B + columns[:, None]
        flat = self.frames.view(-1, *self.frames.shape[2:])
        return flat.index_select(0, slots.reshape(-1)).view(*slots.shape, *flat.shape[1:])

    def sample(self, n: int) -> Rollout:
        """``n`` transitions with n-step returns and rebuilt stacks, as a dry ``[1, n]``
        Rollout (see :meth:`ReplayBuffer.sample`)."""
        batch = super().sample(n)
        columns = torch.as_tensor(batch.indices % self.B, device=self.device)
        batch.observations = self._stacks(batch.observations[0], columns)[None]
        batch.next_observations = self._stacks(batch.next_observations[0], columns)[None]
        return batch

    # ------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """As :meth:`ReplayBuffer.state_dict`, with the frames (tensors only)."""
        state = super().state_dict()
        state["frames"] = None if self.frames is None else self.frames.cpu()
        state["written"], state["live_from"] = self.written.cpu(), self.live_from.cpu()
        state["rows"] = self.rows
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        frames = state["frames"]
        self.frames = None if frames is None else frames.to(self.device)
        self.written = state["written"].to(self.device)
        self.live_from = state["live_from"].to(self.device)
        self.rows = state["rows"]


class PrioritizedFrameReplay(FrameReplay, PrioritizedReplay):
    """:class:`FrameReplay` with prioritized sampling (``FrameReplay(..., prioritized=True)``)."""

    def _drop(self, slots: torch.Tensor) -> None:
        super()._drop(slots)
        self.tree.update(slots.cpu().numpy(), np.zeros(len(slots)))

    def update_priorities(self, indices: Any, errors: torch.Tensor | Any) -> None:
        """As :meth:`PrioritizedReplay.update_priorities`; transitions dropped since they
        were sampled keep priority 0."""
        super().update_priorities(indices, errors)
        slots = torch.as_tensor(indices, device=self.device)
        self._drop(slots[~self.storage["valid"].view(-1)[slots]])


def _equal(a: torch.Tensor, b: torch.Tensor, keep: int) -> torch.Tensor:
    """Whether ``a`` and ``b`` agree everywhere past their first ``keep`` dimensions."""
    return (a == b).flatten(keep).all(-1)

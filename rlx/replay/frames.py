"""Transition replay for stacked frames: each frame stored once, stacks rebuilt when sampled.

An Atari observation is the last k preprocessed frames, ``[k, H, W]`` uint8 (gymnasium's
``FrameStackObservation`` after ``AtariPreprocessing``). Consecutive observations share
k - 1 of their frames, so storing ``observations`` and ``next_observations`` whole, as
:class:`~rlx.replay.ReplayBuffer` does, keeps every frame 2k times. :class:`FrameReplay`
keeps each frame once and samples exactly what the environment returned, with the same
interface, the same n-step windows and the same sample format.

Layout. Each environment (column) has a stream of frames in a preallocated ring
``frames[F, B, ...]``: the frames of an episode's first observation, then one new frame
per step (the newest frame of ``next_observations``, the final observation included).
A stack is then two absolute frame numbers, ``(first, newest)``: its frames are
``newest - k + 1 ... newest``, where any number before ``first`` reads ``first`` instead.
That clamp reproduces the wrapper's padding of an episode's first observation:
``padding_type="reset"`` (gymnasium's default) repeats the reset frame, so a start costs
one frame; zero or custom padding is stored as the leading run of equal frames, two
frames. ``storage["observations"]`` and ``storage["next_observations"]`` hold these
pairs (int64 ``[T, B, 2]``), so :class:`ReplayBuffer`'s adding, n-step windows and
checkpoints work on them unchanged and sampling only swaps the pairs for frames.

An episode costs one frame more than its steps (its first observation), so the ring holds
``capacity // B + k`` frames per environment and ``spare_frames * capacity // B`` more. When short
episodes use up the spare, the oldest transitions whose frames are overwritten stop
being sampled (``valid`` cleared) until the ring reaches them: the buffer then holds a
little less than ``capacity``, never a wrong stack.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rlx.core.rollout import Rollout
from rlx.replay.buffer import PrioritizedReplay, ReplayBuffer


class FrameReplay(ReplayBuffer):
    """Replay of frame-stack observations, each frame stored once; see the module docstring.

    ``FrameReplay(..., prioritized=True)`` is a :class:`PrioritizedFrameReplay`, which is
    also a :class:`PrioritizedReplay` (``update_priorities``, ``alpha``, ``beta``).

    Args:
        capacity: transitions kept (as :class:`ReplayBuffer`).
        frame_stack: frames per observation, k: observations are ``[k, *frame_shape]``.
        prioritized: proportional prioritized replay; ``alpha``, ``beta`` and ``eps`` as
            in :class:`PrioritizedReplay` (ignored otherwise).
        spare_frames: extra frame slots per environment, as a fraction of its
            ``capacity // B`` steps, for the first frames of episodes (one per episode with
            gymnasium's default padding). Episodes longer than ``1 / spare_frames`` steps
            on average never cost a transition.
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
            super().__init__(capacity, alpha=alpha, beta=beta, eps=eps, **kwargs)
        else:
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
        super().add(
            Rollout(
                observations=torch.stack([first, newest], -1),
                next_observations=torch.stack([first, end - 1], -1),
                actions=rollout.actions,
                rewards=rollout.rewards,
                terminations=rollout.terminations,
                truncations=rollout.truncations,
                valid=rollout.valid,
                starts=rollout.starts,
            )
        )
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
        self._write(torch.cat(numbers), torch.cat(columns), torch.cat(sources), end[-1])
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
        if self.storage is not None and rollout.batch_size != self.B:
            raise ValueError(
                f"this buffer stores {self.B} environments per step; the rollout has "
                f"{rollout.batch_size}. Use one buffer per environment count."
            )
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

    def _write(
        self, numbers: torch.Tensor, columns: torch.Tensor, sources: torch.Tensor,
        written: torch.Tensor,
    ) -> None:  # fmt: skip
        """Put frames with absolute numbers ``numbers`` into the ring; ``written``: each
        column's count afterwards. Frames already overwritten within this same call (a
        rollout with more frames than the ring) are skipped."""
        size = self.frames.shape[0]
        kept = numbers >= (written - size)[columns]
        slots = (numbers[kept] % size) * self.B + columns[kept]
        self.frames.view(-1, *self.frames.shape[2:]).index_copy_(0, slots, sources[kept])
        self.written = written

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
    """:class:`FrameReplay` with proportional prioritized sampling (what
    ``FrameReplay(..., prioritized=True)`` makes)."""

    def _drop(self, slots: torch.Tensor) -> None:
        super()._drop(slots)
        self.tree.update(slots.cpu().numpy(), np.zeros(len(slots)))

    def update_priorities(self, indices: Any, errors: torch.Tensor | Any) -> None:
        """As :meth:`PrioritizedReplay.update_priorities`; transitions dropped since they
        were sampled keep priority 0."""
        super().update_priorities(indices, errors)
        slots = torch.as_tensor(indices, device=self.device)
        dropped = slots[~self.storage["valid"].view(-1)[slots]]
        if len(dropped):
            self._drop(dropped)


def _equal(a: torch.Tensor, b: torch.Tensor, keep: int) -> torch.Tensor:
    """Whether ``a`` and ``b`` agree everywhere past their first ``keep`` dimensions."""
    return (a == b).flatten(keep).all(-1)

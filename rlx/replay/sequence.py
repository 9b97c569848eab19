"""Sequence replay for recurrent agents (R2D2, Kapturowski et al. 2019).

Rollouts are kept in :class:`~rlx.replay.ReplayBuffer`'s ``[T, B]`` ring, with their
previous actions and rewards. A sequence is ``burn_in + length`` consecutive steps of one
environment, one starting every ``stride`` steps; of its recurrent states only the one
entering its first step is stored.

``sample(n)`` returns a dry ``[burn_in + length, n]`` Rollout whose ``recurrent_states[0]``
is that state (later rows are NaN: they were not kept). Evaluate it with
``agent(policy).evaluate(batch, burn_in=burn_in)``: the burn-in refreshes the stale state
without gradient. Sequences may cross episode boundaries, where ``starts`` resets the
state. With ``prioritized=True``, ``update_priorities(batch.indices, priorities)`` takes
one number per sequence (R2D2 mixes max and mean TD error: :func:`sequence_priority`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch

from rlx.core.rollout import Rollout
from rlx.replay.buffer import _STORED, ReplayBuffer, _prioritized_draw
from rlx.replay.sumtree import SumTree
from rlx.tree import tree_map

_FIELDS = (*_STORED, "prev_actions", "prev_rewards")


def sequence_priority(errors: torch.Tensor, valid: torch.Tensor, eta: float = 0.9) -> torch.Tensor:
    """R2D2's priority of each sequence: ``eta * max|δ| + (1 - eta) * mean|δ|`` over its
    valid steps (``errors`` and ``valid`` are ``[T, N]``)."""
    errors = errors.detach().abs() * valid
    count = valid.sum(0).clamp(min=1)
    return eta * errors.max(0).values + (1 - eta) * errors.sum(0) / count


class SequenceReplay(ReplayBuffer):
    """Replay of fixed-length sequences with their initial recurrent states.

    Args:
        capacity: transitions kept (rounded down to whole strides per environment).
        length: steps of each sequence that are learned from.
        burn_in: steps before them that only warm up the recurrent state.
        stride: steps between sequence starts (default ``length``: sequences overlap by
            their burn-in).
        prioritized, alpha, beta: prioritized sampling of sequences.
        device, seed: as for :class:`ReplayBuffer`.
        states: keep the recurrent state entering each sequence (True), or not (False:
            e.g. a recurrent critic of a feed-forward agent; samples then have
            ``recurrent_states=None``); None: keep them if the first rollout has them.
    """

    def __init__(
        self,
        capacity: int,
        length: int,
        burn_in: int = 0,
        stride: int | None = None,
        prioritized: bool = False,
        alpha: float = 0.6,
        beta: float = 0.4,
        device: str | torch.device = "cpu",
        seed: int | None = 0,
        states: bool | None = True,
    ) -> None:
        if length < 1 or burn_in < 0:
            raise ValueError(f"length must be >= 1 and burn_in >= 0, got {length}, {burn_in}.")
        super().__init__(capacity, n_step=1, device=device, seed=seed)
        self.length, self.burn_in = length, burn_in
        self.window = burn_in + length
        self.stride = stride or length
        if self.stride < 1:
            raise ValueError(f"stride must be at least 1, got {self.stride}.")
        self.prioritized, self.alpha, self.beta = prioritized, alpha, beta
        self.max_priority = 1.0
        self.keep_states = states
        self.states: Any = None  # [slots, B, ...]: the state entering each sequence start
        self.slot_start: np.ndarray | None = None  # absolute step written at each slot
        self.written = 0  # steps written per environment, ever
        self.complete: np.ndarray | None = None  # [slots] sequences fully stored
        self.tree: SumTree | None = None

    # ------------------------------------------------------------------ adding
    def _allocate(self, rollout: Rollout) -> None:
        self.B = B = rollout.batch_size
        self.T = (self.capacity // B) // self.stride * self.stride
        if self.window + self.stride > self.T:
            raise ValueError(
                f"capacity {self.capacity} holds {self.capacity // B} steps of each of {B} "
                f"environments; sequences of {self.window} steps every {self.stride} need "
                f"at least {self.window + self.stride}."
            )
        if self.keep_states is None:
            self.keep_states = rollout.recurrent_states is not None
        if self.keep_states and rollout.recurrent_states is None:
            raise ValueError(
                "SequenceReplay stores recurrent states, and this rollout has none: sample "
                "it with a recurrent policy, pass states=False to keep sequences without "
                "them, or use ReplayBuffer for a feed-forward one."
            )
        self.storage = {
            name: tree_map(partial(self._zeros, self.T), getattr(rollout, name)) for name in _FIELDS
        }
        slots = self.T // self.stride
        if self.keep_states:
            self.states = tree_map(partial(self._zeros, slots), rollout.recurrent_states)
        self.slot_start = np.full(slots, -1, dtype=np.int64)
        self.complete = np.zeros(slots, dtype=bool)
        if self.prioritized:
            self.tree = SumTree(slots * B)

    def add(self, rollout: Rollout) -> None:
        """Store every step of a ``[T, B]`` rollout and the states at sequence starts."""
        if self.storage is None:
            self._allocate(rollout)
        steps = len(rollout)
        absolute = self.written + np.arange(steps)
        rows = absolute % self.T
        self._write_rows(rollout, rows)
        starts = np.flatnonzero(absolute % self.stride == 0)
        slots = rows[starts] // self.stride
        if self.keep_states and len(starts):
            index = torch.as_tensor(slots, device=self.device)
            picked = torch.as_tensor(starts, device=rollout.device)

            def put_state(store: torch.Tensor, x: torch.Tensor) -> None:
                store.index_copy_(0, index, x.index_select(0, picked).detach().to(store))

            if rollout.recurrent_states is None:  # e.g. a feed-forward (random) policy acted
                tree_map(lambda store: store.index_fill_(0, index, 0), self.states)
            else:
                tree_map(put_state, self.states, rollout.recurrent_states)
        self.slot_start[slots] = absolute[starts]
        self.written += steps
        self.cursor = self.written % self.T
        self.filled = min(self.T, self.written)
        self._refresh()

    def _refresh(self) -> None:
        """Mark the sequences wholly stored and not yet overwritten."""
        start = self.slot_start
        complete = (start >= 0) & (start + self.window <= self.written)
        complete &= start >= self.written - self.T
        if self.tree is not None:
            became = np.flatnonzero(complete & ~self.complete)
            gone = np.flatnonzero(~complete & self.complete)
            for slots, value in ((became, self.max_priority**self.alpha), (gone, 0.0)):
                flat = (slots[:, None] * self.B + np.arange(self.B)).reshape(-1)
                self.tree.update(flat, np.full(flat.shape, value))
        self.complete = complete

    def __len__(self) -> int:
        """Complete sequences stored (over all environments)."""
        return 0 if self.complete is None else int(self.complete.sum()) * self.B

    # ---------------------------------------------------------------- sampling
    def _draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Flat sequence ids ``slot * B + b`` and their importance weights."""
        if self.complete is None or not self.complete.any():
            raise ValueError(
                f"the buffer holds no complete sequence yet ({self.window} steps of one "
                "environment): add more steps before sampling."
            )
        if self.tree is not None:
            return _prioritized_draw(self.tree, n, self.rng, len(self), self.beta)
        slots = np.flatnonzero(self.complete)
        picks = slots[self.rng.integers(0, len(slots), n)]
        return picks * self.B + self.rng.integers(0, self.B, n), np.ones(n)

    def sample(self, n: int) -> Rollout:
        """``n`` sequences as a dry ``[burn_in + length, n]`` Rollout (see module doc)."""
        ids, weights = self._draw(n)
        slot, b = ids // self.B, ids % self.B
        rows = (slot[None, :] * self.stride + np.arange(self.window)[:, None]) % self.T
        flat = torch.as_tensor((rows * self.B + b[None, :]).reshape(-1), device=self.device)
        W = self.window

        def gather(x: torch.Tensor) -> torch.Tensor:
            picked = x.reshape(self.T * self.B, *x.shape[2:]).index_select(0, flat)
            return picked.reshape(W, n, *x.shape[2:])

        fields = {name: tree_map(gather, self.storage[name]) for name in _FIELDS}
        state_index = torch.as_tensor(slot * self.B + b, device=self.device)

        def first_state(x: torch.Tensor) -> torch.Tensor:
            stored = x.reshape(-1, *x.shape[2:]).index_select(0, state_index)
            return torch.cat([stored[None], stored.new_full((W - 1, *stored.shape), float("nan"))])

        batch = Rollout(**fields, recurrent_states=tree_map(first_state, self.states))
        batch.weights = torch.as_tensor(weights, dtype=torch.float32, device=self.device)
        batch.indices = ids
        return batch

    def update_priorities(self, indices: np.ndarray, priorities: torch.Tensor) -> None:
        """New priorities (one per sampled sequence, e.g. :func:`sequence_priority`)."""
        if self.tree is None:
            raise ValueError("update_priorities needs SequenceReplay(prioritized=True).")
        values = torch.as_tensor(priorities).detach().reshape(-1).double().cpu().numpy() + 1e-6
        self.max_priority = max(self.max_priority, float(values.max()))
        ids = np.asarray(indices)
        still = self.complete[ids // self.B]  # a sequence overwritten since: leave it at 0
        self.tree.update(ids[still], values[still] ** self.alpha)

    # ------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            states=tree_map(lambda x: x.cpu(), self.states),
            slot_start=None if self.slot_start is None else torch.from_numpy(self.slot_start),
            written=self.written,
            max_priority=self.max_priority,
            priorities=None if self.tree is None else torch.as_tensor(self.tree.tree),
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.written = int(state["written"])
        self.max_priority = float(state["max_priority"])
        if state["slot_start"] is None:  # nothing stored yet
            return
        self.keep_states = state["states"] is not None  # as when the buffer was filled
        if self.keep_states:
            self.states = tree_map(lambda x: x.to(self.device, copy=True), state["states"])
        self.slot_start = state["slot_start"].numpy().copy()
        self.complete = np.zeros(len(self.slot_start), dtype=bool)
        self._refresh()
        if self.prioritized:
            self.tree = SumTree(len(self.slot_start) * self.B)
            self.tree.tree[:] = state["priorities"].numpy()

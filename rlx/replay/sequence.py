"""Sequence replay for recurrent agents (R2D2, Kapturowski et al. 2019).

Rollouts are kept in the same ``[T, B]`` ring as :class:`~rlx.replay.ReplayBuffer`, with
their previous actions and rewards when the policy takes them. A sequence is
``burn_in + length`` consecutive steps of one environment, starting every ``stride``
steps (sequences overlap when ``stride < burn_in + length``); the recurrent state that
entered each sequence's first step is stored with it, and only that one: a state every
``stride`` steps instead of every step.

``sample(n)`` returns a dry ``[burn_in + length, n]`` Rollout whose
``recurrent_states[0]`` is the stored state (later rows are NaN: they were not kept, and
a policy evaluated from them would say so loudly). Evaluate it with
``agent(policy).evaluate(batch, burn_in=burn_in)``: the first steps refresh the stale
state without gradient, the rest is learned from. Sequences may cross episode
boundaries; ``starts`` resets the state there and the returns math stops at the end.
With ``prioritized=True`` sequences are drawn in proportion to
``priority ** alpha``, with importance weights in ``batch.weights``, and
``update_priorities(batch.indices, priorities)`` takes one number per sequence (R2D2
mixes the max and mean TD error: :func:`sequence_priority`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlx.core.rollout import Rollout
from rlx.replay.buffer import ReplayBuffer
from rlx.replay.sumtree import SumTree
from rlx.tree import tree_map

_FIELDS = ("observations", "next_observations", "actions", "rewards", "terminations",
           "truncations", "valid", "starts", "prev_actions", "prev_rewards")  # fmt: skip


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
            a feed-forward agent whose learner still reads sequences, such as a recurrent
            critic; samples then have ``recurrent_states=None``); None: keep them when
            the first rollout stored has them.
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
        B = rollout.batch_size
        self.B = B
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

        def ring(x: torch.Tensor) -> torch.Tensor:
            return torch.zeros((self.T, B, *x.shape[2:]), dtype=x.dtype, device=self.device)

        self.storage = {name: tree_map(ring, getattr(rollout, name)) for name in _FIELDS}
        slots = self.T // self.stride
        if self.keep_states:
            self.states = tree_map(
                lambda x: torch.zeros(
                    (slots, B, *x.shape[2:]), dtype=x.dtype, device=self.device
                ),  # fmt: skip
                rollout.recurrent_states,
            )
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
        if not (self.keep_states and len(starts)):
            pass  # no states kept, or no sequence starts in this rollout
        elif rollout.recurrent_states is None:
            # e.g. steps taken by a feed-forward (random) policy: start from zeros there
            self._zero_states(rows[starts] // self.stride)
        else:
            slots = torch.as_tensor(rows[starts] // self.stride, device=self.device)
            picked = torch.as_tensor(starts, device=rollout.device)

            def put_state(store: torch.Tensor, x: torch.Tensor) -> None:
                store.index_copy_(0, slots, x.index_select(0, picked).detach().to(store))

            tree_map(put_state, self.states, rollout.recurrent_states)
        if len(starts):
            self.slot_start[rows[starts] // self.stride] = absolute[starts]
        self.written += steps
        self.cursor = self.written % self.T
        self.filled = min(self.T, self.written)
        self._refresh()

    def _zero_states(self, slots: np.ndarray) -> None:
        index = torch.as_tensor(slots, device=self.device)
        tree_map(lambda store: store.index_fill_(0, index, 0), self.states)

    def _refresh(self) -> None:
        """Mark the sequences that are wholly stored (and not yet overwritten)."""
        start = self.slot_start
        complete = (start >= 0) & (start + self.window <= self.written)
        complete &= start >= self.written - self.T
        if self.tree is not None:
            became = np.flatnonzero(complete & ~self.complete)
            gone = np.flatnonzero(~complete & self.complete)
            for slots, value in ((became, self.max_priority**self.alpha), (gone, 0.0)):
                if len(slots):
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
            ids = self.tree.sample(n, self.rng)
            probabilities = self.tree[ids] / self.tree.total
            weights = (len(self) * probabilities) ** -self.beta
            return ids, weights / weights.max()
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
            rest = torch.full((W - 1, *stored.shape), float("nan"), dtype=x.dtype,
                              device=x.device)  # fmt: skip
            return torch.cat([stored.unsqueeze(0), rest])

        states = None if self.states is None else tree_map(first_state, self.states)
        batch = Rollout(**fields, recurrent_states=states)
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
            states=None if self.states is None else tree_map(lambda x: x.cpu(), self.states),
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

"""Transition replay: uniform or prioritized, with n-step returns formed when sampling.

Rollouts are stored as they come in a ring of ``capacity // B`` steps per environment
(rlpyt's layout), so an n-step return is a walk forward along one column. ``sample(n)``
returns a dry ``[1, n]`` :class:`~rlx.Rollout` whose ``rewards`` are the n-step discounted
sums and ``next_observations`` those n steps on (or where the episode ended), plus three
attributes: ``discounts`` (``gamma ** k`` for the k steps summed: the bootstrap weight, to
be zeroed where ``terminations``), ``weights`` (importance weights; ones for uniform
replay) and ``indices`` (for :meth:`PrioritizedReplay.update_priorities`). A window stops
at an episode's end (bootstrapping after a truncation, never after a termination), before
an episode's start (rollouts from separate ``episode()`` calls) and at the newest step.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

import numpy as np
import torch

from rlx.core.rollout import Rollout
from rlx.replay.sumtree import SumTree
from rlx.tree import tree_map

_STORED = ("observations", "next_observations", "actions", "rewards", "terminations",
           "truncations", "valid", "starts")  # fmt: skip


def _prioritized_draw(
    tree: SumTree, n: int, rng: np.random.Generator, size: int, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` slots drawn from ``tree`` and their importance weights (see PrioritizedReplay)."""
    slots = tree.sample(n, rng)
    weights = (size * (tree[slots] / tree.total)) ** -beta
    return slots, weights / weights.max()


class _Shared:
    """An attribute stored in element ``index`` of its object's tensor ``tensor``, so that
    a replay shared between processes shares it too."""

    def __init__(self, tensor: str, index: int = 0) -> None:
        self.tensor, self.index = tensor, index

    def __get__(self, obj: Any, owner: type) -> Any:
        return self if obj is None else getattr(obj, self.tensor)[self.index].item()

    def __set__(self, obj: Any, value: Any) -> None:
        getattr(obj, self.tensor)[self.index] = value


class ReplayBuffer:
    """Uniform transition replay; see the module docstring.

    Args:
        capacity: transitions kept (rounded down to a multiple of the number of
            environments of the first rollout added).
        n_step: steps summed into each sampled return.
        gamma: discount of the n-step return.
        device: where the storage lives (and samples are returned).
        seed: seeds the buffer's own random generator (sampling never touches torch's or
            numpy's global ones).
        obs_dtype: store floating-point observations in this dtype (e.g. ``torch.float16``
            halves their memory); samples return them in their original dtype.
    """

    def __init__(
        self,
        capacity: int,
        n_step: int = 1,
        gamma: float = 0.99,
        device: str | torch.device = "cpu",
        seed: int | None = 0,
        obs_dtype: torch.dtype | None = None,
    ) -> None:
        if capacity < 1 or n_step < 1:
            raise ValueError("capacity and n_step must be at least 1.")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}.")
        self.capacity, self.n_step, self.gamma = capacity, n_step, gamma
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        self.obs_dtype = obs_dtype
        self.obs_dtypes: Any = None  # the observations' own dtypes, restored when sampling
        self.storage: dict[str, Any] | None = None
        self.T = self.B = 0
        self._counts = torch.zeros(2, dtype=torch.int64)  # cursor, filled
        self.lock: Any = None  # set by share_memory: guards adding and sampling

    cursor = _Shared("_counts", 0)  # the next time row to write
    filled = _Shared("_counts", 1)  # time rows holding data

    def _guarded(self) -> Any:
        return self.lock if self.lock is not None else contextlib.nullcontext()

    def share_memory(self, example: Rollout, lock: Any) -> ReplayBuffer:
        """Move the storage (allocated for rollouts like ``example``) to shared memory, for a
        sampling process to add to (:class:`rlx.sampling.ReplaySampler`); ``lock`` (a
        multiprocessing lock) keeps a sample from reading rows being written."""
        if type(self) not in (ReplayBuffer, PrioritizedReplay):
            raise TypeError(
                f"{type(self).__name__} cannot be shared between processes; asynchronous "
                "sampling supports ReplayBuffer and PrioritizedReplay."
            )
        if self.storage is None:
            self._allocate(example)
        self.storage = tree_map(lambda x: x.share_memory_(), self.storage)
        self._counts.share_memory_()
        self.lock = lock
        return self

    def __len__(self) -> int:
        """Stored transitions (valid steps included or not)."""
        return self.filled * self.B

    # ------------------------------------------------------------------ adding
    def _allocate(self, rollout: Rollout) -> None:
        B = rollout.batch_size
        self.B, self.T = B, self.capacity // B
        if self.n_step + 1 > self.T:
            raise ValueError(
                f"capacity {self.capacity} holds {self.T} steps of each of {B} environments; "
                f"n-step returns with n_step={self.n_step} need at least {self.n_step + 1}."
            )
        self.obs_dtypes = tree_map(lambda x: x.dtype, rollout.observations)
        self.storage = {
            name: tree_map(partial(self._zeros, self.T, name=name), getattr(rollout, name))
            for name in _STORED
        }

    def _zeros(self, rows: int, x: torch.Tensor, name: str = "") -> torch.Tensor:
        """Zeros for ``rows`` steps like ``x`` ``[T, B, ...]`` (observations in ``obs_dtype``)."""
        low = self.obs_dtype is not None and "observations" in name
        dtype = self.obs_dtype if low and x.dtype.is_floating_point else x.dtype
        return torch.zeros((rows, self.B, *x.shape[2:]), dtype=dtype, device=self.device)

    def add(self, rollout: Rollout) -> None:
        """Store every step of a ``[T, B]`` rollout (its B must stay the same)."""
        with self._guarded():
            self._add(rollout)

    def _check_batch(self, rollout: Rollout) -> None:
        if self.storage is not None and rollout.batch_size != self.B:
            raise ValueError(
                f"this buffer stores {self.B} environments per step; the rollout has "
                f"{rollout.batch_size}. Use one buffer per environment count."
            )

    def _write_rows(self, rollout: Rollout, rows: np.ndarray) -> None:
        """Copy every stored field of ``rollout`` into the ring's time ``rows``."""
        self._check_batch(rollout)
        index = torch.as_tensor(rows, device=self.device)

        def put(store: torch.Tensor, x: torch.Tensor) -> None:
            store.index_copy_(0, index, x.detach().to(store.device, store.dtype))

        for name, stored in self.storage.items():
            tree_map(put, stored, getattr(rollout, name))

    def _add(self, rollout: Rollout) -> None:
        if self.storage is None:
            self._allocate(rollout)
        steps = len(rollout)
        rows = (self.cursor + np.arange(steps)) % self.T
        self._write_rows(rollout, rows)
        self._added(rows, rollout.valid.cpu().numpy())
        self.cursor = (self.cursor + steps) % self.T
        self.filled = min(self.T, self.filled + steps)

    def _added(self, rows: np.ndarray, valid: np.ndarray) -> None:
        """Hook for prioritized replay."""

    # ---------------------------------------------------------------- sampling
    def _draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Flat slots ``t * B + b`` of valid transitions, and their importance weights."""
        valid = self.storage["valid"][: self.filled].reshape(-1).cpu().numpy()
        slots = self.rng.integers(0, valid.size, n)
        for _ in range(100):  # redraw the few invalid rows (next-step resets)
            bad = ~valid[slots]
            if not bad.any():
                return slots, np.ones(n)
            slots[bad] = self.rng.integers(0, valid.size, int(bad.sum()))
        choices = np.flatnonzero(valid)  # mostly invalid: draw among the valid directly
        if choices.size == 0:
            raise ValueError("the buffer holds no valid transition yet: add a rollout first.")
        return choices[self.rng.integers(0, choices.size, n)], np.ones(n)

    def sample(self, n: int) -> Rollout:
        """``n`` transitions with n-step returns, as a dry ``[1, n]`` Rollout."""
        with self._guarded():
            return self._sample(n)

    def _sample(self, n: int) -> Rollout:
        if self.storage is None:
            raise ValueError("the buffer holds no transition yet: add a rollout first.")
        slots, weights = self._draw(n)
        s = self.storage
        dev, T, B = self.device, self.T, self.B

        def flat(x: torch.Tensor) -> torch.Tensor:  # [T, B, ...] viewed as [T * B, ...]
            return x.reshape(T * B, *x.shape[2:])

        first = torch.as_tensor(slots, device=dev)
        if self.n_step == 1:  # the common case without a window
            last = first
            returns = flat(s["rewards"]).index_select(0, first).double()
            discount = torch.full((n,), self.gamma, dtype=torch.float64, device=dev)
        else:  # the n-step window, on the storage's device, over the sampled columns only
            t, b = first // B, first % B
            room = (self.cursor - 1 - t) % T  # steps stored after t in its column
            returns = torch.zeros(n, dtype=torch.float64, device=dev)
            discount = torch.ones(n, dtype=torch.float64, device=dev)
            last = first.clone()
            open_ = torch.ones(n, dtype=torch.bool, device=dev)  # the window may still grow
            for k in range(self.n_step):
                at = (t + k) % T * B + b
                open_ &= k <= room  # past the newest step lies the oldest data
                if k > 0:  # an episode starting there (e.g. rollouts from separate calls)
                    open_ &= ~flat(s["starts"]).index_select(0, at)
                reward = flat(s["rewards"]).index_select(0, at)
                returns = torch.where(open_, returns + discount * reward, returns)
                last = torch.where(open_, at, last)
                discount = torch.where(open_, discount * self.gamma, discount)
                open_ &= ~(
                    flat(s["terminations"]).index_select(0, at)
                    | flat(s["truncations"]).index_select(0, at)
                )

        def pick(x: torch.Tensor, at: torch.Tensor = first) -> torch.Tensor:
            return flat(x).index_select(0, at).unsqueeze(0)

        def restored(picked: Any) -> Any:  # observations back in their own dtype
            if self.obs_dtype is None:
                return picked
            return tree_map(lambda x, dtype: x.to(dtype), picked, self.obs_dtypes)

        batch = Rollout(
            observations=restored(tree_map(pick, s["observations"])),
            next_observations=restored(tree_map(partial(pick, at=last), s["next_observations"])),
            actions=tree_map(pick, s["actions"]),
            rewards=returns.to(s["rewards"].dtype)[None],
            terminations=pick(s["terminations"], last),
            truncations=pick(s["truncations"], last),
            valid=torch.ones(1, n, dtype=torch.bool, device=dev),
            starts=torch.ones(1, n, dtype=torch.bool, device=dev),
        )
        batch.discounts = discount.float()[None]
        batch.weights = torch.as_tensor(weights, dtype=torch.float32, device=dev)[None]
        batch.indices = slots
        return batch

    # ------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything stored, as tensors (``torch.save``-able, ``weights_only`` loadable)."""
        return {
            "storage": tree_map(lambda x: x.cpu(), self.storage),
            "shape": (self.T, self.B),
            "cursor": self.cursor,
            "filled": self.filled,
            "rng": self.rng.bit_generator.state,
            "obs_dtypes": tree_map(lambda d: str(d).removeprefix("torch."), self.obs_dtypes),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        storage = state["storage"]
        if self.lock is not None and storage is not None:  # shared: refill it in place
            with self.lock:
                tree_map(lambda mine, saved: mine.copy_(saved), self.storage, storage)
        else:  # copied: like torch's, a state dict holds references (another buffer's)
            self.storage = tree_map(lambda x: x.to(self.device, copy=True), storage)
        if state.get("obs_dtypes") is not None:
            self.obs_dtypes = tree_map(lambda name: getattr(torch, name), state["obs_dtypes"])
        self.T, self.B = state["shape"]
        self.cursor, self.filled = state["cursor"], state["filled"]
        self.rng.bit_generator.state = state["rng"]


class PrioritizedReplay(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016) on a :class:`SumTree`.

    New transitions get the largest priority seen so far; ``sample`` draws in proportion
    to ``priority ** alpha`` and returns importance weights ``(N P(i)) ** -beta``
    normalised by their batch maximum; ``update_priorities(batch.indices, td_errors)``
    sets ``|error| + eps`` after each learning step. ``alpha`` and ``beta`` may be changed
    between samples (e.g. beta annealed to 1).
    """

    def __init__(
        self,
        capacity: int,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
        **kwargs: Any,
    ) -> None:
        super().__init__(capacity, **kwargs)
        self.alpha, self.beta, self.eps = alpha, beta, eps
        self.tree: SumTree | None = None
        self._max = torch.ones(1, dtype=torch.float64)  # the largest priority so far

    max_priority = _Shared("_max")

    def share_memory(self, example: Rollout, lock: Any) -> PrioritizedReplay:
        super().share_memory(example, lock)
        if self.tree is None:
            self.tree = SumTree(self.T * self.B)
        self.tree.share_memory()
        self._max.share_memory_()
        return self

    def _added(self, rows: np.ndarray, valid: np.ndarray) -> None:
        if self.tree is None:
            self.tree = SumTree(self.T * self.B)
        slots = (rows[:, None] * self.B + np.arange(self.B)[None, :]).reshape(-1)
        priorities = np.where(valid.reshape(-1), self.max_priority**self.alpha, 0.0)
        self.tree.update(slots, priorities)

    def _draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.tree is None or self.tree.total <= 0:
            raise ValueError("the buffer holds no transition yet: add a rollout first.")
        return _prioritized_draw(self.tree, n, self.rng, len(self), self.beta)

    def update_priorities(self, indices: np.ndarray, errors: torch.Tensor | np.ndarray) -> None:
        """New priorities ``|error| + eps`` for the sampled transitions ``indices``."""
        errors = torch.as_tensor(errors).detach().reshape(-1).abs().cpu().double().numpy()
        priorities = errors + self.eps
        with self._guarded():
            self.max_priority = max(self.max_priority, float(priorities.max()))
            self.tree.update(np.asarray(indices), priorities**self.alpha)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["priorities"] = None if self.tree is None else torch.as_tensor(self.tree.tree)
        state["max_priority"] = self.max_priority
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.max_priority = state["max_priority"]
        if state["priorities"] is not None:
            if self.tree is None:
                self.tree = SumTree(self.T * self.B)
            self.tree.tree[:] = state["priorities"].numpy()  # in place: it may be shared

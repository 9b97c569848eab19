"""``Rollout``: what happened, as ``[T, B]`` tensors, and the operations algorithms need.

Every per-step field has leading dimensions ``[T, B]`` (time, then environment), nested
observations and actions included (see :mod:`rlx.tree`). Rows that are not
transitions — the steps after an environment's episode ended inside
``agent(policy).episode()``, or a next-step autoreset — have ``valid`` False and are zero
in every per-step field, so sums over a rollout are sums over real transitions.

Fields:

- ``observations``, ``next_observations``: the observation acted on at step t and the
  one that followed (the final observation where an episode ended).
- ``actions``, ``rewards``, ``terminations``, ``truncations``, ``valid``.
- ``starts``: step t is the first step of an episode (recurrent states reset there).
- ``recurrent_states``: the recurrent state that entered step t (``None`` for
  feed-forward policies). Stored for every step, dry rollouts included, so that any
  slice of a rollout can be re-evaluated from its own first step.
- ``prev_actions``, ``prev_rewards``: only for policies with ``previous_action_reward``.
- ``logprobs``, ``entropy`` ``[T, B]``; ``others``: the policy's extras, each
  ``[T, B, ...]``; ``next_others``: the same extras at ``next_observations`` (for
  bootstrapping). Not present on dry rollouts.
- ``returns``, ``advantages``: set by :meth:`mc_returns`, :meth:`gae`,
  :meth:`nstep_returns`.

Indexing follows ``[T, B]``: ``rollout[:-1]`` and ``rollout[:100]`` slice time,
``rollout[:, idx]`` selects environments. ``rollout1 + rollout2`` joins along the batch
(the shorter padded in time with invalid steps); :func:`cat` joins along time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from rlx.core import returns as returns_math
from rlx.core.deferred import Deferred
from rlx.core.rollout_axes import ALL, as_index, pad_time, permutation
from rlx.core.rollout_cat import cat
from rlx.core.rollout_fields import (
    DATA_FIELDS,
    EVALUATED_FIELDS,
    STEP_FIELDS,
    DryRolloutError,
    RolloutFields,
    field_map,
)
from rlx.core.rollout_returns import as_steps, bootstrap_values, episode_cuts

__all__ = ["DATA_FIELDS", "STEP_FIELDS", "DryRolloutError", "Rollout", "cat"]


class Rollout(RolloutFields):
    """Experience with leading dimensions ``[T, B]``; see the module docstring. The
    fields and their reading come from :class:`~rlx.core.rollout_fields.RolloutFields`."""

    # ------------------------------------------------------------- structure
    def _replace(self, fields: dict[str, Any]) -> Rollout:
        new = Rollout.__new__(Rollout)
        new.__dict__.update(fields)
        new.dry = self.dry
        new._entropy_error = self._entropy_error
        return new

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Rollout:
        """A new rollout with ``fn`` applied to every per-step tensor (to deferred fields
        when they are computed)."""

        def each(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is torch.Tensor:  # the common leaf, without tree_map's dispatch
                return fn(value)
            if isinstance(value, Deferred):
                return value.then(lambda tree: field_map(fn, tree))
            return field_map(fn, value)

        return self._replace({k: each(v) for k, v in self._raw_fields().items()})

    def to(self, device: torch.device | str) -> Rollout:
        """The rollout on another device (e.g. CPU sampling, GPU learning)."""
        return self.apply(lambda x: x.to(device))

    def detach(self) -> Rollout:
        """The rollout cut from the autograd graph."""
        return self.apply(torch.Tensor.detach)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain tensors and containers (``torch.save``-able, loadable with
        ``weights_only=True``), the action distributions left out; :meth:`from_dict`
        rebuilds the rollout."""
        fields = {k: v for k, v in self._fields().items() if v is not None}
        fields.pop("_distributions", None)  # torch distributions are not plain data
        return {"fields": fields, "dry": self.dry, "entropy_error": self._entropy_error}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Rollout:
        new = cls.__new__(cls)
        new.__dict__.update(dict.fromkeys(STEP_FIELDS))
        new.__dict__.update(state["fields"])
        new.dry = bool(state["dry"])
        new._entropy_error = state["entropy_error"]
        return new

    def as_dry(self) -> Rollout:
        """The same experience without log-probs, entropy and extras, ready to re-evaluate."""
        new = self._replace({**self._fields(), **dict.fromkeys(EVALUATED_FIELDS)})
        new.dry, new._entropy_error = True, None
        return new

    def __getitem__(self, index: Any) -> Rollout:
        if not isinstance(index, tuple):
            index = (index,)
        if len(index) > 2:
            raise IndexError("a Rollout is indexed as rollout[time] or rollout[time, env].")
        T, B = self.shape
        t_index = as_index(index[0], T, self.device, "time")
        b_index = as_index(index[1], B, self.device, "environment") if len(index) == 2 else ALL
        t_all, b_all = t_index == ALL, b_index == ALL

        def select(x: torch.Tensor) -> torch.Tensor:
            # index_select is several times cheaper than advanced indexing for small tensors
            if not t_all:
                x = x[t_index] if isinstance(t_index, slice) else x.index_select(0, t_index)
            if not b_all:
                x = x[:, b_index] if isinstance(b_index, slice) else x.index_select(1, b_index)
            return x

        selected = self.apply(select)
        # Any part of an all-valid rollout is all valid: pass the check on (PPO asks it of
        # every minibatch).
        if self._known_all_valid():
            selected._valid_cache = (selected.valid, selected.valid._version, True)
        return selected

    def __add__(self, other: Rollout) -> Rollout:
        """Join two rollouts along the batch (environment) dimension."""
        return cat([self, other], dim=1)

    def vectorize(self) -> Rollout:
        """All valid steps as one batch ``[1, N]``: independent samples for batched updates.

        Each sample keeps its own recurrent state, so a recurrent policy can re-evaluate a
        vectorized rollout step by step (one-step truncated backpropagation). Compute
        returns first: a vectorized rollout has no time order left, and ``returns`` and
        ``advantages`` already set are carried along.
        """
        mask = self.valid
        return self.apply(lambda x: x[mask].unsqueeze(0))

    def shifted(self) -> Rollout:
        """The same transitions seen from where they led: a dry rollout whose
        ``observations`` are this one's ``next_observations`` (previous actions and
        rewards: this one's actions and rewards), e.g. for SAC's and TD3's next actions:
        ``agent(actor).evaluate(batch.shifted(), actions="sample")``. Feed-forward only.
        """
        if self.recurrent_states is not None:
            raise ValueError(
                "shifted() needs a rollout without recurrent states: the state after each "
                "step comes from evaluating the rollout, so use that evaluation's step t + 1 "
                "(or the next_others of an evaluation for extras)."
            )
        fields = {name: getattr(self, name) for name in DATA_FIELDS}
        fields["observations"] = self.next_observations
        if self.prev_actions is not None:
            fields["prev_actions"], fields["prev_rewards"] = self.actions, self.rewards
        fields["starts"] = torch.zeros_like(self.starts)
        return Rollout(**fields, dry=True)

    def chunks(self, length: int) -> Rollout:
        """Cut time into pieces of ``length`` steps, side by side: ``[T, B]`` becomes
        ``[length, B * ceil(T / length)]`` (the last piece padded with invalid steps).

        Each piece starts from its own stored recurrent state, so a recurrent policy
        re-evaluates it exactly while backpropagating through at most ``length`` steps;
        minibatches of pieces keep recurrent training batched (truncated BPTT).
        """
        if length < 1:
            raise ValueError(f"chunk length must be at least 1, got {length}.")
        T, B = self.shape
        pieces = -(-T // length)
        fields = pad_time(self._fields(), pieces * length - T)

        def cut(x: torch.Tensor) -> torch.Tensor:
            x = x.reshape(pieces, length, B, *x.shape[2:]).transpose(0, 1)
            return x.reshape(length, pieces * B, *x.shape[3:])

        return self._replace({k: field_map(cut, v) for k, v in fields.items()})

    def shuffle(self, generator: torch.Generator | None = None) -> Rollout:
        """Permute the environments (columns) in place and return ``self``.

        Sequences stay intact (time order is never shuffled); on a vectorized rollout
        this shuffles individual transitions. Uses ``generator`` or a freshly seeded
        one: the global RNG state is never touched.
        """
        perm = permutation(self.batch_size, generator)
        shuffled = self[:, perm.to(self.device)]
        self.__dict__.update(shuffled.__dict__)
        return self

    def minibatches(
        self, size: int | None = None, generator: torch.Generator | None = None, *,
        count: int | None = None,
    ) -> Iterator[Rollout]:  # fmt: skip
        """Shuffled minibatches of the columns (environments; transitions once vectorized):
        of ``size`` columns each (the last one smaller when they do not divide), or
        ``count`` of them of sizes differing by at most one (fewer only when there are
        fewer columns): as many gradient steps whatever the batch's size."""
        if (size is None) == (count is None):
            raise ValueError("give minibatches() a size or a count, not both.")
        if (size if size is not None else count) < 1:
            raise ValueError(f"minibatch size and count must be at least 1, got {size or count}.")
        n = self.batch_size
        perm = permutation(n, generator).to(self.device)
        # One gather for the whole pass, then each minibatch is a view (a slice):
        # cheaper than a gather per minibatch over every field.
        shuffled = self[:, perm]
        if size is not None:
            bounds = list(range(0, n, size)) + [n]
        else:
            pieces = min(count, n)
            bounds = [i * n // pieces for i in range(pieces + 1)]
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            yield shuffled[:, start:stop]

    # -------------------------------------------------------------- statistics
    def _known_all_valid(self) -> bool | None:
        """:meth:`_all_valid` if remembered for this ``valid`` tensor, else None."""
        cache = self.__dict__.get("_valid_cache")
        if cache is None or cache[0] is not self.valid or cache[1] != self.valid._version:
            return None
        return cache[2]

    def _all_valid(self) -> bool:
        """Whether every step is valid (remembered for this ``valid`` tensor; on CPU
        this check is cheap, on GPU it is one synchronisation per rollout)."""
        known = self._known_all_valid()
        if known is None:
            known = bool(self.valid.all())
            self._valid_cache = (self.valid, self.valid._version, known)
        return known

    def step_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of a per-step quantity ``[T, B]`` over the valid steps (keeps gradients)."""
        valid = self.valid
        if x.shape[:2] != valid.shape:
            raise ValueError(
                f"step_mean needs a [T, B] = {list(valid.shape)} tensor, got {list(x.shape)}."
            )
        if self._all_valid():
            return x.mean()
        return self._masked(x).sum() / valid.sum().clamp(min=1)

    def standardize(self, x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        """``x`` shifted and scaled to mean 0, std 1 over the valid steps; 0 elsewhere."""
        if self._all_valid() and x.numel() >= 2:
            return (x - x.mean()) / (x.std() + eps)
        values = x[self.valid]
        if values.numel() < 2:
            return self._masked(x - values.mean()) if values.numel() else x
        return self._masked((x - values.mean()) / (values.std() + eps))

    # ---------------------------------------------------------------- returns
    def _masked(self, x: torch.Tensor) -> torch.Tensor:
        if self._all_valid():
            return x
        return torch.where(self.valid, x, torch.zeros((), dtype=x.dtype, device=x.device))

    def mc_returns(self, gamma: float = 0.99) -> torch.Tensor:
        """Discounted Monte-Carlo returns within episodes, no bootstrapping; sets ``returns``."""
        self._returns = self._masked(
            returns_math.discounted_returns(self.rewards, episode_cuts(self), gamma)
        )
        return self._returns

    def gae(
        self,
        values: torch.Tensor,
        gamma: float = 0.99,
        lam: float = 0.95,
        next_values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Generalised advantage estimation; returns advantages and sets ``returns``.

        Bootstraps from ``next_values`` on truncation and at the end of a segment, never
        after termination. ``next_values`` defaults to the ``next_others`` entry matching
        ``values`` when ``values`` is one of ``rollout.others``. ``returns`` becomes
        ``advantages + values`` (the value target).
        """
        nxt = bootstrap_values(self, values, next_values)
        values = as_steps(values, self.shape, "values")
        adv = returns_math.gae(
            self.rewards, values, nxt, self.terminations, episode_cuts(self), gamma, lam
        )
        self._advantages = self._masked(adv)
        self._returns = self._masked(adv + values.detach())
        return self._advantages

    def vtrace(
        self,
        values: torch.Tensor,
        log_ratios: torch.Tensor,
        gamma: float = 0.99,
        rho_clip: float = 1.0,
        c_clip: float = 1.0,
        next_values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Off-policy targets with truncated importance weights (V-trace).

        ``log_ratios`` are log pi(a|s) - log mu(a|s) of the learner over the policy that
        sampled the rollout. Sets ``returns`` (value targets) and returns and sets
        ``advantages`` (already weighted by the truncated ratio). ``next_values`` is
        found as in :meth:`gae`.
        """
        nxt = bootstrap_values(self, values, next_values)
        values = as_steps(values, self.shape, "values")
        targets, adv = returns_math.vtrace(
            self.rewards, values, nxt, as_steps(log_ratios, self.shape, "log_ratios"),
            self.terminations, episode_cuts(self), gamma, rho_clip, c_clip,
        )  # fmt: skip
        self._returns = self._masked(targets)
        self._advantages = self._masked(adv)
        return self._advantages

    def nstep_returns(
        self,
        values: torch.Tensor,
        n: int,
        gamma: float = 0.99,
        next_values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n-step bootstrapped returns; sets ``returns``. ``values`` locates ``next_values``
        as in :meth:`gae`."""
        nxt = bootstrap_values(self, values, next_values)
        out = returns_math.nstep_returns(
            self.rewards, nxt, self.terminations, episode_cuts(self), n, gamma
        )
        self._returns = self._masked(out)
        return self._returns

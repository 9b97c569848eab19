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

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from rlx.core import returns as returns_math
from rlx.core.forward import Deferred
from rlx.tree import Tree, tree_map, tree_structure


class DryRolloutError(AttributeError):
    """Raised when a dry rollout is asked for what only a policy evaluation produces."""


# Per-step fields, in order; each holds a tree of [T, B, ...] tensors or None.
STEP_FIELDS = (
    "observations",
    "next_observations",
    "actions",
    "rewards",
    "terminations",
    "truncations",
    "valid",
    "starts",
    "recurrent_states",
    "prev_actions",
    "prev_rewards",
    "_logprobs",
    "_entropy",
    "_others",
    "_next_others",
    "_returns",
    "_advantages",
)
_EVALUATED = ("_logprobs", "_entropy", "_others", "_next_others")
# What the environment produced (and the states that entered each step): a dry rollout.
DATA_FIELDS = STEP_FIELDS[:11]


def _dry_error(name: str) -> DryRolloutError:
    return DryRolloutError(
        f"this rollout is dry (sampled with dry=True): it holds observations, actions and "
        f"rewards but no {name}. Re-evaluate it under a policy first: "
        "`rollout = agent(policy).evaluate(rollout)`."
    )


class Rollout:
    """Experience with leading dimensions ``[T, B]``; see the module docstring."""

    def __init__(
        self,
        *,
        observations: Tree,
        next_observations: Tree,
        actions: Tree,
        rewards: torch.Tensor,
        terminations: torch.Tensor,
        truncations: torch.Tensor,
        valid: torch.Tensor,
        starts: torch.Tensor,
        recurrent_states: Tree = None,
        prev_actions: Tree = None,
        prev_rewards: torch.Tensor | None = None,
        logprobs: torch.Tensor | Callable[[], torch.Tensor] | None = None,
        entropy: torch.Tensor | Callable[[], torch.Tensor] | None = None,
        others: tuple[Any, ...] | None = None,
        next_others: tuple[Any, ...] | None = None,
        returns: torch.Tensor | None = None,
        advantages: torch.Tensor | None = None,
        dry: bool = True,
    ) -> None:
        self.observations = observations
        self.next_observations = next_observations
        self.actions = actions
        self.rewards = rewards
        self.terminations = terminations
        self.truncations = truncations
        self.valid = valid
        self.starts = starts
        self.recurrent_states = recurrent_states
        self.prev_actions = prev_actions
        self.prev_rewards = prev_rewards
        self._logprobs = logprobs
        self._entropy = entropy
        self._others = others
        self._next_others = next_others
        self._returns = returns
        self._advantages = advantages
        self.dry = dry
        self._entropy_error: str | None = None

    # ------------------------------------------------------------------ fields
    def _materialize(self) -> None:
        """Compute log-probs, entropy and extras given as :class:`Deferred` values."""
        self._resolve_logprobs()
        self._resolve_entropy()
        if isinstance(self._others, Deferred):
            self._others = self._others()

    def _resolve_logprobs(self) -> None:
        if isinstance(self._logprobs, Deferred):
            self._logprobs = self._logprobs()

    def _resolve_entropy(self) -> None:
        if isinstance(self._entropy, Deferred):
            try:
                self._entropy = self._entropy()
            except NotImplementedError as err:  # e.g. a tanh-squashed Normal
                self._entropy, self._entropy_error = None, str(err)

    @property
    def logprobs(self) -> torch.Tensor:
        """Joint log-probability of each action under the policy, ``[T, B]``."""
        if self.dry:
            raise _dry_error("log-probs")
        self._resolve_logprobs()
        return self._logprobs

    @property
    def entropy(self) -> torch.Tensor:
        """Entropy of the policy's action distribution at each step, ``[T, B]``."""
        if self.dry:
            raise _dry_error("entropy")
        self._resolve_entropy()
        if self._entropy_error is not None:
            raise NotImplementedError(self._entropy_error)
        return self._entropy

    def entropy_or_estimate(self) -> torch.Tensor:
        """``entropy`` where the distribution has it in closed form, else ``-logprobs``:
        the one-sample estimate (e.g. for a tanh-squashed Gaussian), ``[T, B]``."""
        if self.dry:
            raise _dry_error("entropy")
        self._resolve_entropy()
        if self._entropy_error is not None:
            return -self.logprobs
        return self._entropy

    @property
    def others(self) -> tuple[Any, ...]:
        """The policy's extras in the order ``forward`` returned them, each ``[T, B, ...]``."""
        if self.dry:
            raise _dry_error("extras (rollout.others)")
        if isinstance(self._others, Deferred):
            self._others = self._others()
        return self._others

    @property
    def next_others(self) -> tuple[Any, ...]:
        """The extras evaluated at ``next_observations``: bootstrap values come from here."""
        if self.dry:
            raise _dry_error("extras (rollout.next_others)")
        if isinstance(self._next_others, Deferred):
            self._next_others = self._next_others()
        return self._next_others

    @property
    def returns(self) -> torch.Tensor:
        """Return targets ``[T, B]``, set by ``mc_returns``, ``gae`` or ``nstep_returns``."""
        if self._returns is None:
            raise AttributeError(
                "rollout.returns is not set yet: call rollout.mc_returns(gamma), "
                "rollout.gae(values, gamma, lam) or rollout.nstep_returns(values, n, gamma)."
            )
        return self._returns

    @returns.setter
    def returns(self, value: torch.Tensor) -> None:
        self._returns = value

    @property
    def advantages(self) -> torch.Tensor:
        """Advantages ``[T, B]`` set by :meth:`gae`."""
        if self._advantages is None:
            raise AttributeError("rollout.advantages is set by rollout.gae(values, gamma, lam).")
        return self._advantages

    @property
    def dones(self) -> torch.Tensor:
        """Episode ended at this step (terminated or truncated), ``[T, B]``."""
        return self.terminations | self.truncations

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.rewards.shape[:2])  # type: ignore[return-value]

    @property
    def batch_size(self) -> int:
        """Number of environments (columns) B."""
        return self.rewards.shape[1]

    @property
    def num_steps(self) -> int:
        """Number of valid transitions."""
        return int(self.valid.sum())

    @property
    def device(self) -> torch.device:
        return self.rewards.device

    def __len__(self) -> int:
        """Number of time steps T."""
        return self.rewards.shape[0]

    def __repr__(self) -> str:
        kind = "dry" if self.dry else "evaluated"
        T, B = self.shape
        return f"Rollout(T={T}, B={B}, valid={self.num_steps}, {kind}, device={self.device})"

    # ------------------------------------------------------------- structure
    def _fields(self) -> dict[str, Any]:
        """Every field, deferred ones computed."""
        self._materialize()
        if isinstance(self._next_others, Deferred):
            self._next_others = self._next_others()
        return self._raw_fields()

    def _raw_fields(self) -> dict[str, Any]:
        """The fields as stored, deferred ones not computed."""
        return {name: getattr(self, name) for name in STEP_FIELDS}

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
                return value.then(lambda tree: tree_map(fn, tree))
            return tree_map(fn, value)

        return self._replace({k: each(v) for k, v in self._raw_fields().items()})

    def to(self, device: torch.device | str) -> Rollout:
        """The rollout on another device (e.g. CPU sampling, GPU learning)."""
        return self.apply(lambda x: x.to(device))

    def detach(self) -> Rollout:
        """The rollout cut from the autograd graph."""
        return self.apply(torch.Tensor.detach)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain tensors and containers (``torch.save``-able, loadable with
        ``weights_only=True``); :meth:`from_dict` rebuilds the rollout."""
        fields = {k: v for k, v in self._fields().items() if v is not None}
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
        fields = self._fields()
        for name in _EVALUATED:
            fields[name] = None
        new = self._replace(fields)
        new.dry, new._entropy_error = True, None
        return new

    def __getitem__(self, index: Any) -> Rollout:
        if not isinstance(index, tuple):
            index = (index,)
        if len(index) > 2:
            raise IndexError("a Rollout is indexed as rollout[time] or rollout[time, env].")
        T, B = self.shape
        t_index = _as_index(index[0], T, self.device, "time")
        b_index = _as_index(index[1], B, self.device, "environment") if len(index) == 2 else _ALL
        t_all, b_all = t_index == _ALL, b_index == _ALL

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
        cache = self.__dict__.get("_valid_cache")
        if (
            cache is not None
            and cache[2]
            and cache[0] is self.valid
            and cache[1] == self.valid._version
        ):
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
        ``observations`` are this one's ``next_observations`` (and whose previous actions
        and rewards are this one's actions and rewards), for evaluating a policy at the
        next states, e.g. SAC's and TD3's next actions:
        ``agent(actor).evaluate(batch.shifted(), actions="sample")``.

        Feed-forward only: the recurrent state after each step is known only by
        evaluating the rollout, so a recurrent policy takes its next step from that
        evaluation (step ``t + 1``) instead.
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
        new = Rollout(**fields, dry=True)
        return new

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
        fields = _pad_time(self._fields(), pieces * length - T)

        def cut(x: torch.Tensor) -> torch.Tensor:
            x = x.reshape(pieces, length, B, *x.shape[2:]).transpose(0, 1)
            return x.reshape(length, pieces * B, *x.shape[3:])

        return self._replace({k: tree_map(cut, v) for k, v in fields.items()})

    def shuffle(self, generator: torch.Generator | None = None) -> Rollout:
        """Permute the environments (columns) in place and return ``self``.

        Sequences stay intact (time order is never shuffled); on a vectorized rollout
        this shuffles individual transitions. Uses ``generator`` or a freshly seeded
        one: the global RNG state is never touched.
        """
        perm = _permutation(self.batch_size, generator)
        shuffled = self[:, perm.to(self.device)]
        self.__dict__.update(shuffled.__dict__)
        return self

    def minibatches(self, size: int, generator: torch.Generator | None = None) -> Iterator[Rollout]:
        """Shuffled minibatches of ``size`` columns (environments; transitions once vectorized)."""
        if size < 1:
            raise ValueError(f"minibatch size must be at least 1, got {size}.")
        perm = _permutation(self.batch_size, generator).to(self.device)
        # One gather for the whole pass, then each minibatch is a view (a slice):
        # cheaper than a gather per minibatch over every field.
        shuffled = self[:, perm]
        for start in range(0, self.batch_size, size):
            yield shuffled[:, start : start + size]

    # -------------------------------------------------------------- statistics
    def _all_valid(self) -> bool:
        """Whether every step is valid (remembered for this ``valid`` tensor; on CPU
        this check is cheap, on GPU it is one synchronisation per rollout)."""
        cache = self.__dict__.get("_valid_cache")
        if cache is None or cache[0] is not self.valid or cache[1] != self.valid._version:
            cache = (self.valid, self.valid._version, bool(self.valid.all()))
            self._valid_cache = cache
        return cache[2]

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

    def _cuts(self) -> torch.Tensor:
        """Where a return recursion stops: episode ends, invalid steps, and any step
        followed by an episode start (rollouts joined with ``cat`` or after a reset)."""
        cuts = self.terminations | self.truncations | ~self.valid
        cuts[:-1] |= self.starts[1:]
        return cuts

    def _next_values_for(self, values: torch.Tensor, next_values: torch.Tensor | None):
        if next_values is not None:
            return next_values
        if not self.dry and self._others is not None:
            for extra, nxt in zip(self.others, self.next_others or (), strict=False):
                if extra is values:
                    return nxt
        raise ValueError(
            "cannot find the bootstrap values for these values. Pass the extra itself "
            "(values, = rollout.others; rollout.gae(values, ...)) so rlx uses the matching "
            "rollout.next_others entry, or pass next_values=... explicitly (the values of "
            "rollout.next_observations, e.g. from agent(critic).evaluate(rollout).next_others)."
        )

    def mc_returns(self, gamma: float = 0.99) -> torch.Tensor:
        """Discounted Monte-Carlo returns within episodes, no bootstrapping; sets ``returns``."""
        self._returns = self._masked(
            returns_math.discounted_returns(self.rewards, self._cuts(), gamma)
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
        nxt = _as_steps(self._next_values_for(values, next_values), self.shape, "next_values")
        values = _as_steps(values, self.shape, "values")
        adv = returns_math.gae(
            self.rewards, values, nxt, self.terminations, self._cuts(), gamma, lam
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
        nxt = _as_steps(self._next_values_for(values, next_values), self.shape, "next_values")
        values = _as_steps(values, self.shape, "values")
        targets, adv = returns_math.vtrace(
            self.rewards, values, nxt, _as_steps(log_ratios, self.shape, "log_ratios"),
            self.terminations, self._cuts(), gamma, rho_clip, c_clip,
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
        nxt = _as_steps(self._next_values_for(values, next_values), self.shape, "next_values")
        out = returns_math.nstep_returns(
            self.rewards, nxt, self.terminations, self._cuts(), n, gamma
        )
        self._returns = self._masked(out)
        return self._returns


def _as_steps(x: torch.Tensor, shape: tuple[int, int], name: str) -> torch.Tensor:
    if x.dim() == 3 and x.shape[2] == 1:
        x = x.squeeze(2)
    if tuple(x.shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {tuple(x.shape)} but the rollout is {list(shape)}: pass one "
            "value per step, shape [T, B]."
        )
    return x


_ALL = slice(None)


def _as_index(i: Any, size: int, device: torch.device, axis: str) -> slice | torch.Tensor:
    """A slice, or a 1-D tensor of positions in ``range(size)``.

    Integers (Python, numpy or 0-d tensors) keep their dimension, so a Rollout stays
    ``[T, B]``; negative positions count from the end; boolean masks become positions.
    """
    if isinstance(i, slice):
        return i
    if i is Ellipsis or i is None:
        raise IndexError(
            "a Rollout is indexed as rollout[time] or rollout[time, env]: no ... or None."
        )
    if isinstance(i, (int, np.integer)) or (isinstance(i, torch.Tensor) and i.dim() == 0):
        k = int(i)
        if not -size <= k < size:
            raise IndexError(
                f"{axis} index {k} is out of range for a rollout with {size} {axis} steps."
            )
        k %= size
        return slice(k, k + 1)
    i = torch.as_tensor(np.asarray(i) if isinstance(i, (list, tuple)) else i, device=device)
    if i.dtype == torch.bool:
        if i.dim() > 1:
            raise IndexError(
                "a 2-D boolean mask would flatten time and environments; use "
                "rollout.vectorize() to keep only valid steps as one batch."
            )
        if len(i) != size:
            raise IndexError(f"boolean {axis} mask has {len(i)} entries for {size} {axis} steps.")
        return i.nonzero().squeeze(1)
    if i.dim() != 1 or i.is_floating_point():
        raise IndexError(
            "index a Rollout with ints, slices or 1-D integer positions, "
            f"got {i.dtype} of shape {tuple(i.shape)}."
        )
    i = i.long()
    if len(i) and (bool((i < -size).any()) or bool((i >= size).any())):
        raise IndexError(f"{axis} positions {i.tolist()} are out of range for {size} {axis} steps.")
    return torch.where(i < 0, i + size, i)


def _permutation(n: int, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    return torch.randperm(n, generator=generator)


def cat(rollouts: Sequence[Rollout], dim: int = 0) -> Rollout:
    """Concatenate rollouts along time (``dim=0``) or environments (``dim=1``).

    Along time the environment counts must match (e.g. consecutive ``steps()``
    segments). Along environments, shorter rollouts are padded at the end with invalid
    steps. All must come from the same environment and be all dry or all evaluated.
    """
    if dim not in (0, 1):
        raise ValueError(f"dim must be 0 (time) or 1 (environments), got {dim}.")
    rollouts = list(rollouts)
    if not rollouts:
        raise ValueError("cat needs at least one rollout.")
    fields = [r._fields() for r in rollouts]
    first = rollouts[0]
    for k, (r, f) in enumerate(zip(rollouts[1:], fields[1:], strict=True), start=1):
        if r.dry != first.dry:
            raise ValueError(
                f"cannot concatenate a dry rollout with an evaluated one (rollout {k}). "
                "Evaluate both under the same policy, or drop the evaluation with "
                "rollout.as_dry()."
            )
        for name in STEP_FIELDS:
            a, b = fields[0][name], f[name]
            if (a is None) != (b is None) or tree_structure(a) != tree_structure(b):
                raise ValueError(
                    f"cannot concatenate rollouts: field {name.lstrip('_')!r} differs "
                    f"(rollout 0: {tree_structure(a)}, rollout {k}: {tree_structure(b)}). "
                    "Rollouts must come from the same environment and policy outputs."
                )
        if dim == 0 and r.batch_size != first.batch_size:
            raise ValueError(
                f"cannot concatenate along time: rollout 0 has {first.batch_size} environments "
                f"and rollout {k} has {r.batch_size}. Use `+` (or dim=1) to join environments."
            )
    if dim == 1:
        T = max(len(r) for r in rollouts)
        fields = [_pad_time(f, T - len(r)) for f, r in zip(fields, rollouts, strict=True)]
    joined = {
        name: tree_map(lambda *xs: torch.cat(xs, dim), *(f[name] for f in fields))
        for name in STEP_FIELDS
    }
    return first._replace(joined)


def _pad_time(fields: dict[str, Any], extra: int) -> dict[str, Any]:
    if extra == 0:
        return fields

    def pad(x: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros((extra, *x.shape[1:]), dtype=x.dtype, device=x.device)
        return torch.cat([x, zeros], 0)

    return {k: tree_map(pad, v) for k, v in fields.items()}

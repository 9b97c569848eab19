"""What a :class:`~rlx.core.rollout.Rollout` holds: the per-step field names, grouped by
where they come from, and :class:`RolloutFields`, the base of ``Rollout`` that stores
them (evaluation fields may be :class:`~rlx.core.deferred.Deferred`, computed when first
read) and raises :class:`DryRolloutError` when a dry rollout is asked for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rlx.core.deferred import Deferred
from rlx.core.distribution import ActionDistribution
from rlx.tree import Tree, tree_map

# What the environment produced (and the states that entered each step): all a dry
# rollout holds.
DATA_FIELDS = (
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
)
# What evaluating a policy adds (absent from dry rollouts).
EVALUATED_FIELDS = ("_logprobs", "_entropy", "_others", "_next_others", "_distributions")
# What the return methods set (mc_returns, gae, vtrace, nstep_returns).
TARGET_FIELDS = ("_returns", "_advantages")
# Per-step fields, in order; each holds a tree of [T, B, ...] tensors or None (the
# distributions: an ActionDistribution batched [T, B]).
STEP_FIELDS = DATA_FIELDS + EVALUATED_FIELDS + TARGET_FIELDS


def field_map(fn: Callable[..., torch.Tensor], value: Any, *rest: Any) -> Any:
    """``fn`` applied to every ``[T, B, ...]`` tensor of a field's value (and the same
    field of ``rest``): the leaves of a tree, or the batched parameters of the rollout's
    distributions."""
    if isinstance(value, ActionDistribution):
        return value.map(fn, *rest)
    return tree_map(fn, value, *rest)


class DryRolloutError(AttributeError):
    """Raised when a dry rollout is asked for what only a policy evaluation produces."""


def dry_error(name: str) -> DryRolloutError:
    """The error for reading ``name`` (log-probs, entropy, extras) from a dry rollout."""
    return DryRolloutError(
        f"this rollout is dry (sampled with dry=True): it holds observations, actions and "
        f"rewards but no {name}. Re-evaluate it under a policy first: "
        "`rollout = agent(policy).evaluate(rollout)`."
    )


class RolloutFields:
    """The stored fields of a rollout and their reading; the base of ``Rollout``."""

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
        distributions: ActionDistribution | Deferred | None = None,
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
        self._distributions = distributions
        self._returns = returns
        self._advantages = advantages
        self.dry = dry
        self._entropy_error: str | None = None

    # ------------------------------------------------------------------ fields
    def _resolved(self, name: str) -> Any:
        """Field ``name`` (e.g. ``"_logprobs"``), computed and stored on first read when it
        was given as a :class:`Deferred` value: the one place lazy fields resolve."""
        value = getattr(self, name)
        if isinstance(value, Deferred):
            try:
                value = value()
            except NotImplementedError as err:  # an entropy with no closed form
                if name != "_entropy":
                    raise
                value, self._entropy_error = None, str(err)
            setattr(self, name, value)
        return value

    @property
    def logprobs(self) -> torch.Tensor:
        """Joint log-probability of each action under the policy, ``[T, B]``."""
        if self.dry:
            raise dry_error("log-probs")
        return self._resolved("_logprobs")

    @property
    def entropy(self) -> torch.Tensor:
        """Entropy of the policy's action distribution at each step, ``[T, B]``."""
        if self.dry:
            raise dry_error("entropy")
        entropy = self._resolved("_entropy")
        if self._entropy_error is not None:
            raise NotImplementedError(self._entropy_error)
        return entropy

    def entropy_or_estimate(self) -> torch.Tensor:
        """``entropy`` where the distribution has it in closed form, else ``-logprobs``:
        the one-sample estimate (e.g. for a tanh-squashed Gaussian), ``[T, B]``."""
        if self.dry:
            raise dry_error("entropy")
        entropy = self._resolved("_entropy")
        return -self.logprobs if self._entropy_error is not None else entropy

    @property
    def others(self) -> tuple[Any, ...]:
        """The policy's extras in the order ``forward`` returned them, each ``[T, B, ...]``."""
        if self.dry:
            raise dry_error("extras (rollout.others)")
        return self._resolved("_others")

    @property
    def next_others(self) -> tuple[Any, ...]:
        """The extras evaluated at ``next_observations``: bootstrap values come from here."""
        if self.dry:
            raise dry_error("extras (rollout.next_others)")
        return self._resolved("_next_others")

    @property
    def distributions(self) -> ActionDistribution:
        """The policy's action distribution at every step, one ``ActionDistribution``
        batched ``[T, B]`` (built when first read): ``log_prob``, ``entropy``,
        ``sample`` and ``mode`` give ``[T, B]`` values, and :func:`rlx.kl` compares it with
        another policy's on the same steps. It follows the rollout through slicing,
        shuffling, ``vectorize``, ``chunks`` and joins. Rows that are not transitions
        hold whatever the policy returned there (``valid`` says which)."""
        if self.dry:
            raise dry_error("action distributions")
        value = self._resolved("_distributions")
        if value is None:
            raise AttributeError(
                "this rollout holds no action distributions (a rollout rebuilt by "
                "Rollout.from_dict does not keep them): re-evaluate it with "
                "`agent(policy).evaluate(rollout.as_dry())`."
            )
        return value

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

    def _fields(self) -> dict[str, Any]:
        """Every field, deferred ones computed."""
        for name in EVALUATED_FIELDS:
            self._resolved(name)
        return self._raw_fields()

    def _raw_fields(self) -> dict[str, Any]:
        """The fields as stored, deferred ones not computed."""
        return {name: getattr(self, name) for name in STEP_FIELDS}

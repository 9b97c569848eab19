"""``ActionDistribution``: several ``torch.distributions`` acting as one joint action.

Each component is a torch distribution whose first batch dimension is the environment
batch ``B``; every further dimension of its log-prob is summed, so the joint
``log_prob`` and ``entropy`` have shape ``[B]``. Components map onto action spaces:

- ``Discrete``: one ``Categorical``.
- ``Box``: one component whose samples have shape ``[B, *box.shape]`` (``Normal``,
  ``Independent``, ``MultivariateNormal``, ``Beta``...).
- ``MultiDiscrete``: one ``Categorical`` with batch shape ``[B, k]`` (equal sizes), or
  ``k`` ``Categorical`` components, one per dimension.
- ``MultiBinary``: one ``Bernoulli``.
- ``Tuple``: one component per sub-space, in order.
- ``Dict``: keyword components, ``ActionDistribution(move=Normal(...), fire=Categorical(...))``,
  or positional ones in the order of the space's keys.

An action is a tensor when there is one component, a tuple of tensors for several
positional components and a dict for keyword components.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.distributions import Categorical, Distribution, TransformedDistribution

import rlx.fast
from rlx.fast import distributions as fast_distributions

Action = Any  # a tensor, a tuple of tensors or a dict of tensors


def _per_step(x: torch.Tensor) -> torch.Tensor:
    """Sum every dimension after the batch dimension: one value per step."""
    if x.dim() <= 1:
        return x
    return x.flatten(1).sum(1)


def categorical(logits: torch.Tensor, validate_args: bool | None = None) -> Categorical:
    """``torch.distributions.Categorical(logits=logits)``; with the fast paths on, built
    by :func:`rlx.fast.distributions.categorical` (one ``log_softmax`` instead of torch's
    normalisation). The ready policies build theirs this way; a user policy may too."""
    if logits.dim() < 1:
        raise ValueError("categorical needs logits with at least one dimension.")
    if rlx.fast.enabled():
        return fast_distributions.categorical(logits, validate_args)
    return Categorical(logits=logits, validate_args=validate_args)


def sample_component(d: Distribution) -> torch.Tensor:
    """``d.sample()``, or with the fast paths on an exact faster sampler for the most
    common components (:func:`rlx.fast.distributions.sample`)."""
    if rlx.fast.enabled():
        drawn = fast_distributions.sample(d)
        if drawn is not None:
            return drawn
    return d.sample()


def component_log_prob(d: Distribution, action: torch.Tensor) -> torch.Tensor:
    """``d.log_prob(action)`` (with the fast paths on, a gather for a ``Categorical``)."""
    if rlx.fast.enabled():
        found = fast_distributions.log_prob(d, action)
        if found is not None:
            return found
    return d.log_prob(action)


def component_mode(d: Distribution) -> torch.Tensor:
    """The most likely value; for a transformed distribution (e.g. tanh-squashed Normal)
    the transformed mode of its base, the usual deterministic action."""
    if isinstance(d, TransformedDistribution):
        x = component_mode(d.base_dist)
        for transform in d.transforms:
            x = transform(x)
        return x
    try:
        return d.mode
    except NotImplementedError:
        try:
            return d.mean
        except NotImplementedError:
            raise NotImplementedError(
                f"{type(d).__name__} has neither a mode nor a mean, so rlx cannot act "
                "deterministically with it; sample instead."
            ) from None


class ActionDistribution:
    """A joint distribution over one action made of independent components.

    Args:
        *components: torch distributions, one per action component.
        **named: torch distributions by name, for ``Dict`` action spaces.

    Example::

        return state, rlx.ActionDistribution(Normal(mu, std), Categorical(logits=l)), value
    """

    __slots__ = ("components", "names")

    def __init__(self, *components: Distribution, **named: Distribution) -> None:
        if components and named:
            raise TypeError(
                "ActionDistribution takes either positional components or keyword "
                "components (for Dict action spaces), not both."
            )
        dists = components or tuple(named.values())
        if not dists:
            raise TypeError("ActionDistribution needs at least one torch distribution.")
        for i, d in enumerate(dists):
            if not isinstance(d, Distribution):
                raise TypeError(
                    f"ActionDistribution component {i} is a {type(d).__name__}, not a "
                    "torch.distributions.Distribution. Pass distributions, e.g. "
                    "rlx.ActionDistribution(torch.distributions.Categorical(logits=x))."
                )
        self.components: tuple[Distribution, ...] = tuple(dists)
        self.names: tuple[str, ...] | None = tuple(named) if named else None

    def pack(self, parts: list[torch.Tensor]) -> Action:
        """One action from a value per component: a tensor, a tuple or a dict."""
        if self.names is not None:
            return dict(zip(self.names, parts, strict=True))
        if len(parts) == 1:
            return parts[0]
        return tuple(parts)

    def unpack(self, action: Action) -> list[torch.Tensor]:
        """The value per component of ``action`` (the inverse of :meth:`pack`)."""
        if self.names is not None:
            if not isinstance(action, dict):
                raise TypeError(
                    f"this ActionDistribution has named components {self.names}; "
                    f"log_prob needs a dict action, got {type(action).__name__}."
                )
            return [action[k] for k in self.names]
        if len(self.components) == 1:
            return [action]
        if not isinstance(action, (tuple, list)) or len(action) != len(self.components):
            raise TypeError(
                f"this ActionDistribution has {len(self.components)} components; "
                "log_prob needs a tuple with one action per component."
            )
        return list(action)

    def sample(self) -> Action:
        """Draw one action per environment (no gradient)."""
        return self.pack([sample_component(d) for d in self.components])

    def rsample(self) -> Action:
        """Draw a reparameterised action (gradients flow into the parameters)."""
        return self.pack([d.rsample() for d in self.components])

    def mode(self) -> Action:
        """The most likely action of each component: deterministic acting."""
        return self.pack([component_mode(d) for d in self.components])

    def log_prob(self, action: Action) -> torch.Tensor:
        """Joint log-probability of ``action``, shape ``[B]``."""
        parts = self.unpack(action)
        total = _per_step(component_log_prob(self.components[0], parts[0]))
        for d, a in zip(self.components[1:], parts[1:], strict=True):
            total = total + _per_step(component_log_prob(d, a))
        return total

    def entropy(self) -> torch.Tensor:
        """Joint entropy (sum over independent components), shape ``[B]``."""
        total = None
        for i, d in enumerate(self.components):
            try:
                h = _per_step(d.entropy())
            except NotImplementedError:
                raise NotImplementedError(
                    f"component {i} ({type(d).__name__}) has no closed-form entropy, so "
                    "rollout.entropy is unavailable; use -rollout.logprobs as a one-sample "
                    "estimate."
                ) from None
            total = h if total is None else total + h
        return total

    @property
    def batch_size(self) -> int:
        shape = self.components[0].batch_shape
        return shape[0] if len(shape) else 1

    def __repr__(self) -> str:
        names = self.names or ("",) * len(self.components)
        inner = ", ".join(
            f"{n}={d}" if n else repr(d) for n, d in zip(names, self.components, strict=True)
        )
        return f"ActionDistribution({inner})"


def stack_steps(dists: list[ActionDistribution]) -> ActionDistribution | None:
    """The per-step distributions of a rollout as one distribution over ``T * B`` rows,
    whose log-probs are the same numbers in one call (with the fast paths on, where
    :func:`rlx.fast.distributions.stack_components` can join them); None otherwise (the
    caller then goes step by step)."""
    first = dists[0]
    if not rlx.fast.enabled() or any(d.names != first.names for d in dists):
        return None
    stacked = fast_distributions.stack_components([d.components for d in dists])
    if stacked is None:
        return None
    if first.names is not None:
        return ActionDistribution(**dict(zip(first.names, stacked, strict=True)))
    return ActionDistribution(*stacked)

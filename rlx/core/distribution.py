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

A rollout's distributions (``rollout.distributions``) are one ``ActionDistribution``
whose components are batched ``[T, B]`` (``batch_ndims=2``): :meth:`ActionDistribution.map`
rebuilds a distribution with a function applied to each of its batched parameters, which
is how per-step distributions are stacked, reshaped, sliced and joined like any rollout
field. :func:`kl` compares two of them step by step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.distributions import Categorical, Distribution, TransformedDistribution, kl_divergence

import rlx.fast
from rlx.fast import distributions as fast_distributions

Action = Any  # a tensor, a tuple of tensors or a dict of tensors


def _per_step(x: torch.Tensor, batch_ndims: int = 1) -> torch.Tensor:
    """Sum every dimension after the ``batch_ndims`` batch dimensions: one value per step."""
    if x.dim() <= batch_ndims:
        return x
    return x.flatten(batch_ndims).sum(batch_ndims)


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

    __slots__ = ("batch_ndims", "components", "names")

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
        # Leading batch dimensions of every component: 1 (``[B]``) as a policy returns
        # it, 2 (``[T, B]``) for a rollout's distributions.
        self.batch_ndims = 1

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
        """Joint log-probability of ``action``, shape ``[B]`` (``[T, B]`` for a rollout's)."""
        parts = self.unpack(action)
        n = self.batch_ndims
        total = _per_step(component_log_prob(self.components[0], parts[0]), n)
        for d, a in zip(self.components[1:], parts[1:], strict=True):
            total = total + _per_step(component_log_prob(d, a), n)
        return total

    def entropy(self) -> torch.Tensor:
        """Joint entropy (sum over independent components), shape ``[B]``."""
        total = None
        for i, d in enumerate(self.components):
            try:
                h = _per_step(d.entropy(), self.batch_ndims)
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

    @property
    def batch_shape(self) -> torch.Size:
        """The leading batch dimensions: ``[B]``, or ``[T, B]`` for a rollout's."""
        return self.components[0].batch_shape[: self.batch_ndims]

    def map(
        self,
        fn: Callable[..., torch.Tensor],
        *others: ActionDistribution,
        batch_ndims: int | None = None,
    ) -> ActionDistribution:
        """The same distribution with ``fn`` applied to every batched parameter (with the
        matching parameters of ``others``, distributions of the same kind, as further
        arguments): e.g. ``lambda x: x[idx]`` selects rows, ``lambda *xs: torch.stack(xs)``
        stacks steps. ``batch_ndims`` is the result's number of leading batch dimensions
        (default: unchanged). See :func:`map_component` for what counts as batched."""
        for other in others:
            if other.names != self.names or len(other.components) != len(self.components):
                raise ValueError(
                    "cannot combine ActionDistributions with different components: "
                    f"{self!r} and {other!r}."
                )
        parts = [
            map_component(fn, d, *(o.components[i] for o in others))
            for i, d in enumerate(self.components)
        ]
        new = ActionDistribution(**dict(zip(self.names, parts, strict=True))) if self.names \
            else ActionDistribution(*parts)  # fmt: skip
        new.batch_ndims = self.batch_ndims if batch_ndims is None else batch_ndims
        return new

    def detach(self) -> ActionDistribution:
        """The same distribution cut from the autograd graph (e.g. the old policy in a KL
        penalty)."""
        return self.map(torch.Tensor.detach)

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


def map_component(
    fn: Callable[..., torch.Tensor], d: Distribution, *others: Distribution
) -> Distribution:
    """A copy of the torch distribution ``d`` with ``fn`` applied to each batched
    parameter: every tensor attribute whose leading dimensions are ``d.batch_shape``
    (with the same attribute of each of ``others`` as further arguments), recursively
    through wrapped distributions (``Independent``, ``TransformedDistribution``).
    Attributes that do not carry the batch (a shared standard deviation, bounds,
    transforms) are kept from ``d``. This is how torch's own ``expand`` rebuilds a
    distribution; it covers torch's distributions and rlx's components."""
    new = copy.copy(d)
    shape = d.batch_shape
    n = len(shape)
    for name, value in d.__dict__.items():
        if isinstance(value, torch.Tensor):
            if n and value.shape[:n] == shape:
                new.__dict__[name] = fn(value, *(getattr(o, name) for o in others))
        elif isinstance(value, Distribution):
            new.__dict__[name] = map_component(fn, value, *(getattr(o, name) for o in others))
    if n:
        probes = [torch.zeros(()).expand(x.batch_shape) for x in (d, *others)]
        new._batch_shape = fn(*probes).shape
    if "_rsampled" in new.__dict__:  # TanhNormal's cache of its last draw
        new.__dict__["_rsampled"] = None
    return new


def stack(dists: Sequence[ActionDistribution]) -> ActionDistribution:
    """Per-step distributions (each ``[B]``) as one ``[T, B]`` distribution."""
    first = dists[0]
    return first.map(lambda *xs: torch.stack(xs), *dists[1:], batch_ndims=first.batch_ndims + 1)


def kl(old: ActionDistribution, new: ActionDistribution, samples: int = 16) -> torch.Tensor:
    """KL(old || new) of each step, shape ``old.batch_shape`` (``[T, B]`` for a rollout's
    distributions, ``[B]`` for a policy's): summed over independent components and
    action dimensions.

    Analytic where torch has a formula for the pair (``torch.distributions.kl_divergence``:
    Categorical, Normal, Bernoulli, Beta, MultivariateNormal, ...; rlx adds TanhNormal
    pairs with the same bounds); otherwise an unbiased estimate from ``samples`` draws
    of ``old``: the mean of ``log old(a) - log new(a)``. Gradients flow into ``new``
    (and ``old`` where it has any: detach it for a penalty on the new policy only).

    Example (a KL-penalty policy-gradient step)::

        new = agent(policy).evaluate(batch)
        penalty = batch.step_mean(rlx.kl(batch.distributions, new.distributions))
    """
    if not isinstance(old, ActionDistribution) or not isinstance(new, ActionDistribution):
        raise TypeError(
            "rlx.kl compares two rlx.ActionDistributions (e.g. rollout.distributions), "
            f"got {type(old).__name__} and {type(new).__name__}."
        )
    if old.names != new.names or len(old.components) != len(new.components):
        raise ValueError(f"rlx.kl needs distributions with the same components: {old!r}, {new!r}.")
    if old.batch_shape != new.batch_shape:
        raise ValueError(
            f"rlx.kl needs distributions over the same batch: {list(old.batch_shape)} and "
            f"{list(new.batch_shape)}."
        )
    n = old.batch_ndims
    total = None
    for p, q in zip(old.components, new.components, strict=True):
        try:
            term = kl_divergence(p, q)
        except NotImplementedError:
            with torch.no_grad():
                draws = p.sample((samples,))
            term = (p.log_prob(draws) - q.log_prob(draws)).mean(0)
        term = _per_step(term, n)
        total = term if total is None else total + term
    return total

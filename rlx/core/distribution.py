"""``ActionDistribution``: several ``torch.distributions`` acting as one joint action.

A policy returns one ``ActionDistribution`` per time step, batched over environments.
Each component is an ordinary torch distribution whose first batch dimension is the
environment batch ``B``; every further dimension of a component's log-prob (a vector
``Normal`` over a Box action, a ``Bernoulli`` over MultiBinary bits) is summed, so the
joint ``log_prob`` and ``entropy`` always have shape ``[B]``: one number per step.

Components map onto the environment's action space:

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

import math
from typing import Any

import torch
from torch.distributions import Categorical, Distribution, Normal, TransformedDistribution
from torch.distributions.utils import lazy_property

Action = Any  # a tensor, a tuple of tensors or a dict of tensors


def _per_step(x: torch.Tensor) -> torch.Tensor:
    """Sum every dimension after the batch dimension: one value per step."""
    if x.dim() <= 1:
        return x
    return x.flatten(1).sum(1)


def categorical(logits: torch.Tensor, validate_args: bool | None = None) -> Categorical:
    """``torch.distributions.Categorical(logits=logits)``, built faster.

    torch normalises the logits with ``logsumexp`` and a subtraction, about 10 us on one
    CPU thread whatever the batch; ``log_softmax`` gives the same normalised logits in one
    kernel of about 1 us. The result is an ordinary ``Categorical`` (the ready policies
    build theirs this way; a user policy may too).
    """
    if logits.dim() < 1:
        raise ValueError("categorical needs logits with at least one dimension.")
    d = Categorical.__new__(Categorical)
    d.logits = torch.log_softmax(logits, -1)
    d._param = d.logits
    d._num_events = logits.shape[-1]
    Distribution.__init__(d, logits.shape[:-1], validate_args=validate_args)
    return d


def sample_component(d: Distribution) -> torch.Tensor:
    """``d.sample()``, with faster exact samplers for the most common components.

    ``Categorical.sample`` costs about 50 us at batch 8 on one CPU thread (multinomial
    plus reshapes); the exponential race ``argmax(p / Exp(1))`` draws from the same
    distribution in about 5 us. ``Normal`` skips its shape bookkeeping the same way.
    Subclasses fall back to their own ``sample``.
    """
    kind = type(d)
    if kind is Categorical:
        # Normalised logits exponentiate to the probabilities in one kernel; torch's lazy
        # ``probs`` (a softmax inside a grad-mode switch) costs several times more.
        probs = d.__dict__.get("probs")
        probs = d.logits.detach().exp() if probs is None else probs.detach()
        return (probs / torch.empty_like(probs).exponential_()).argmax(-1)
    if kind is Normal:
        return torch.normal(d.loc.detach(), d.scale.detach())
    return d.sample()


def _log_prob(d: Distribution, a: torch.Tensor) -> torch.Tensor:
    """``d.log_prob(a)``; for a plain ``Categorical`` a gather from its normalised logits
    (the same numbers without torch's broadcasting and validation, ~4x cheaper)."""
    if type(d) is Categorical and not d._validate_args and a.shape == d.batch_shape:
        return d.logits.gather(-1, a.long().unsqueeze(-1)).squeeze(-1)
    return d.log_prob(a)


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


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_LOG2 = math.log(2.0)


class TanhNormal(Distribution):
    """A diagonal Gaussian squashed by ``tanh`` and rescaled to ``[low, high]``.

    The log-prob includes the change of variables (``log(1 - tanh(u)^2)`` in its
    numerically stable form, plus the rescaling), so it is the density of the action
    the environment sees; it is per action dimension, shape ``loc.shape``. There is no
    closed-form entropy: algorithms use ``rollout.entropy_or_estimate()``, which falls
    back to ``-logprobs``.

    The log-prob of the last ``rsample()``'d action starts from its exact pre-squash
    value: recovering it with ``atanh`` from a saturated action (``tanh`` rounds to
    +-1 in float32) would underestimate it badly, and SAC's entropy term would then pay
    the actor to saturate. Any other action (a stored one) is inverted with ``atanh``,
    clamped just inside the bounds so that an action on a bound keeps a finite log-prob.
    Written out rather than as a ``TransformedDistribution``: the same numbers in about
    a third of the operations, which counts in SAC's update.

    Args:
        loc, scale: mean and standard deviation of the Gaussian before squashing.
        low, high: bounds of the action (default -1 and 1), broadcastable to ``loc``.
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor,
        low: torch.Tensor | float = -1.0,
        high: torch.Tensor | float = 1.0,
    ) -> None:
        self.loc, self.scale = loc, scale
        self.centre, self.radius = _bounds(low, high, loc)
        self._rsampled: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        super().__init__(loc.shape, validate_args=False)

    def _squash(self, u: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(u)
        return y if self.radius is None else torch.addcmul(self.centre, self.radius, y)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        """A reparameterised action (gradients flow into ``loc`` and ``scale``)."""
        shape = torch.Size(sample_shape) + self.loc.shape
        noise = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        u = torch.addcmul(self.loc, self.scale, noise)
        action = self._squash(u)
        self._rsampled = (action, u, noise)
        return action

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        """An action without gradient. Its log-prob is computed from the action itself
        (not the pre-squash value), exactly as when a stored rollout is re-evaluated, so
        sampled and re-evaluated log-probs agree to the last bit; ``rsample`` keeps the
        pre-squash value (exact, for reparameterised losses)."""
        with torch.no_grad():
            y = self.rsample(sample_shape)
        self._rsampled = None
        return y

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        cached = self._rsampled
        if cached is not None and value is cached[0]:
            u, z = cached[1], cached[2]  # z = (u - loc) / scale, exactly as drawn
        else:
            y = value if self.radius is None else (value - self.centre) / self.radius
            eps = torch.finfo(y.dtype).eps
            u = torch.atanh(y.clamp(-1 + eps, 1 - eps))
            z = (u - self.loc) / self.scale
        # log N(u) - log |d tanh(u) / du| - log radius; the middle term stably as
        # 2 (log 2 - u - softplus(-2u))
        log_density = -0.5 * z * z - torch.log(self.scale) - _LOG_SQRT_2PI
        log_det = 2.0 * (_LOG2 - u - torch.nn.functional.softplus(-2.0 * u))
        if self.radius is not None:
            log_det = log_det + torch.log(self.radius)
        return log_density - log_det

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError("a tanh-squashed Gaussian has no closed-form entropy")

    @property
    def mode(self) -> torch.Tensor:
        """The squashed Gaussian mean: the usual deterministic action (not the true mode)."""
        return self._squash(self.loc)

    @property
    def mean(self) -> torch.Tensor:
        raise NotImplementedError("a tanh-squashed Gaussian has no closed-form mean")


# Bound tensors already checked, by identity and version (kept alive here, at most 64
# pairs), -> centre and radius (None: the unit interval). A policy passes the same bound
# buffers at every step.
_BOUNDS_SEEN: dict[tuple[int, int], tuple[Any, ...]] = {}
_INFINITE_BOUNDS = (
    "TanhNormal needs finite bounds; a Box with infinite bounds takes an unsquashed Normal "
    "(squash=False)."
)


def _bounds(
    low: torch.Tensor | float, high: torch.Tensor | float, like: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The centre and half-width of ``[low, high]`` (None, None for [-1, 1]), after
    checking that the bounds are finite."""
    if not isinstance(low, torch.Tensor) and not isinstance(high, torch.Tensor):
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(_INFINITE_BOUNDS)
        if low == -1 and high == 1:
            return None, None
    key = (id(low), id(high))
    seen = _BOUNDS_SEEN.get(key)
    if (
        seen is not None and seen[0] is low and seen[1] is high
        and seen[2] == low._version and seen[3] == high._version  # type: ignore[union-attr]
        and seen[4].dtype == like.dtype and seen[4].device == like.device
    ):  # fmt: skip
        return seen[5], seen[6]
    low_t = torch.as_tensor(low, dtype=like.dtype, device=like.device)
    high_t = torch.as_tensor(high, dtype=like.dtype, device=like.device)
    if not bool(torch.isfinite(low_t).all() and torch.isfinite(high_t).all()):
        raise ValueError(_INFINITE_BOUNDS)
    if bool((low_t == -1).all()) and bool((high_t == 1).all()):
        centre = radius = None
    else:
        centre, radius = (high_t + low_t) / 2, (high_t - low_t) / 2
    if isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor):
        if len(_BOUNDS_SEEN) > 64:
            _BOUNDS_SEEN.clear()
        _BOUNDS_SEEN[key] = (low, high, low._version, high._version, low_t, centre, radius)
    return centre, radius


class Deterministic(Distribution):
    """All probability on one action ``value`` ``[B, ...]``: a deterministic policy's
    action as an action component (DDPG's and TD3's actors; exploration noise is added by
    a wrapper such as :class:`rlx.policies.GaussianExploration`).

    ``sample``, ``rsample`` and ``mode`` return ``value`` (``rsample`` with its
    gradient); ``log_prob`` and ``entropy`` are 0: there is no density to speak of, and
    algorithms for deterministic policies use neither.
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, value: torch.Tensor) -> None:
        self.value = value
        super().__init__(value.shape[:1], value.shape[1:], validate_args=False)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        return self.value.detach().expand(*sample_shape, *self.value.shape).clone()

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        return self.value.expand(*sample_shape, *self.value.shape)

    @property
    def mode(self) -> torch.Tensor:
        return self.value

    @property
    def mean(self) -> torch.Tensor:
        return self.value

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return torch.zeros(value.shape[: value.dim() - len(self.event_shape)],
                           dtype=self.value.dtype, device=self.value.device)  # fmt: skip

    def entropy(self) -> torch.Tensor:
        return torch.zeros(self.batch_shape, dtype=self.value.dtype, device=self.value.device)


class EpsilonGreedy(Categorical):
    """The greedy action of ``values`` (e.g. Q-values ``[B, n]``) with probability
    ``1 - epsilon``, a uniform one otherwise: ε-greedy exploration as an action component,
    so a Q-network samples through ``agent(policy).steps(n)`` like any policy.

    ``mode`` is the greedy action; ``log_prob`` and ``entropy`` are those of the mixture.
    ``epsilon`` may be a float or a tensor broadcastable to ``[B, 1]``. Sampling draws
    the greedy action and replaces it by a uniform one with probability ``epsilon``; the
    probabilities are only formed if something asks for them (an update re-evaluating a
    Q-network pays nothing for the exploration it does not use).
    """

    arg_constraints: dict = {}

    def __init__(self, values: torch.Tensor, epsilon: float | torch.Tensor) -> None:
        self.values = values.detach()
        self.epsilon = epsilon
        self._num_events = values.shape[-1]
        self._param = self.values
        Distribution.__init__(self, values.shape[:-1], validate_args=False)

    @lazy_property
    def probs(self) -> torch.Tensor:  # type: ignore[override]
        n = self._num_events
        greedy = torch.nn.functional.one_hot(self.values.argmax(-1), n).to(self.values.dtype)
        return self.epsilon / n + (1 - self.epsilon) * greedy

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        greedy = self.values.argmax(-1)
        if sample_shape:
            greedy = greedy.expand(*sample_shape, *greedy.shape)
        epsilon = self.epsilon
        if isinstance(epsilon, torch.Tensor):
            epsilon = epsilon.reshape(epsilon.shape[:-1]) if epsilon.dim() else epsilon
        elif epsilon <= 0:
            return greedy.clone()
        explore = torch.rand(greedy.shape, device=greedy.device) < epsilon
        uniform = torch.randint(self._num_events, greedy.shape, device=greedy.device)
        return torch.where(explore, uniform, greedy)

    @property
    def mode(self) -> torch.Tensor:
        return self.values.argmax(-1)


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
        total = _per_step(_log_prob(self.components[0], parts[0]))
        for d, a in zip(self.components[1:], parts[1:], strict=True):
            total = total + _per_step(_log_prob(d, a))
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


def _normalized_categorical(logits: torch.Tensor) -> Categorical:
    """A Categorical over logits that are already normalised (no renormalisation, so
    log-probs gathered from it equal those of the distributions they were stacked from)."""
    d = Categorical.__new__(Categorical)
    d.logits = logits
    d._param = logits
    d._num_events = logits.shape[-1]
    Distribution.__init__(d, logits.shape[:-1], validate_args=False)
    return d


def stack_steps(dists: list[ActionDistribution]) -> ActionDistribution | None:
    """The per-step distributions of a rollout as one distribution over ``T * B`` rows.

    Sampling keeps one ``ActionDistribution`` per step; computing log-probs step by step
    costs a call per step (2,048 gathers for a PPO batch of one environment). When every
    step has the same components and each is a plain ``Categorical`` or ``Normal``, their
    parameters are stacked once into a ``[T * B, ...]`` distribution whose log-probs are
    the same numbers in one call. Returns None for anything else (the caller then goes
    step by step).
    """
    first = dists[0]
    kinds = [type(c) for c in first.components]
    if any(k is not Categorical and k is not Normal for k in kinds):
        return None
    n = len(kinds)
    for d in dists:
        if len(d.components) != n or d.names != first.names:
            return None
        if any(type(c) is not k for c, k in zip(d.components, kinds, strict=True)):
            return None
    stacked = []
    for i, kind in enumerate(kinds):
        parts = [d.components[i] for d in dists]
        if kind is Categorical:
            logits = torch.cat([p.logits for p in parts])
            stacked.append(_normalized_categorical(logits))
        else:
            loc = torch.cat([p.loc for p in parts])
            scale = torch.cat([p.scale for p in parts])
            stacked.append(Normal(loc, scale, validate_args=False))
    if first.names is not None:
        return ActionDistribution(**dict(zip(first.names, stacked, strict=True)))
    return ActionDistribution(*stacked)

"""Action components rlx adds to ``torch.distributions`` (SAC's tanh-squashed Gaussian,
DDPG's deterministic action, epsilon-greedy), to put in an :class:`rlx.ActionDistribution`."""

from __future__ import annotations

import math

import torch
from torch.distributions import Categorical, Distribution
from torch.distributions.utils import lazy_property

import rlx.fast
from rlx.fast import distributions as fast_distributions

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_LOG2 = math.log(2.0)


class TanhNormal(Distribution):
    """A diagonal Gaussian squashed by ``tanh`` and rescaled to ``[low, high]``.

    The log-prob, per action dimension, is the density of the action the environment
    sees (change of variables included, in its stable form). There is no closed-form
    entropy: algorithms use ``rollout.entropy_or_estimate()``.

    The log-prob of the last ``rsample()``'d action starts from its exact pre-squash
    value: ``atanh`` of a saturated action (``tanh`` rounds to +-1 in float32) would
    underestimate it badly and SAC's entropy term would pay the actor to saturate. Other
    actions are inverted with ``atanh``, clamped just inside the bounds. Written out
    rather than as a ``TransformedDistribution``: a third of the operations.

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


@torch.distributions.kl.register_kl(TanhNormal, TanhNormal)
def _kl_tanh_normal(p: TanhNormal, q: TanhNormal) -> torch.Tensor:
    """Squashing both by the same bijection leaves KL unchanged: the Gaussians' KL, per
    action dimension. Bounds that differ have no closed form (``rlx.kl`` then samples)."""
    if not (_same(p.centre, q.centre) and _same(p.radius, q.radius)):
        raise NotImplementedError("TanhNormals with different bounds have no closed-form KL")
    var_ratio = (p.scale / q.scale).pow(2)
    mean_term = ((p.loc - q.loc) / q.scale).pow(2)
    return 0.5 * (var_ratio + mean_term - 1 - var_ratio.log())


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    return a is b or (a.shape == b.shape and bool(torch.equal(a, b)))


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
    if rlx.fast.enabled():
        known = fast_distributions.known_bounds(low, high, like)
        if known is not None:
            return known
    low_t = torch.as_tensor(low, dtype=like.dtype, device=like.device)
    high_t = torch.as_tensor(high, dtype=like.dtype, device=like.device)
    if not bool(torch.isfinite(low_t).all() and torch.isfinite(high_t).all()):
        raise ValueError(_INFINITE_BOUNDS)
    if bool((low_t == -1).all()) and bool((high_t == 1).all()):
        centre = radius = None
    else:
        centre, radius = (high_t + low_t) / 2, (high_t - low_t) / 2
    if rlx.fast.enabled():
        fast_distributions.remember_bounds(low, high, like, centre, radius)
    return centre, radius


class Deterministic(Distribution):
    """All probability on one action ``value`` ``[B, ...]``: DDPG's and TD3's actors
    (exploration noise comes from a wrapper such as :class:`rlx.policies.GaussianExploration`).

    ``sample``, ``rsample`` (with gradient) and ``mode`` return ``value``; ``log_prob``
    and ``entropy`` are 0.
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
    ``epsilon`` may be a float or a tensor broadcastable to ``[B, 1]``. The
    probabilities are only formed if something asks for them (sampling does not).
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

"""The (μ/μ_w, λ)-CMA-ES on a vector: ``ask`` for candidates, ``tell`` their scores.

The update follows Hansen's tutorial (arXiv:1604.00772, Table 1 and Eq. 39-53), with
negative weights for the worst half of the candidates (active CMA, its default); the
separable variant (``diagonal=True``) is Ros & Hansen 2008 (sep-CMA-ES). The state is
float64 tensors and numbers, for ``weights_only`` checkpoints (:mod:`rlx.algos.es.cmaes`).

Scores are *maximised* (returns), unlike the minimising convention of the literature::

    strategy = CMA(torch.zeros(10), sigma=0.5, generator=torch.Generator().manual_seed(0))
    for _ in range(100):
        x = strategy.ask()  # [λ, n]
        strategy.tell(x, -rosenbrock(x))
"""

from __future__ import annotations

import math
from typing import Any

import torch


def default_population(n: int) -> int:
    """The standard λ = 4 + ⌊3 ln n⌋ for ``n`` dimensions."""
    return 4 + int(3 * math.log(n))


class CMA:
    """Mean, step size, covariance and evolution paths of one CMA-ES run.

    Args:
        mean: the start point (any shape; flattened to ``n`` dimensions).
        sigma: the initial step size σ₀ (standard deviation of the first candidates).
        population: λ, candidates per generation (at least 2); None: 4 + ⌊3 ln n⌋.
        diagonal: keep a diagonal covariance (sep-CMA-ES): O(n) memory and time per
            candidate instead of O(n²), for thousands of dimensions or more.
        generator: torch generator of the candidates' noise (a new one seeded 0 if None).
    """

    def __init__(
        self,
        mean: torch.Tensor,
        sigma: float,
        population: int | None = None,
        diagonal: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        n = mean.numel()
        lam = default_population(n) if population is None else int(population)
        if n < 1 or lam < 2 or not sigma > 0:
            raise ValueError(
                f"CMA needs at least 1 dimension, a population of at least 2 and sigma > 0; "
                f"got n={n}, population={lam}, sigma={sigma}."
            )
        self.n, self.population, self.diagonal = n, lam, diagonal
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        # Strategy constants (tutorial Table 1 and Eq. 49-53): positive weights on the
        # best μ move the mean; the worst λ - μ get negative weights that only shrink
        # the covariance along their steps ("active" CMA).
        mu = lam // 2
        ranks = torch.arange(1, lam + 1, dtype=torch.float64)
        raw = math.log((lam + 1) / 2) - ranks.log()
        positive, negative = raw[:mu], raw[mu:]
        mueff = float(positive.sum() ** 2 / positive.pow(2).sum())
        self.mueff = mueff
        self.cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
        self.cs = (mueff + 2) / (n + mueff + 5)
        c1 = 2 / ((n + 1.3) ** 2 + mueff)
        cmu = 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff)
        if diagonal:  # a diagonal has n, not n²/2, entries to learn: faster rates
            c1, cmu = c1 * (n + 2) / 3, cmu * (n + 2) / 3
        self.c1 = min(c1, 1.0)
        self.cmu = min(cmu, 1 - self.c1)
        if negative.numel() and negative.sum() < 0:
            mueff_minus = float(negative.sum() ** 2 / negative.pow(2).sum())
            scale = min(
                1 + self.c1 / self.cmu if self.cmu > 0 else math.inf,
                1 + 2 * mueff_minus / (mueff + 2),
                (1 - self.c1 - self.cmu) / (n * self.cmu) if self.cmu > 0 else math.inf,
            )  # keeps C positive definite (tutorial Eq. 50-52)
            negative = negative * scale / negative.abs().sum()
        self.weights = torch.cat([positive / positive.sum(), negative])
        self.mu = mu
        self.damps = 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (n + 1)) - 1) + self.cs
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))  # E||N(0, I)||
        # Eigendecomposition every `eigen_gap` generations keeps the cost O(n²) per
        # candidate (tutorial, footnote on B and D).
        self.eigen_gap = max(1, int(1 / (10 * n * (self.c1 + self.cmu))))
        # State.
        self.mean = mean.detach().reshape(-1).to(torch.float64).cpu().clone()
        self.sigma = float(sigma)
        self.pc = torch.zeros(n, dtype=torch.float64)
        self.ps = torch.zeros(n, dtype=torch.float64)
        self.B = None if diagonal else torch.eye(n, dtype=torch.float64)  # eigenvectors of C
        self.D = torch.ones(n, dtype=torch.float64)  # square roots of C's eigenvalues
        self.C = self.D.clone() if self.B is None else self.B.clone()
        self.generation = 0
        self.eigen_generation = 0

    def ask(self) -> torch.Tensor:
        """λ new candidates ``mean + σ B D z``, z ~ N(0, I): a ``[λ, n]`` float64 tensor."""
        z = torch.randn(self.population, self.n, generator=self.generator, dtype=torch.float64)
        y = z * self.D if self.B is None else (z * self.D) @ self.B.T
        return self.mean + self.sigma * y

    def tell(self, candidates: torch.Tensor, scores: torch.Tensor) -> None:
        """Update from the candidates of :meth:`ask` and their scores (higher is better)."""
        candidates = candidates.to(torch.float64)
        scores = torch.as_tensor(scores, dtype=torch.float64)
        if candidates.shape != (self.population, self.n) or scores.shape != (self.population,):
            raise ValueError(
                f"tell needs [{self.population}, {self.n}] candidates and {self.population} "
                f"scores, got {tuple(candidates.shape)} and {tuple(scores.shape)}."
            )
        if not bool(torch.isfinite(scores).all()):
            raise ValueError(f"tell got scores that are not finite: {scores.tolist()}.")
        n, cs, cc, c1, cmu = self.n, self.cs, self.cc, self.c1, self.cmu
        order = torch.sort(scores, descending=True, stable=True).indices
        y = (candidates[order] - self.mean) / self.sigma  # steps, best first, [λ, n]
        step = self.weights[: self.mu] @ y[: self.mu]
        self.mean = self.mean + self.sigma * step
        # Paths: ps sees the step whitened by C^(-1/2), pc the step itself (Eq. 43-45).
        whitened = step / self.D if self.B is None else self.B @ ((self.B.T @ step) / self.D)
        self.ps = (1 - cs) * self.ps + math.sqrt(cs * (2 - cs) * self.mueff) * whitened
        self.generation += 1
        ps_norm = float(self.ps.norm())
        built_up = 1 - (1 - cs) ** (2 * self.generation)  # ps starts at 0: its variance so far
        hsig = ps_norm / math.sqrt(built_up) / self.chi_n < 1.4 + 2 / (n + 1)
        self.pc = (1 - cc) * self.pc + hsig * math.sqrt(cc * (2 - cc) * self.mueff) * step
        # Rank-one and rank-μ update (Eq. 46-47). A negative weight is rescaled by
        # n / ||C^(-1/2) y||², so a long bad step cannot remove more variance than a
        # typical one; without hsig the rank-one term loses what the stalled pc misses.
        whitened_sq = (y / self.D if self.B is None else (y @ self.B) / self.D).pow(2).sum(1)
        shrink = torch.where(whitened_sq > 0, n / whitened_sq, 0.0)  # y = 0: nothing to shrink
        weights = torch.where(self.weights >= 0, self.weights, self.weights * shrink)
        decay = 1 - c1 - cmu * float(self.weights.sum())
        decay += 0.0 if hsig else c1 * cc * (2 - cc)
        if self.B is None:
            self.C = decay * self.C + c1 * self.pc.pow(2) + cmu * (weights @ y.pow(2))
        else:
            rank_mu = (y.T * weights) @ y
            self.C = decay * self.C + c1 * torch.outer(self.pc, self.pc) + cmu * rank_mu
        # Cumulative step-size adaptation (Eq. 44), at most a factor e per generation.
        self.sigma *= math.exp(min(1.0, cs / self.damps * (ps_norm / self.chi_n - 1)))
        self._decompose()

    def _decompose(self) -> None:
        if self.B is None:
            self.D = self.C.clamp_min(1e-300).sqrt()
            return
        if self.generation - self.eigen_generation < self.eigen_gap:
            return
        self.eigen_generation = self.generation
        if not bool(torch.isfinite(self.C).all()):
            raise FloatingPointError(
                f"the covariance is no longer finite at generation {self.generation} "
                f"(sigma {self.sigma:.3g}): stop the search earlier, or restart it."
            )
        self.C = (self.C + self.C.T) / 2  # keep it symmetric against rounding
        eigenvalues, self.B = torch.linalg.eigh(self.C)
        self.D = eigenvalues.clamp_min(1e-300).sqrt()

    _STATE = ("mean", "sigma", "pc", "ps", "C", "B", "D", "generation", "eigen_generation")

    @property
    def condition(self) -> float:
        """Condition number of C (the ratio of its largest to smallest eigenvalue)."""
        return float((self.D.max() / self.D.min()).pow(2))

    def state_dict(self) -> dict[str, Any]:
        """Everything that changes, as tensors and numbers (``weights_only``-safe)."""
        state = {"n": self.n, "population": self.population, "diagonal": self.diagonal}
        for name in self._STATE:
            value = getattr(self, name)
            state[name] = value.clone() if isinstance(value, torch.Tensor) else value
        return {**state, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = (self.n, self.population, self.diagonal)
        theirs = (int(state["n"]), int(state["population"]), bool(state["diagonal"]))
        if mine != theirs:
            raise ValueError(
                "this CMA state is for (dimensions, population, diagonal) = "
                f"{theirs}, but the strategy has {mine}: load it into a strategy made with "
                "the same policy and options."
            )
        for name in self._STATE:
            value = state[name]
            setattr(self, name, value.clone() if isinstance(value, torch.Tensor) else value)
        self.generator.set_state(state["generator"])

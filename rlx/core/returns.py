"""Returns math on ``[T, B]`` tensors: reverse scans over time, vectorised over B.

Conventions shared by every function here:

- ``terminations[t]``: the episode ended at step t in a terminal state; nothing is
  bootstrapped after it.
- ``dones[t]``: the episode ended at step t for any reason (termination or truncation),
  or step t is invalid: the recursion never crosses such a step.
- ``next_values[t]``: the value of the observation that followed step t (the final
  observation where an episode ended). Truncated episodes and the last step of a
  segment bootstrap from it; terminated ones do not.

Targets carry no gradient: inputs are detached.
"""

from __future__ import annotations

import torch

import rlx.fast
from rlx.fast import scan as fast_scan


def reverse_scan(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``y_t = x_t + keep_t * y_{t+1}`` (with ``y_T = 0``): one loop over T, vectorised over
    B (on numpy views with the fast paths on: :func:`rlx.fast.scan.reverse_scan`)."""
    if rlx.fast.enabled():
        found = fast_scan.reverse_scan(x, keep)
        if found is not None:
            return found
    out = torch.empty_like(x)
    running = torch.zeros_like(x[0])
    for t in range(x.shape[0] - 1, -1, -1):
        running = x[t] + keep[t] * running
        out[t] = running
    return out


def discounted_returns(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """Monte-Carlo returns ``G_t = r_t + gamma * G_{t+1}`` within each episode, no bootstrap."""
    rewards = rewards.detach()
    return reverse_scan(rewards, gamma * (~dones).to(rewards.dtype))


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminations: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Generalised advantage estimates (Schulman et al. 2016, eq. 16)."""
    rewards, values, next_values = rewards.detach(), values.detach(), next_values.detach()
    alive = (~terminations).to(rewards.dtype)
    deltas = rewards + gamma * alive * next_values - values
    return reverse_scan(deltas, gamma * lam * (~dones).to(rewards.dtype))


def nstep_returns(
    rewards: torch.Tensor,
    next_values: torch.Tensor,
    terminations: torch.Tensor,
    dones: torch.Tensor,
    n: int,
    gamma: float,
) -> torch.Tensor:
    """n-step returns: up to n rewards, then the bootstrapped value (none after termination).

    The sum stops early at an episode end or at the end of the segment; a loop over the
    n offsets, each step vectorised over T and B.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    rewards, next_values = rewards.detach(), next_values.detach()
    T = rewards.shape[0]
    out = torch.zeros_like(rewards)
    alive = torch.ones_like(dones)
    discount = 1.0
    for k in range(min(n, T)):
        r_k = rewards[k:]  # reward at t + k for t < T - k
        end_k = torch.ones_like(dones[k:]) if k == n - 1 else dones[k:].clone()
        end_k[-1] = True  # the segment's last step bootstraps from next_values
        a = alive[: T - k]
        out[: T - k] += torch.where(a, discount * r_k, 0.0)
        boot = a & end_k
        bootstrap = torch.where(boot & ~terminations[k:], discount * gamma * next_values[k:], 0.0)
        out[: T - k] += bootstrap
        alive[: T - k] = a & ~end_k
        alive[T - k :] = False
        discount *= gamma
    return out


def vtrace(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    log_ratios: torch.Tensor,
    terminations: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    rho_clip: float = 1.0,
    c_clip: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Off-policy value targets and policy-gradient advantages with truncated importance
    weights (V-trace, Espeholt et al. 2018, eq. 1; the truncation of Degris et al. 2012).

    ``log_ratios`` are ``log pi(a|s) - log mu(a|s)`` of the target over the behaviour
    policy. Returns ``(targets, advantages)``: ``targets`` regress the value function;
    ``advantages = rho_t (r_t + gamma v_{t+1} - V(s_t))`` weight ``log pi(a_t|s_t)``.
    With equal policies and clips of 1 the targets are the bootstrapped returns of
    ``gae(lam=1) + values``.
    """
    rewards, values, next_values = rewards.detach(), values.detach(), next_values.detach()
    ratios = log_ratios.detach().exp()
    rho = ratios.clamp(max=rho_clip)
    c = ratios.clamp(max=c_clip)
    alive = (~terminations).to(rewards.dtype)
    deltas = rho * (rewards + gamma * alive * next_values - values)
    targets = values + reverse_scan(deltas, gamma * c * (~dones).to(rewards.dtype))
    # v_{t+1}: the next target inside an episode, the bootstrap value where it was cut.
    following = torch.cat([targets[1:], next_values[-1:]])
    following = torch.where(dones, next_values, following)
    advantages = rho * (rewards + gamma * alive * following - values)
    return targets, advantages


def categorical_projection(
    next_probs: torch.Tensor,
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    support: torch.Tensor,
) -> torch.Tensor:
    """The distributional Bellman target on a fixed support (C51, Bellemare et al. 2017).

    Each atom ``z_j`` of the next state's return distribution ``next_probs`` (``[N,
    atoms]``) moves to ``r + discount * z_j`` (``discount`` is 0 after a termination,
    ``gamma ** n`` otherwise), is clipped to the support, and its probability is split
    between the two nearest atoms in proportion to their distance. Returns ``[N, atoms]``
    target probabilities (no gradient).
    """
    next_probs, rewards, discounts = next_probs.detach(), rewards.detach(), discounts.detach()
    atoms = support.shape[0]
    v_min, v_max = support[0].item(), support[-1].item()
    delta = (v_max - v_min) / (atoms - 1)
    moved = (rewards[:, None] + discounts[:, None] * support[None, :]).clamp(v_min, v_max)
    position = (moved - v_min) / delta  # fractional atom index, [N, atoms]
    lower, upper = position.floor().long(), position.ceil().long()
    # A target exactly on an atom (lower == upper) gives it all its mass.
    upper_weight = position - lower
    lower_weight = 1.0 - upper_weight
    target = torch.zeros_like(next_probs)
    target.scatter_add_(1, lower, next_probs * lower_weight)
    target.scatter_add_(1, upper, next_probs * upper_weight)
    return target


def value_rescale(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x``: squashes large returns so one
    network fits rewards of any scale (Pohlen et al. 2018; R2D2)."""
    return x.sign() * ((x.abs() + 1).sqrt() - 1) + eps * x


def value_rescale_inverse(y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """The inverse of :func:`value_rescale`."""
    root = ((1 + 4 * eps * (y.abs() + 1 + eps)).sqrt() - 1) / (2 * eps)
    return y.sign() * (root.pow(2) - 1)

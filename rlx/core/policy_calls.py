"""How rlx calls a policy step by step, shared by sampling (``collect.py``) and
re-evaluation (``evaluate.py``) so that both run it exactly alike: that is what makes
re-evaluated log-probs equal the sampled ones."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch.distributions import Distribution

from rlx.core.distribution import ActionDistribution
from rlx.core.distribution import stack_steps as stack_distributions
from rlx.core.parametric import Parametric, parameters_and_buffers
from rlx.tree import Tree, tree_index, tree_leaves, tree_map

# Whether a policy returned a recurrent state, learned from its first forward.
_RECURRENT: weakref.WeakKeyDictionary[torch.nn.Module, bool] = weakref.WeakKeyDictionary()


def watched_parameters(policy: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    """The policy's parameters (cached with the fast paths on: walking the module tree
    costs more than the rest of a PPO minibatch's evaluation)."""
    return parameters_and_buffers(policy)[0]


def policy_float_dtype(policy: torch.nn.Module) -> torch.dtype:
    """The floating dtype of the policy's parameters: float observations are stored in it."""
    for p in watched_parameters(policy):
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def policy_device(policy: torch.nn.Module) -> torch.device:
    """Where the policy's parameters are (``module.to`` keeps the parameter objects, so
    the cached list follows it)."""
    params = watched_parameters(policy)
    if params:
        return params[0].device
    for b in policy.buffers():
        return b.device
    return torch.device("cpu")


def wants_previous(policy: torch.nn.Module) -> bool:
    return bool(getattr(policy, "previous_action_reward", False))


def initial_state(policy: torch.nn.Module, batch_size: int) -> Tree:
    if isinstance(policy, Parametric):
        return policy.initial_state(batch_size)
    return None


def is_recurrent(policy: torch.nn.Module) -> bool | None:
    return _RECURRENT.get(policy)


def check_output(policy: torch.nn.Module, out: Any, batch: int | None = None) -> None:
    """Raise a TypeError that shows the expected ``forward`` return structure.

    With ``batch``, also check that the recurrent state and extras put the batch first.
    """
    name = type(policy).__name__
    expected = "(next_recur_state, rlx.ActionDistribution(...), *extras)"
    if not isinstance(out, (tuple, list)) or len(out) < 2:
        got = type(out).__name__ if not isinstance(out, (tuple, list)) else f"{len(out)} item(s)"
        raise TypeError(
            f"{name}.forward must return {expected}; it returned {got}. Return None as the "
            "first item when the policy is not recurrent."
        )
    dist = out[1]
    if isinstance(dist, Distribution):
        raise TypeError(
            f"{name}.forward returned a bare {type(dist).__name__} as its second item; wrap "
            f"it: rlx.ActionDistribution({type(dist).__name__}(...)). Expected {expected}."
        )
    if not isinstance(dist, ActionDistribution):
        raise TypeError(
            f"{name}.forward must return {expected}; its second item is a "
            f"{type(dist).__name__}, not an rlx.ActionDistribution."
        )
    if batch is not None:
        for what, tree in (("recurrent state", out[0]), ("extras", out[2:])):
            for leaf in tree_leaves(tree):
                if not isinstance(leaf, torch.Tensor):
                    raise TypeError(
                        f"{name}.forward returned {what} containing a {type(leaf).__name__}; "
                        "rlx tracks tensors (batch first) or None. Return torch tensors."
                    )
                if isinstance(leaf, torch.Tensor) and (leaf.dim() == 0 or leaf.shape[0] != batch):
                    raise ValueError(
                        f"{name}.forward returned {what} with a leaf of shape "
                        f"{tuple(leaf.shape)} for a batch of {batch}: rlx needs the batch "
                        "first. (torch.nn.GRU/LSTM hidden states are [layers, B, H]: return "
                        "h.transpose(0, 1) and transpose back on the way in.)"
                    )
    if policy not in _RECURRENT:
        _RECURRENT[policy] = out[0] is not None


def call(
    policy: torch.nn.Module,
    state: Tree,
    obs: Tree,
    prev_action: Tree = None,
    prev_reward: torch.Tensor | None = None,
) -> Any:
    if wants_previous(policy):
        return policy(state, obs, prev_action, prev_reward)
    return policy(state, obs)


def reset_rows(state: Tree, mask: torch.Tensor, init: Tree) -> Tree:
    """The state with the rows in ``mask`` (``[B]`` bool) set to ``init`` (None: zeros)."""

    def reset(s: torch.Tensor, i: torch.Tensor | None = None) -> torch.Tensor:
        m = mask.view(-1, *([1] * (s.dim() - 1)))
        return torch.where(
            m, torch.zeros((), dtype=s.dtype, device=s.device) if i is None else i, s
        )

    if init is None:
        return tree_map(reset, state)
    return tree_map(reset, state, init)


def squeeze_extra(x: torch.Tensor, lead: int) -> torch.Tensor:
    """Store a per-step scalar given as ``[..., 1]`` without the trailing 1."""
    if x.dim() == lead + 1 and x.shape[-1] == 1:
        return x.squeeze(-1)
    return x


def stack_steps(steps: list[Tree]) -> Tree:
    """Stack per-step trees ``[B, ...]`` into one ``[T, B, ...]`` tree."""
    return tree_map(lambda *xs: torch.stack(xs), steps[0], *steps[1:])


def stack_extras(per_step: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    if not per_step or not per_step[0]:
        return ()
    n = len(per_step[0])
    return tuple(
        tree_map(lambda x: squeeze_extra(x, 2), stack_steps([e[i] for e in per_step]))
        for i in range(n)
    )


def mask_steps(tree: Tree, valid: torch.Tensor) -> Tree:
    """Zero every ``[T, B, ...]`` leaf where ``valid`` is False (keeps gradients)."""

    def zero(x: torch.Tensor) -> torch.Tensor:
        m = valid.view(*valid.shape, *([1] * (x.dim() - 2)))
        return torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device))

    return tree_map(zero, tree)


def masker(valid: torch.Tensor, all_valid: bool) -> Callable[[Tree], Tree]:
    """:func:`mask_steps` for this ``valid``; the identity when every step is valid."""
    return (lambda tree: tree) if all_valid else (lambda tree: mask_steps(tree, valid))


def bootstrap_rows(terminations: torch.Tensor, truncations: torch.Tensor,
                   valid: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Where :func:`bootstrap_extras` runs the policy: valid episode ends and last steps."""
    need = terminations | truncations
    need[-1] = True
    return need & valid


def bootstrap_extras(
    policy: torch.nn.Module,
    others: tuple[Any, ...] | None,
    need: torch.Tensor,
    next_observations: Tree,
    states_after: Tree,
    actions: Tree,
    rewards: torch.Tensor,
    valid: torch.Tensor,
) -> tuple[Any, ...]:
    """``next_others``: the extras at each step's next observation.

    Where the episode goes on inside the rollout, that is the next step's extras (a
    shift, no compute). Only the rows in ``need`` (episode ends and the last step) run
    the policy, in one batch, from the recurrent state after that step. ``others=None``
    means the extras were not computed: allowed when ``need`` holds every valid step
    (nothing to shift); the result then takes its shapes from the policy's output.
    """
    if others is not None and not others:
        return ()
    t_idx, b_idx = need.nonzero(as_tuple=True)
    if others is not None:
        shifted = tuple(
            tree_map(lambda x: torch.cat([x[1:], torch.zeros_like(x[:1])], 0), extra)
            for extra in others
        )
        if len(t_idx) == 0:
            return tuple(mask_steps(x, valid) for x in shifted)
    pick = lambda x: x[t_idx, b_idx]
    state = tree_map(pick, states_after) if states_after is not None else None
    out = call(
        policy, state, tree_map(pick, next_observations), tree_map(pick, actions), pick(rewards)
    )
    check_output(policy, out)
    ends = out[2:]
    if others is None:  # no shift: zeros shaped like the policy's extras, ends put in
        T, B = need.shape
        shifted = tuple(
            tree_map(lambda e: torch.zeros((T, B, *squeeze_extra(e, 1).shape[1:]),
                                           dtype=e.dtype, device=e.device), end)
            for end in ends
        )  # fmt: skip

    def put(s: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return s.index_put((t_idx, b_idx), squeeze_extra(e, 1).to(s.dtype))

    pairs = zip(shifted, ends, strict=True)
    return tuple(mask_steps(tree_map(put, shift, end), valid) for shift, end in pairs)


def step_logprobs_entropy(
    dists: list[ActionDistribution], actions: Tree, T: int, B: int
) -> tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]:
    """Functions giving the ``[T, B]`` log-probs of ``actions`` (a ``[T, B, ...]`` tree)
    and the entropies under per-step distributions: in one call on their stacked
    parameters where :func:`rlx.core.distribution.stack_steps` can join them, else step
    by step."""
    joint = stack_distributions(dists)
    if joint is not None:
        flat = tree_map(lambda x: x.reshape(T * B, *x.shape[2:]), actions)
        return (lambda: joint.log_prob(flat).view(T, B)), (lambda: joint.entropy().view(T, B))

    def logprobs() -> torch.Tensor:
        return torch.stack([d.log_prob(tree_index(actions, t)) for t, d in enumerate(dists)])

    def entropy() -> torch.Tensor:
        return torch.stack([d.entropy() for d in dists])

    return logprobs, entropy

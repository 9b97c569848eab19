"""``agent(policy).evaluate(rollout)``: run a policy over stored experience, with graph.

A feed-forward policy sees all ``T * B`` observations in one batched forward; a
recurrent one runs step by step from the rollout's stored first state, reset where
episodes start, exactly as during sampling, so it reproduces the sampled log-probs.
``next_others`` are computed when first read (PPO's minibatches never pay for them) and
raise if read after an optimizer step changed the policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rlx.core import policy_calls as calls
from rlx.core.deferred import Deferred
from rlx.core.distribution import sample_component
from rlx.core.distribution import stack as stack_distributions
from rlx.core.rollout import DATA_FIELDS, Rollout
from rlx.fast.distributions import without_validation
from rlx.tree import Tree, tree_index, tree_map, tree_structure


def _policy_error(policy: torch.nn.Module, rollout: Rollout, err: Exception) -> ValueError:
    shapes = tree_map(lambda x: list(x.shape[2:]), rollout.observations)
    return ValueError(
        f"{type(policy).__name__} raised while evaluating this rollout (observations of "
        f"per-step shape {shapes}): {err}. If the rollout comes from an environment with "
        "other observations than the policy was built for, evaluate it with a policy made "
        "for that environment's observation space."
    )


def evaluate(
    agent: Any, policy: torch.nn.Module, rollout: Rollout, burn_in: int = 0,
    actions: str = "stored",
) -> Rollout:  # fmt: skip
    """A new, evaluated rollout: same data, log-probs/entropy/extras from ``policy``
    (see :meth:`rlx.BoundAgent.evaluate`). After a burn-in, the warmed-up state becomes
    the stored first state of the remaining steps."""
    if not isinstance(rollout, Rollout):
        raise TypeError(f"evaluate takes an rlx.Rollout, got {type(rollout).__name__}.")
    if actions not in _DRAW:
        raise ValueError(f"actions must be 'stored', 'sample' or 'mode', got {actions!r}.")
    if burn_in:
        return evaluate(agent, policy, _burned_in(agent, policy, rollout, burn_in), 0, actions)
    device = calls.policy_device(policy)
    if rollout.device != device:
        rollout = rollout.to(device)
    data = {k: v for k, v in rollout._raw_fields().items() if k in DATA_FIELDS}
    T, B = rollout.shape
    draw = _DRAW[actions]
    with without_validation(not agent.validate_args):
        try:
            if calls.is_recurrent(policy) is not True:
                out = None
                if calls.is_recurrent(policy) is None:  # first evaluation: find out
                    out = _forward_flat(policy, rollout, T, B)
                if out is None or out[0] is None:
                    return _feed_forward(policy, rollout, data, T, B, draw, out)
            return _finish(policy, rollout, data, *_recurrent(policy, rollout, T, B, draw))
        except RuntimeError as err:
            raise _policy_error(policy, rollout, err) from err


def _reparameterised(dist: Any) -> Any:
    """A sample with gradients through every component that has ``rsample``."""
    parts = [d.rsample() if d.has_rsample else sample_component(d) for d in dist.components]
    return dist.pack(parts)


# How each ``actions`` option picks the actions from a step's distribution (None: stored).
_DRAW: dict[str, Callable[[Any], Any] | None] = {
    "stored": None,
    "sample": _reparameterised,
    "mode": lambda dist: dist.mode(),
}


def _burned_in(agent: Any, policy: torch.nn.Module, rollout: Rollout, steps: int) -> Rollout:
    """``rollout[steps:]`` whose first recurrent state is the policy's own, after running
    the first ``steps`` steps from the stored state (no gradient)."""
    if not 0 < steps < len(rollout):
        raise ValueError(
            f"burn_in must be between 1 and the rollout's length - 1 ({len(rollout) - 1}), "
            f"got {steps}."
        )
    rest = rollout[steps:]
    if rollout.recurrent_states is None:
        return rest
    device = calls.policy_device(policy)
    head = rollout[:steps].to(device)
    with torch.no_grad(), without_validation(not agent.validate_args):
        after = _recurrent(policy, head, steps, head.batch_size)[3]
        if after is None:  # a feed-forward policy: nothing to warm up
            return rest
        state = tree_index(after, steps - 1)
        state = calls.reset_rows(state, rest.starts[0].to(device),
                              calls.initial_state(policy, head.batch_size))  # fmt: skip

    def first(stored: torch.Tensor, warm: torch.Tensor) -> torch.Tensor:
        return torch.cat([warm.to(stored.device, stored.dtype).unsqueeze(0), stored[1:]])

    fields = rest._raw_fields()
    fields["recurrent_states"] = tree_map(first, rest.recurrent_states, state)
    return rest._replace(fields)


def _flat(tree: Tree, T: int, B: int) -> Tree:
    return tree_map(lambda x: x.reshape(T * B, *x.shape[2:]), tree)


def _forward_flat(policy, rollout: Rollout, T: int, B: int) -> Any:
    """The policy's output on all ``T * B`` steps at once."""
    out = calls.call(
        policy,
        None,
        _flat(rollout.observations, T, B),
        _flat(rollout.prev_actions, T, B),
        _flat(rollout.prev_rewards, T, B),
    )
    calls.check_output(policy, out, T * B)
    return out


def _feed_forward(
    policy, rollout: Rollout, data: dict, T: int, B: int, draw: Any, out: Any = None
) -> Rollout:
    """A feed-forward policy's evaluation, each part computed when first read: one
    batched forward (``out`` if already computed) for log-probs, entropy and extras, one
    at the next observations for the bootstrap extras, so a target network's
    ``next_others`` on a replay sample costs one forward. With ``draw``, the forward runs
    at once and the actions come from it."""
    valid = rollout.valid
    masked = calls.masker(valid, rollout._all_valid())

    def forward() -> tuple:
        result = out if out is not None else _forward_flat(policy, rollout, T, B)
        others = tuple(
            tree_map(lambda x: masked(calls.squeeze_extra(x.reshape(T, B, *x.shape[1:]), 2)), e)
            for e in result[2:]
        )
        return result[1], others

    computed = Deferred(forward)
    others = computed.then(lambda result: result[1])

    def bootstrap() -> tuple:
        need = calls.bootstrap_rows(rollout.terminations, rollout.truncations, valid)
        # Where every valid step is needed (a [1, N] replay sample), nothing is shifted
        # from the current extras, so they need not be computed.
        current = None if bool((need == valid).all()) else others()
        return calls.bootstrap_extras(
            policy, current, need, rollout.next_observations, None, rollout.actions,
            rollout.rewards, valid,
        )  # fmt: skip

    actions = _flat(rollout.actions, T, B)
    if draw is not None:
        actions = draw(computed()[0])
        data = {**data, "actions": masked(tree_map(lambda a: a.reshape(T, B, *a.shape[1:]),
                                                   actions))}  # fmt: skip
    return Rollout(
        **data,
        logprobs=computed.then(lambda result: masked(result[0].log_prob(actions).view(T, B))),
        entropy=computed.then(lambda result: masked(result[0].entropy().view(T, B))),
        others=others,
        next_others=Deferred(bootstrap, params=calls.watched_parameters(policy)),
        distributions=computed.then(
            lambda result: result[0].map(lambda x: x.reshape(T, B, *x.shape[1:]), batch_ndims=2)
        ),
        returns=rollout._returns,
        advantages=rollout._advantages,
        dry=False,
    )


def _recurrent(policy, rollout: Rollout, T: int, B: int, draw: Any = None):
    state = rollout.recurrent_states
    init = calls.initial_state(policy, B)
    state = tree_index(state, 0) if state is not None else init
    dists, extras, states_after = [], [], []
    for t in range(T):
        # At t = 0 the stored state is already reset where an episode starts; resetting
        # again connects a learned initial state to the graph.
        if state is not None and (t > 0 or init is not None):
            mask = rollout.starts[t]
            if bool(mask.any()):
                state = calls.reset_rows(state, mask, init)
        out = calls.call(
            policy,
            state,
            tree_index(rollout.observations, t),
            tree_index(rollout.prev_actions, t),
            tree_index(rollout.prev_rewards, t),
        )
        if t == 0:
            calls.check_output(policy, out, B)
            if (
                state is not None
                and out[0] is not None
                and tree_structure(_lead(state)) != tree_structure(_lead(out[0]))
            ):
                raise ValueError(
                    "the rollout's stored recurrent state does not match the state "
                    f"{type(policy).__name__} returns; evaluate it with a policy of the "
                    "same recurrent architecture."
                )
        dists.append(out[1])
        extras.append(tuple(out[2:]))
        states_after.append(out[0])
        state = out[0]
    after = calls.stack_steps(states_after) if states_after[0] is not None else None
    actions = rollout.actions if draw is None else calls.stack_steps([draw(d) for d in dists])
    logprobs, entropy = calls.step_logprobs_entropy(dists, actions, T, B)
    return logprobs(), entropy, calls.stack_extras(extras), after, actions, dists


def _lead(tree: Tree) -> Tree:
    """View a [B, ...] tree as [1, B, ...] so tree_structure compares trailing shapes."""
    return tree_map(lambda x: x.unsqueeze(0), tree)


def _finish(policy, rollout: Rollout, data: dict, logprobs, entropy, others, states_after,
            actions, dists):  # fmt: skip
    valid = rollout.valid
    masked = calls.masker(valid, rollout._all_valid())
    others = tuple(masked(e) for e in others)
    if actions is not rollout.actions:
        data = {**data, "actions": masked(actions)}

    def bootstrap() -> tuple:
        need = calls.bootstrap_rows(rollout.terminations, rollout.truncations, valid)
        return calls.bootstrap_extras(
            policy, others, need, rollout.next_observations, states_after, rollout.actions,
            rollout.rewards, valid,
        )  # fmt: skip

    # Computed when first read (an update that does not bootstrap never pays for it),
    # from the parameters as they are now: reading it after they change raises.
    return Rollout(
        **data,
        logprobs=masked(logprobs),
        entropy=Deferred(lambda: masked(entropy())),  # not every distribution has one
        others=others,
        next_others=Deferred(bootstrap, params=calls.watched_parameters(policy)) if others else (),
        distributions=Deferred(lambda: stack_distributions(dists)),
        returns=rollout._returns,
        advantages=rollout._advantages,
        dry=False,
    )

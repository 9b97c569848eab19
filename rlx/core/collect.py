"""The sampling loop behind ``agent(policy).steps(n)`` and ``agent(policy).episode(horizon)``.

Per step it does one batched forward for all B environments, one sample, one
environment step and a copy of the new observations into preallocated ``[T + 1, B]``
storage (copying is what keeps rollouts safe from environments that reuse their
observation arrays). Log-probabilities and entropies are computed when first read, in
the gradient mode of sampling; extras are stacked once at the end.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import rlx.fast
from rlx.core import forward as fw
from rlx.core.deferred import deferred
from rlx.core.parametric import extras_dropped
from rlx.core.rollout import Rollout
from rlx.core.spaces import allocate, as_space_structure, check_action, check_distribution
from rlx.fast.distributions import without_validation
from rlx.tree import Tree, tree_index, tree_map

if TYPE_CHECKING:
    from rlx.core.agent import Agent


def _copy_into(dst: Tree, src: Any) -> None:
    if isinstance(dst, torch.Tensor):
        dst.copy_(torch.as_tensor(src))
    elif isinstance(dst, dict):
        for k, d in dst.items():
            _copy_into(d, src[k])
    else:
        for d, s in zip(dst, src, strict=True):
            _copy_into(d, s)


def collect(
    agent: Agent,
    policy: torch.nn.Module,
    n: int,
    dry: bool,
    episodic: bool,
    deterministic: bool = False,
) -> Rollout:
    """Run ``policy`` for ``n`` steps (or until every episode ends, when ``episodic``)."""
    if n < 1:
        raise ValueError(f"the number of steps must be at least 1, got {n}.")
    B = agent.num_envs
    device = fw.policy_device(policy)
    stepper = agent._stepper
    wants_prev = fw.wants_previous(policy)
    init = fw.initial_state(policy, B)
    carry = agent._carry.get(policy) if not episodic else None

    if episodic or agent._next_obs is None:
        start_obs = agent._reset()
        first_starts = np.ones(B, dtype=bool)
        carry = None
    else:
        start_obs = agent._next_obs
        first_starts = agent._starts.copy()

    obs_store = allocate(agent.observation_space, (n + 1, B), device, fw.policy_float_dtype(policy))
    _copy_into(tree_index(obs_store, 0), start_obs)
    rewards = np.zeros((n, B), dtype=np.float32)
    terminations = np.zeros((n, B), dtype=bool)
    truncations = np.zeros((n, B), dtype=bool)
    valid = np.ones((n, B), dtype=bool)
    starts = np.zeros((n, B), dtype=bool)
    starts[0] = first_starts
    alive = np.ones(B, dtype=bool)
    patches: list[tuple[int, np.ndarray, Any]] = []

    if carry is not None:
        state, prev_action, prev_reward, episode_ids = carry
        state = tree_map(lambda x: x.to(device), state)
        # Environments that began a new episode while other policies acted: this policy
        # did not see its start, so it begins it from its initial state.
        stale = torch.as_tensor(episode_ids != agent._episode_ids, device=device)
        if bool(stale.any()):
            if state is not None:
                state = fw.reset_rows(state, stale, init)
            if prev_action is not None:
                prev_action = fw.reset_rows(prev_action, stale, None)
                prev_reward = torch.where(stale, 0.0, prev_reward)
    else:
        state, prev_action, prev_reward = init, None, None
    to_space = partial(as_space_structure, agent.action_space)
    actions: list[Tree] = []
    dists: list[Any] = []
    extras: list[tuple[Any, ...]] = []
    states_in: list[Tree] = []
    states_out: list[Tree] = []
    prev_actions: list[Tree] = []
    prev_rewards: list[torch.Tensor] = []
    ep_return, ep_length, completed = agent._ep_return, agent._ep_length, agent._completed
    grad = torch.is_grad_enabled()
    holes = stepper.mode == "holes"
    no_start = np.zeros(B, dtype=bool)

    # Fast paths for the common case: one observation tensor, stored on the CPU, where
    # numpy writes straight into the torch storage (about 1 us instead of 5).
    single = isinstance(obs_store, torch.Tensor)
    numpy_ok = single and device.type == "cpu" and obs_store.dtype != torch.bfloat16
    obs_np = obs_store.numpy() if numpy_ok else None
    any_start = bool(first_starts.any())
    next_start = first_starts
    # A policy that can act in numpy (the ready MLP policies) does so where nothing but
    # its actions is kept: a dry rollout without gradient (how algorithms sample
    # feed-forward policies). Step 0 still runs forward, which checks the output.
    fast = None
    if dry and not grad and numpy_ok and not wants_prev and init is None and rlx.fast.enabled():
        make = getattr(policy, "numpy_actor", None)
        fast = make(B) if make is not None else None
    T = n
    dropping = extras_dropped() if dry else contextlib.nullcontext()
    with without_validation(not agent.validate_args), dropping:
        for t in range(n):
            if any_start:
                mask = torch.as_tensor(starts[t], device=device)
                if state is not None:
                    state = fw.reset_rows(state, mask, init)
                if prev_action is not None:
                    prev_action = fw.reset_rows(prev_action, mask, None)
                    prev_reward = torch.where(mask, 0.0, prev_reward)
            if fast is not None and t > 0:
                action = torch.from_numpy(fast(obs_np[t], deterministic))
                next_state = None
            else:
                obs_t = obs_store[t] if single else tree_index(obs_store, t)
                if wants_prev:
                    if prev_reward is None:  # first step: zeros shaped like the action space
                        prev_reward = torch.zeros(B, device=device)
                        prev_action = allocate(agent.action_space, (B,), device)
                    prev_rewards.append(prev_reward)
                    prev_actions.append(prev_action)
                    out = policy(state, obs_t, prev_action, prev_reward)
                else:
                    out = policy(state, obs_t)
                if t == 0:
                    fw.check_output(policy, out, B)
                next_state, dist = out[0], out[1]
                action = dist.mode() if deterministic else dist.sample()
                if t == 0:
                    check_action(agent.action_space, action, B)
                    check_distribution(agent.action_space, dist)
                if next_state is not None:
                    fast = None  # recurrent after all: act through forward
                    if state is None:  # first step ever: None meant zeros
                        state = fw.reset_rows(next_state, torch.ones(B, dtype=torch.bool), None)
                    states_in.append(tree_map(torch.Tensor.detach, state))
                    states_out.append(next_state)
            obs, r, term, trunc, finals, hole, done = stepper.step(agent._to_env(action))

            rewards[t] = r
            terminations[t] = term
            truncations[t] = trunc
            if obs_np is not None:
                obs_np[t + 1] = obs
            else:
                _copy_into(tree_index(obs_store, t + 1), obs)
            actions.append(action)
            if not dry:
                dists.append(dist)
                extras.append(out[2:])
            if finals is not None:
                patches.append((t, *finals))

            if hole is None and not episodic:
                counted = None
                ep_return += rewards[t]
                ep_length += 1
            else:
                counted = valid[t]  # a view: the &= below mark the row invalid too
                if hole is not None:
                    counted &= ~hole
                if episodic:
                    counted &= alive
                ep_return += np.where(counted, rewards[t], 0.0)
                ep_length += counted
            any_done = done is not None
            if any_done:
                ended = done if counted is None else done & counted
                for i in np.flatnonzero(ended):
                    completed.append((float(ep_return[i]), int(ep_length[i])))
                ep_return[done] = 0.0
                ep_length[done] = 0
                agent._episode_ids += done
            # Next-step autoreset: the step after an ending is a hole, the one after it a
            # start. Otherwise the step after an ending is a start.
            if holes:
                next_start = hole if hole is not None else no_start
                any_start = hole is not None
            else:
                next_start = done if any_done else no_start
                any_start = any_done
            if t + 1 < n and any_start:
                starts[t + 1] = next_start
            if wants_prev:
                prev_action = to_space(action)
                prev_reward = torch.as_tensor(rewards[t], device=device)
            state = next_state
            if episodic and any_done:
                alive &= ~done
                if not alive.any():
                    T = t + 1
                    break

    agent.total_steps += int(valid[:T].sum())
    # Where the next call continues from.
    if episodic:
        # Episodes still running at the horizon end there: a time limit, so truncated
        # (and bootstrapped), and finished for the episode statistics.
        cut = np.flatnonzero(alive & valid[T - 1])
        truncations[T - 1, cut] = True
        for i in cut:
            completed.append((float(ep_return[i]), int(ep_length[i])))
        agent._next_obs = None
    else:
        agent._next_obs = tree_map(lambda x: x[n].clone(), obs_store)
        agent._starts = np.array(next_start, dtype=bool)
        agent._carry[policy] = (
            tree_map(torch.Tensor.detach, state),
            tree_map(torch.Tensor.detach, prev_action) if wants_prev else None,
            prev_reward if wants_prev else None,
            agent._episode_ids.copy(),
        )

    return _build(
        agent, policy, obs_store, T, rewards, terminations, truncations, valid, starts,
        patches, actions, dists, extras, states_in, states_out, prev_actions, prev_rewards,
        dry, grad, device,
    )  # fmt: skip


def _build(
    agent, policy, obs_store, T, rewards, terminations, truncations, valid, starts,
    patches, actions, dists, extras, states_in, states_out, prev_actions, prev_rewards,
    dry, grad, device,
) -> Rollout:  # fmt: skip
    as_t = lambda a: torch.from_numpy(a[:T]).to(device)
    valid_t = as_t(valid)
    invalid = ~valid
    rewards[invalid] = 0.0
    terminations[invalid] = False
    truncations[invalid] = False
    starts[invalid] = False
    observations = tree_map(lambda x: x[:T], obs_store)
    next_observations = tree_map(lambda x: x[1 : T + 1], obs_store)
    if patches:
        next_observations = tree_map(torch.clone, next_observations)
        for t, idx, final in patches:
            if t < T:
                rows = tree_index(next_observations, t)
                _copy_rows(rows, torch.as_tensor(idx), final)
    all_valid = bool(valid[:T].all())
    masked = (lambda tree: tree) if all_valid else (lambda tree: fw.mask_steps(tree, valid_t))
    actions_t = fw.stack_steps(actions)
    recurrent = fw.stack_steps(states_in) if states_in else None
    fields: dict[str, Any] = dict(
        observations=masked(observations),
        next_observations=masked(next_observations),
        actions=masked(actions_t),
        rewards=as_t(rewards),
        terminations=as_t(terminations),
        truncations=as_t(truncations),
        valid=valid_t,
        starts=as_t(starts),
        recurrent_states=masked(recurrent),
        prev_actions=masked(fw.stack_steps(prev_actions)) if prev_actions else None,
        prev_rewards=masked(torch.stack(prev_rewards)) if prev_rewards else None,
        dry=dry,
    )
    if dry:
        return Rollout(**fields)

    others = tuple(masked(x) for x in fw.stack_extras(extras))
    dones = fields["terminations"] | fields["truncations"]
    need = dones.clone()
    need[-1] = True
    need &= valid_t
    with torch.set_grad_enabled(grad), without_validation(not agent.validate_args):
        next_others = fw.bootstrap_extras(
            policy,
            others,
            need,
            fields["next_observations"],
            fw.stack_steps(states_out) if states_out else None,
            as_space_structure(agent.action_space, actions_t),
            fields["rewards"],
            valid_t,
        )

    mask = (lambda x: x) if all_valid else (lambda x: fw.mask_steps(x, valid_t))

    # Log-probs and entropy are computed when first read, under sampling's grad mode.
    with torch.set_grad_enabled(grad), without_validation(not agent.validate_args):
        logprobs_fn, entropy_fn = fw.step_logprobs_entropy(dists, actions_t, T, len(valid[0]))
        logprobs = deferred(lambda: mask(logprobs_fn()))
        entropy = deferred(lambda: mask(entropy_fn()))
    return Rollout(
        **fields, logprobs=logprobs, entropy=entropy, others=others, next_others=next_others
    )


def _copy_rows(rows: Tree, idx: torch.Tensor, src: Any) -> None:
    if isinstance(rows, torch.Tensor):
        rows[idx.to(rows.device)] = torch.as_tensor(src).to(rows.device, rows.dtype)
    elif isinstance(rows, dict):
        for k, r in rows.items():
            _copy_rows(r, idx, src[k])
    else:
        for r, s in zip(rows, src, strict=True):
            _copy_rows(r, idx, s)

"""Sampling: the :class:`Collector` behind ``agent(policy).steps(n)`` and ``.episode()``.

Per step: one batched forward for all B environments, one sample, one environment step
and a copy of the new observations into preallocated ``[T + 1, B]`` storage (safe from
environments that reuse their observation arrays). Log-probs and entropies are computed
when first read, in the gradient mode of sampling; extras are stacked once at the end.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

import rlx.fast
from rlx.core import policy_calls as calls
from rlx.core.deferred import Deferred
from rlx.core.distribution import stack as stack_distributions
from rlx.core.episodes import Episodes
from rlx.core.parametric import extras_dropped
from rlx.core.rollout import Rollout, cat
from rlx.core.spaces import (
    action_converter,
    allocate,
    as_space_structure,
    check_action,
    check_distribution,
)
from rlx.envs.snapshot import restore as restore_env
from rlx.envs.snapshot import snapshot as snapshot_env
from rlx.envs.vector import VectorStepper
from rlx.fast import acting as fast_acting
from rlx.fast.distributions import without_validation
from rlx.tree import Tree, tree_index, tree_map


class Continuation(NamedTuple):
    """Where a policy's next ``steps`` call picks up: its recurrent state, its previous
    action and reward (for policies that take them), and the episode each environment
    was in then (an environment that began a new one meanwhile starts it afresh)."""

    state: Tree
    prev_action: Tree
    prev_reward: torch.Tensor | None
    episode_ids: np.ndarray


@dataclass
class _Record:
    """What one sampling call records: ``[n, B]`` arrays filled step by step (the first
    ``T`` rows used), observations in ``[n + 1, B]`` storage, per-step lists."""

    observations: Tree
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    valid: np.ndarray
    starts: np.ndarray
    T: int
    # (t, environment indices, their final observations): rows of next_observations
    # that differ from the next row of observations, because the environment was reset.
    finals: list[tuple[int, np.ndarray, Any]] = field(default_factory=list)
    actions: list[Tree] = field(default_factory=list)
    distributions: list[Any] = field(default_factory=list)
    extras: list[tuple[Any, ...]] = field(default_factory=list)
    states_in: list[Tree] = field(default_factory=list)
    states_out: list[Tree] = field(default_factory=list)
    prev_actions: list[Tree] = field(default_factory=list)
    prev_rewards: list[torch.Tensor] = field(default_factory=list)


class Collector:
    """Steps an Agent's environments with any policy, continuing where the last call
    stopped, and keeps the episode bookkeeping (:class:`~rlx.core.episodes.Episodes`)."""

    def __init__(
        self, env: gym.vector.VectorEnv, seed: int | None, clip_actions: bool,
        validate_args: bool,
    ) -> None:  # fmt: skip
        self.env = env
        self.num_envs = env.num_envs
        self.observation_space = env.single_observation_space
        self.action_space = env.single_action_space
        self.stepper = VectorStepper(env)
        self.to_env = action_converter(self.action_space, clip_actions)
        self.validate_args = validate_args
        self.episodes = Episodes(self.num_envs)
        self.total_steps = 0  # valid transitions sampled so far
        self.running = True  # episodes still running in an episodic run (see run)
        self.seed = seed
        self.seed_pending = seed is not None
        self.reset()

    def reset(self) -> None:
        """Start fresh episodes in every environment at the next call."""
        self.next_obs: Any = None  # the observations the next call acts on
        self.next_starts = np.ones(self.num_envs, dtype=bool)
        self.continuations: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _reset_envs(self) -> Any:
        seed = self.seed if self.seed_pending else None
        self.seed_pending = False
        self.episodes.restart_all()
        self.next_starts[:] = True
        return self.stepper.reset(seed=seed)

    def _initial_inputs(self, policy, episodic, device, init) -> tuple[Tree, Tree, Any]:  # noqa: ANN001
        """The recurrent state, previous action and reward the first step acts with."""
        carried = None if episodic else self.continuations.get(policy)
        if carried is None or self.next_obs is None:
            return init, None, None
        state = tree_map(lambda x: x.to(device), carried.state)
        prev_action, prev_reward = carried.prev_action, carried.prev_reward
        # Environments that began a new episode while other policies acted: this policy
        # did not see its start, so it begins it from its initial state.
        stale = torch.as_tensor(carried.episode_ids != self.episodes.ids, device=device)
        if bool(stale.any()):
            if state is not None:
                state = calls.reset_rows(state, stale, init)
            if prev_action is not None:
                prev_action = calls.reset_rows(prev_action, stale, None)
                prev_reward = torch.where(stale, 0.0, prev_reward)
        return state, prev_action, prev_reward

    def collect(
        self, policy: torch.nn.Module, n: int, dry: bool, episodic: bool,
        deterministic: bool = False,
    ) -> Rollout:  # fmt: skip
        """Run ``policy`` for ``n`` steps (or until every episode ends, when ``episodic``)."""
        if n < 1:
            raise ValueError(f"the number of steps must be at least 1, got {n}.")
        dropping = extras_dropped() if dry else contextlib.nullcontext()
        with without_validation(not self.validate_args), dropping:
            return run_all([self.run(policy, n, dry, episodic, deterministic)])[0]

    def run(
        self, policy: torch.nn.Module, n: int, dry: bool, episodic: bool, deterministic: bool,
        ended: Callable[[], bool] | None = None,
    ) -> Generator[None, None, Rollout]:  # fmt: skip
        """:meth:`collect` as a generator that pauses while the environments step (after
        each ``send``), so that several Collectors can take turns (:class:`Alternating`);
        it returns the rollout. The caller sets validation and extras dropping. With
        ``ended``, an episodic run also pauses after recording each step and stops when
        ``ended()`` says every Collector's episodes have ended (``self.running`` says
        whether this one's have not)."""
        B = self.num_envs
        device = calls.policy_device(policy)
        wants_prev = calls.wants_previous(policy)
        init = calls.initial_state(policy, B)
        state, prev_action, prev_reward = self._initial_inputs(policy, episodic, device, init)
        start_obs = self._reset_envs() if episodic or self.next_obs is None else self.next_obs
        dtype = calls.policy_float_dtype(policy)
        obs_store = allocate(self.observation_space, (n + 1, B), device, dtype)
        _copy_into(tree_index(obs_store, 0), start_obs)
        rec = _Record(
            obs_store, np.zeros((n, B), dtype=np.float32), np.zeros((n, B), dtype=bool),
            np.zeros((n, B), dtype=bool), np.ones((n, B), dtype=bool),
            np.zeros((n, B), dtype=bool), n,
        )  # fmt: skip
        rec.starts[0] = self.next_starts
        alive = np.ones(B, dtype=bool)
        grad = torch.is_grad_enabled()
        next_step_mode = self.stepper.mode == "next_step"
        no_start = np.zeros(B, dtype=bool)
        any_start = bool(rec.starts[0].any())
        next_start = rec.starts[0]

        single = isinstance(obs_store, torch.Tensor)
        obs_np = fast_acting.numpy_view(obs_store) if rlx.fast.enabled() else None
        # A policy that can act in numpy (the ready MLP policies) does so where nothing but
        # its actions is kept: a dry rollout without gradient (how algorithms sample
        # feed-forward policies). Step 0 still runs forward, which checks the output.
        numpy_act = None
        if dry and not grad and obs_np is not None and not wants_prev and init is None:
            make = getattr(policy, "numpy_actor", None)
            numpy_act = make(B) if make is not None else None
        for t in range(n):
            if any_start:
                mask = torch.as_tensor(rec.starts[t], device=device)
                if state is not None:
                    state = calls.reset_rows(state, mask, init)
                if prev_action is not None:
                    prev_action = calls.reset_rows(prev_action, mask, None)
                    prev_reward = torch.where(mask, 0.0, prev_reward)
            if numpy_act is not None and t > 0:
                action = torch.from_numpy(numpy_act(obs_np[t], deterministic))
                next_state = None
            else:
                obs_t = obs_store[t] if single else tree_index(obs_store, t)
                if grad:  # the graph keeps it: a copy, apart from the rows written next
                    obs_t = tree_map(torch.clone, obs_t)
                if wants_prev:
                    if prev_reward is None:  # first step: zeros shaped like the actions
                        prev_reward = torch.zeros(B, device=device)
                        prev_action = allocate(self.action_space, (B,), device)
                    rec.prev_rewards.append(prev_reward)
                    rec.prev_actions.append(prev_action)
                    out = policy(state, obs_t, prev_action, prev_reward)
                else:
                    out = policy(state, obs_t)
                if t == 0:
                    calls.check_output(policy, out, B)
                next_state, dist = out[0], out[1]
                action = dist.mode() if deterministic else dist.sample()
                if t == 0:
                    check_action(self.action_space, action, B)
                    check_distribution(self.action_space, dist)
                if not dry:
                    rec.distributions.append(dist)
                    rec.extras.append(out[2:])
                if next_state is not None:
                    numpy_act = None  # recurrent after all: act through forward
                    if state is None:  # first step ever: None meant zeros
                        everywhere = torch.ones(B, dtype=torch.bool)
                        state = calls.reset_rows(next_state, everywhere, None)
                    rec.states_in.append(tree_map(torch.Tensor.detach, state))
                    rec.states_out.append(next_state)
            self.stepper.send(self.to_env(action))
            yield  # the environments step: another Collector may act meanwhile
            step = self.stepper.receive()

            rec.rewards[t] = step.rewards
            rec.terminations[t] = step.terminations
            rec.truncations[t] = step.truncations
            if obs_np is not None:
                obs_np[t + 1] = step.obs
            else:
                _copy_into(tree_index(obs_store, t + 1), step.obs)
            rec.actions.append(action)
            if step.finals is not None:
                rec.finals.append((t, *step.finals))
            if step.autoreset is None and not episodic:
                counted = None
            else:
                counted = rec.valid[t]  # a view: the &= below mark the row invalid too
                if step.autoreset is not None:
                    counted &= ~step.autoreset
                if episodic:
                    counted &= alive
            self.episodes.add(rec.rewards[t], counted)
            if step.done is not None:
                self.episodes.end(step.done, counted)
            # Next-step autoreset: the step after an ending is an autoreset, the one
            # after it a start. Otherwise the step after an ending is a start.
            if next_step_mode:
                next_start = step.autoreset if step.autoreset is not None else no_start
            else:
                next_start = step.done if step.done is not None else no_start
            any_start = next_start is not no_start
            if t + 1 < n and any_start:
                rec.starts[t + 1] = next_start
            if wants_prev:
                prev_action = as_space_structure(self.action_space, action)
                prev_reward = torch.as_tensor(rec.rewards[t], device=device)
            state = next_state
            if episodic and step.done is not None:
                alive &= ~step.done
                if ended is None and not alive.any():
                    rec.T = t + 1
                    break
            if episodic and ended is not None:
                # Taking turns: every Collector records this step before any decides
                # whether all episodes (theirs too) have ended.
                self.running = bool(alive.any())
                yield
                if ended():
                    rec.T = t + 1
                    break

        T = rec.T
        self.total_steps += int(rec.valid[:T].sum())
        if episodic:
            # Episodes still running at the horizon end there: a time limit, so truncated
            # (and bootstrapped), and finished for the episode statistics.
            cut = np.flatnonzero(alive & rec.valid[T - 1])
            rec.truncations[T - 1, cut] = True
            self.episodes.finish(cut)
            self.next_obs = None
        else:
            self.next_obs = tree_map(lambda x: x[n].clone(), obs_store)
            self.next_starts = np.array(next_start, dtype=bool)
            self.continuations[policy] = Continuation(
                tree_map(torch.Tensor.detach, state),
                tree_map(torch.Tensor.detach, prev_action) if wants_prev else None,
                prev_reward if wants_prev else None,
                self.episodes.ids.copy(),
            )
        return self._build(policy, rec, dry, grad, device)

    def _build(
        self, policy: torch.nn.Module, rec: _Record, dry: bool, grad: bool, device: torch.device
    ) -> Rollout:
        """The rollout of a finished call: invalid rows zeroed, final observations put in
        place, steps stacked; unless dry, bootstrap extras and deferred log-probs."""
        T = rec.T
        as_t = lambda a: torch.from_numpy(a[:T]).to(device)
        valid_t = as_t(rec.valid)
        invalid = ~rec.valid
        for flags in (rec.terminations, rec.truncations, rec.starts):
            flags[invalid] = False
        rec.rewards[invalid] = 0.0
        observations = tree_map(lambda x: x[:T], rec.observations)
        next_observations = tree_map(lambda x: x[1 : T + 1], rec.observations)
        if rec.finals:
            next_observations = tree_map(torch.clone, next_observations)
            for t, idx, final in rec.finals:
                if t < T:
                    _copy_into(tree_index(next_observations, t), final, torch.as_tensor(idx))
        masked = calls.masker(valid_t, bool(rec.valid[:T].all()))
        actions = calls.stack_steps(rec.actions)
        fields: dict[str, Any] = dict(
            observations=masked(observations),
            next_observations=masked(next_observations),
            actions=masked(actions),
            rewards=as_t(rec.rewards),
            terminations=as_t(rec.terminations),
            truncations=as_t(rec.truncations),
            valid=valid_t,
            starts=as_t(rec.starts),
            recurrent_states=masked(calls.stack_steps(rec.states_in)) if rec.states_in else None,
            prev_actions=masked(calls.stack_steps(rec.prev_actions)) if rec.prev_actions else None,
            prev_rewards=masked(torch.stack(rec.prev_rewards)) if rec.prev_rewards else None,
            dry=dry,
        )
        if dry:
            return Rollout(**fields)

        others = tuple(masked(x) for x in calls.stack_extras(rec.extras))
        need = calls.bootstrap_rows(fields["terminations"], fields["truncations"], valid_t)
        # Log-probs and entropy are computed when first read, under sampling's grad mode.
        with torch.set_grad_enabled(grad), without_validation(not self.validate_args):
            next_others = calls.bootstrap_extras(
                policy, others, need, fields["next_observations"],
                calls.stack_steps(rec.states_out) if rec.states_out else None,
                as_space_structure(self.action_space, actions), fields["rewards"], valid_t,
            )  # fmt: skip
            logprobs_fn, entropy_fn = calls.step_logprobs_entropy(
                rec.distributions, actions, T, self.num_envs
            )
            logprobs = Deferred(lambda: masked(logprobs_fn()))
            entropy = Deferred(lambda: masked(entropy_fn()))
            distributions = Deferred(lambda: stack_distributions(rec.distributions))
        return Rollout(
            **fields, logprobs=logprobs, entropy=entropy, others=others,
            next_others=next_others, distributions=distributions,
        )  # fmt: skip

    # ------------------------------------------------------------ bookkeeping
    def pop_episodes(self) -> list[tuple[float, int]]:
        """(return, length) of every episode finished since the last call, oldest first."""
        return self.episodes.pop()

    def record(self, steps: int, episodes: list[tuple[float, int]]) -> None:
        """Count experience sampled elsewhere in ``total_steps`` and :meth:`pop_episodes`."""
        self.total_steps += int(steps)
        self.episodes.finished.extend(episodes)

    # ------------------------------------------------------------ checkpoints
    def state_dict(self, policy: torch.nn.Module | None = None) -> dict[str, Any]:
        """Where sampling stands, as plain data (see :meth:`rlx.Agent.state_dict`)."""
        carried = self.continuations.get(policy) if policy is not None else None
        return {
            "next_obs": self.next_obs,
            "starts": torch.from_numpy(self.next_starts.copy()),
            **self.episodes.state_dict(),
            "total_steps": self.total_steps,
            "seed_pending": self.seed_pending,
            "carry": list(carried[:3]) if carried is not None else None,
            "stepper": self.stepper.state_dict(),
            "env": snapshot_env(self.env),
        }

    def load_state_dict(self, state: dict[str, Any], policy: torch.nn.Module | None = None) -> bool:
        """Restore :meth:`state_dict`; False when the environments could not be restored
        exactly (they then start new episodes at the next call)."""
        self.total_steps = int(state["total_steps"])
        self.episodes.load_state_dict(state)
        self.seed_pending = bool(state["seed_pending"])
        if not restore_env(self.env, state["env"]):
            self.reset()
            return False
        self.next_obs = state["next_obs"]
        self.next_starts = state["starts"].numpy().copy()
        self.stepper.load_state_dict(state["stepper"])
        if policy is not None and state["carry"] is not None:
            self.continuations[policy] = Continuation(*state["carry"], self.episodes.ids.copy())
        return True


def run_all(runs: list[Generator[None, None, Rollout]]) -> list[Rollout]:
    """Drive :meth:`Collector.run` generators in turn until each returns its rollout."""
    results: list[Any] = [None] * len(runs)
    live = list(range(len(runs)))
    while live:
        for i in tuple(live):
            try:
                next(runs[i])
            except StopIteration as done:
                results[i] = done.value
                live.remove(i)
    return results


class Alternating:
    """The alternating sampler: two Collectors, one per half of a
    :class:`~rlx.envs.parallel.ParallelVectorEnv`'s environments (each half spread over
    every worker process), take turns: the policy acts for one half while the workers
    step the other (rlpyt's alternating sampler). It pays where acting costs about as
    much as stepping (a large network, a slow environment).

    The rollout is the halves' rollouts joined along the environments. With the same
    seed it equals the parallel sampler's wherever the policy's random draws do not
    depend on how the batch is split: for a single Categorical, always (it draws row
    after row); for a single Normal, when the whole batch draws fewer than 16 values or
    each half a multiple of 16. Otherwise (several components draw in turn, per half)
    the actions come from the same distributions with other draws.
    ``episode()`` runs the halves in turn too, until every episode of both has ended.
    """

    def __init__(
        self, env: gym.vector.VectorEnv, seed: int | None, clip_actions: bool,
        validate_args: bool,
    ) -> None:  # fmt: skip
        # Each half is seeded like the whole: environment i gets seed + i either way.
        self.halves = [Collector(h, seed, clip_actions, validate_args) for h in env.halves()]
        self.validate_args = validate_args

    @property
    def validate_args(self) -> bool:
        return self.halves[0].validate_args

    @validate_args.setter
    def validate_args(self, value: bool) -> None:
        for half in getattr(self, "halves", ()):
            half.validate_args = value

    @property
    def total_steps(self) -> int:
        return sum(half.total_steps for half in self.halves)

    def collect(
        self, policy: torch.nn.Module, n: int, dry: bool, episodic: bool,
        deterministic: bool = False,
    ) -> Rollout:  # fmt: skip
        if n < 1:
            raise ValueError(f"the number of steps must be at least 1, got {n}.")
        dropping = extras_dropped() if dry else contextlib.nullcontext()
        ended = (lambda: not any(h.running for h in self.halves)) if episodic else None
        with without_validation(not self.validate_args), dropping:
            parts = run_all(
                [h.run(policy, n, dry, episodic, deterministic, ended) for h in self.halves]
            )
        return cat(parts, dim=1)

    def reset(self) -> None:
        for half in self.halves:
            half.reset()

    def pop_episodes(self) -> list[tuple[float, int]]:
        return [episode for half in self.halves for episode in half.pop_episodes()]

    def record(self, steps: int, episodes: list[tuple[float, int]]) -> None:
        self.halves[0].record(steps, episodes)

    def state_dict(self, policy: torch.nn.Module | None = None) -> dict[str, Any]:
        return {"halves": [half.state_dict(policy) for half in self.halves]}

    def load_state_dict(self, state: dict[str, Any], policy: torch.nn.Module | None = None) -> bool:
        if "halves" not in state:
            raise ValueError(
                "this checkpoint was saved by another sampler than 'alternating'; resume "
                "it with the sampler it was saved with."
            )
        restored = [h.load_state_dict(s, policy) for h, s in zip(self.halves, state["halves"],
                                                                  strict=True)]  # fmt: skip
        return all(restored)


def _copy_into(dst: Tree, src: Any, rows: torch.Tensor | None = None) -> None:
    """Copy ``src`` (structured like ``dst``) into ``dst``, or into its ``rows`` only."""
    if isinstance(dst, torch.Tensor):
        if rows is None:
            dst.copy_(torch.as_tensor(src))
        else:
            dst[rows.to(dst.device)] = torch.as_tensor(src).to(dst.device, dst.dtype)
    elif isinstance(dst, dict):
        for k, d in dst.items():
            _copy_into(d, src[k], rows)
    else:
        for d, s in zip(dst, src, strict=True):
            _copy_into(d, s, rows)

"""Asynchronous sampling for the replay-based algorithms: a process acts and writes into a
replay in shared memory while the learner trains on it, kept to a replay ratio.

The *replay ratio* (as in rlpyt) is the transitions the learner draws per transition the
environments produce. Neither side gets ahead: the learner waits when its next batch
would exceed the ratio, the sampler when it is more than ``lead`` steps ahead of what the
learner can use. The sampler gets the learner's weights after every iteration
(``publish``) and follows the algorithm's exploration schedules (ε, noise).

::

    dqn = DQN(agent, policy, config)
    dqn.sampler = ReplaySampler(lambda: rlx.Agent("CartPole-v1", num_envs=1, seed=0), dqn)
    for _ in range(1000):
        dqn.iteration()  # updates on the shared replay; the sampler fills it meanwhile
    dqn.sampler.close()

Processes are spawned: keep a script's top-level work under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import copy
import queue
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

import cloudpickle
import torch

from rlx.core import policy_calls as calls
from rlx.core.agent import Agent
from rlx.core.rollout import Rollout
from rlx.core.spaces import allocate
from rlx.sampling.asynchronous import ProcessSampler, SamplerError, _follow


class ReplayLearner(Protocol):
    """What :class:`ReplaySampler` needs from its algorithm (an
    :class:`~rlx.algos.offpolicy.OffPolicyAlgorithm`)."""

    agent: Agent  # its environments' count and spaces shape the shared replay
    config: Any  # read for ``learning_starts``; passed back to the class methods below
    replay: Any  # moved to shared memory (``share_memory``); the sampler adds to it
    random_policy: torch.nn.Module  # acts until ``learning_starts``, if
    acts_randomly_first: bool

    def acting_policy(self) -> torch.nn.Module:
        """The network that acts (its weights are published after each iteration)."""

    def setting(self, name: str) -> float:
        """A hyper-parameter's current value (``batch_size``, ``gradient_steps``)."""

    @classmethod
    def steps_per_iteration(cls, config: Any, step: int) -> int:
        """Environment steps per sampling call at ``step``."""

    @classmethod
    def set_exploration(cls, config: Any, policy: torch.nn.Module, step: int) -> None:
        """Set ``policy``'s exploration (epsilon, noise) to its schedule at ``step``."""


def _example(agent: Agent, policy: torch.nn.Module) -> Rollout:
    """A one-step dry rollout of zeros shaped like the agent's: the replay's layout."""
    B, device = agent.num_envs, torch.device("cpu")
    obs = allocate(agent.observation_space, (1, B), device, calls.policy_float_dtype(policy))
    flags = torch.zeros(1, B, dtype=torch.bool)
    return Rollout(
        observations=obs, next_observations=obs,
        actions=allocate(agent.action_space, (1, B), device), rewards=torch.zeros(1, B),
        terminations=flags, truncations=flags, valid=~flags, starts=flags,
    )  # fmt: skip


def _replay_loop(payload: bytes, replay: Any, weights: tuple, counts: torch.Tensor, out: Any,
                 stop: Any) -> None:  # fmt: skip
    """The sampling process: act, add to the shared replay, report, repeat."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    with contextlib.ExitStack() as closing:  # closes the agent after any error is sent
        try:
            make_agent, algo_cls, config, acting, warmup, num_envs, ratio, lead, seed = (
                cloudpickle.loads(payload)
            )
            if seed is not None:
                torch.manual_seed(seed)
            agent = closing.enter_context(contextlib.closing(make_agent()))
            if agent.num_envs != num_envs:
                raise ValueError(
                    f"the sampler's agent has {agent.num_envs} environments but the "
                    f"algorithm's has {num_envs}: make both with the same num_envs."
                )
            seen = -1
            while not stop.is_set():
                produced, consumed = int(counts[0]), int(counts[1])
                learning = produced >= config.learning_starts
                if learning and consumed < ratio * (produced - config.learning_starts - lead):
                    time.sleep(0.001)  # far enough ahead of the learner: let it catch up
                    continue
                seen = _follow(acting, weights, seen)
                policy = acting if learning or warmup is None else warmup
                algo_cls.set_exploration(config, acting, produced)
                steps = algo_cls.steps_per_iteration(config, produced)
                with torch.no_grad():
                    rollout = agent(policy).steps(steps, dry=True)
                replay.add(rollout)
                counts[0] += rollout.num_steps
                out.put((rollout.num_steps, agent.pop_episodes()))
        except Exception:
            out.put(("error", traceback.format_exc()))


class ReplaySampler(ProcessSampler):
    """Samples for a replay-based algorithm in a separate process; see the module doc.

    Args:
        make_agent: returns the :class:`rlx.Agent` to act with (called in the sampling
            process), with as many environments as the algorithm's agent.
        algorithm: an :class:`~rlx.algos.offpolicy.OffPolicyAlgorithm`; its replay moves
            to shared memory and it learns from what arrives there.
        replay_ratio: default the algorithm's own,
            ``batch_size * gradient_steps / (steps * num_envs)``.
        lead: environment steps the sampler may run ahead of the learner's needs.
        seed: seeds torch in the sampling process.
    """

    def __init__(
        self,
        make_agent: Callable[[], Agent],
        algorithm: ReplayLearner,
        replay_ratio: float | None = None,
        lead: int = 1000,
        seed: int | None = 0,
    ) -> None:
        acting = algorithm.acting_policy()
        super().__init__(acting)
        c = algorithm.config
        if replay_ratio is None:
            drawn = algorithm.setting("batch_size") * algorithm.setting("gradient_steps")
            replay_ratio = drawn / (algorithm.steps_per_iteration(c, 0) * algorithm.agent.num_envs)
        if replay_ratio <= 0 or lead < 0:
            raise ValueError(f"replay_ratio must be > 0 and lead >= 0, got {replay_ratio}, {lead}.")
        self.replay_ratio, self.lead = float(replay_ratio), lead
        example = _example(algorithm.agent, acting)
        self.replay = algorithm.replay.share_memory(example, self._ctx.Lock())
        # produced (environment steps added) and consumed (transitions drawn)
        self.counts = torch.zeros(2, dtype=torch.int64).share_memory_()
        warmup = algorithm.random_policy if algorithm.acts_randomly_first else None
        payload = cloudpickle.dumps((
            make_agent, type(algorithm), c, copy.deepcopy(acting).cpu(), warmup,
            algorithm.agent.num_envs, self.replay_ratio, lead, seed,
        ))  # fmt: skip
        self._start(
            _replay_loop, "rlx-replay-sampler", payload, self.replay, self._weights, self.counts
        )

    def arrived(self) -> tuple[int, list[tuple[float, int]]]:
        """Environment steps added and episodes finished since the last call."""
        steps, episodes = 0, []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item[0] == "error":
                self.close()
                raise SamplerError(f"the sampling process raised:\n{item[1]}")
            steps += item[0]
            episodes.extend(item[1])
        if steps == 0 and not self._process.is_alive() and not self.closed:
            code = self._process.exitcode
            self.close()
            raise SamplerError(f"the sampling process died (exit {code}).")
        self.total_steps += steps
        return steps, episodes

    def throttle(self, batch_size: int, learning_starts: int, timeout: float = 120.0) -> None:
        """Wait until drawing ``batch_size`` more transitions keeps the replay ratio."""
        waited = time.perf_counter()
        while True:
            produced, consumed = int(self.counts[0]), int(self.counts[1])
            if consumed <= self.replay_ratio * max(produced - learning_starts, 0):
                break
            if not self._process.is_alive():
                self.arrived()  # raises with the sampler's error
                raise SamplerError("the sampling process stopped.")
            if time.perf_counter() - waited > timeout:
                self.close()
                raise SamplerError(f"no transitions arrived within {timeout:.0f} s.")
            time.sleep(0.0005)
        self.counts[1] += batch_size

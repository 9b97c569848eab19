"""Asynchronous sampling: a process samples while the caller trains.

:class:`AsyncSampler` runs its own :class:`~rlx.Agent` and a copy of the policy in another
process, filling a queue of ``[T, B]`` rollouts tagged with the policy version that
sampled them. The learner takes the oldest with :meth:`get`, updates, and hands the new
weights over with :meth:`publish` (through shared memory). On-policy algorithms thus
train on data at most ``max_queue`` versions old, which PPO's ratio to the sampled
log-probs corrects for; the lag is reported with each batch.

::

    # processes are spawned: keep a script's top-level work under `if __name__ == "__main__":`
    sampler = AsyncSampler(lambda: rlx.Agent("CartPole-v1", num_envs=8, seed=0), policy, 128)
    ppo.sampler = sampler           # PPO now samples from the queue and publishes updates
    for _ in range(100):
        ppo.iteration()
    sampler.close()
"""

from __future__ import annotations

import contextlib
import copy
import queue
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

import cloudpickle
import torch
import torch.multiprocessing as tmp

from rlx.core.agent import Agent
from rlx.core.rollout import Rollout, cat


class SamplerError(RuntimeError):
    """The sampling process raised or died."""


def _follow(policy: torch.nn.Module, weights: tuple, seen: int) -> int:
    """Load the published ``weights`` (shared module, lock, version) into ``policy`` unless
    version ``seen`` is already loaded; return the version ``policy`` now has."""
    shared, lock, version = weights
    if version.value != seen:
        with lock:
            policy.load_state_dict(shared.state_dict())
            return version.value
    return seen


def _sample_loop(payload: bytes, weights: tuple, out: Any, stop: Any) -> None:
    """The sampling process: sample, send, pick up new weights, repeat until stopped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    with contextlib.ExitStack() as closing:  # closes the agent after any error is sent
        try:
            make_agent, policy, steps, seed = cloudpickle.loads(payload)
            if seed is not None:
                torch.manual_seed(seed)
            agent = closing.enter_context(contextlib.closing(make_agent()))
            seen = -1
            while not stop.is_set():
                seen = _follow(policy, weights, seen)
                with torch.no_grad():  # to_dict: plain tensors, deferred values computed
                    data = agent(policy).steps(steps).to_dict()
                item = ("batch", data, seen, agent.pop_episodes())
                while not stop.is_set():
                    with contextlib.suppress(queue.Full):
                        out.put(item, timeout=0.1)
                        break
        except Exception:
            out.put(("error", traceback.format_exc(), None, None))


class ProcessSampler:
    """What the samplers share: the learner, a shared-memory copy of its weights with a
    version counter, and the bookkeeping of arrived batches."""

    def __init__(self, policy: torch.nn.Module) -> None:
        self.policy = policy
        self._ctx = ctx = tmp.get_context("spawn")  # torch in a forked child can deadlock
        # what _follow reads: the shared copy of the weights, its lock and version
        self._weights = (copy.deepcopy(policy).cpu().share_memory(), ctx.Lock(), ctx.Value("l", 0))
        self.version = 0
        self.total_steps = 0
        self._episodes: list[tuple[float, int]] = []
        self.closed = False

    def _arrived(self, data: dict, episodes: list[tuple[float, int]]) -> Rollout:
        rollout = Rollout.from_dict(data)
        self._episodes.extend(episodes)
        return rollout

    def _to_learner(self, rollout: Rollout) -> Rollout:
        device = next(iter(self.policy.parameters()), torch.empty(0)).device
        if rollout.device != device:
            rollout = rollout.to(device)
        self.total_steps += rollout.num_steps
        return rollout

    def publish(self) -> None:
        """Hand the policy's current weights to the sampler (call after each update)."""
        shared, lock, version = self._weights
        with lock:
            shared.load_state_dict(self.policy.state_dict())  # copied in place
            version.value += 1
        self.version += 1

    def pop_episodes(self) -> list[tuple[float, int]]:
        """(return, length) of the episodes finished in the batches taken so far."""
        done, self._episodes = self._episodes, []
        return done

    def _start(self, target: Callable[..., None], name: str, *args: Any, maxsize: int = 0) -> None:
        """Start ``target(*args, queue, stop)`` in a daemon process (see :meth:`close`)."""
        self._queue = self._ctx.Queue(maxsize=maxsize)
        self._stop = self._ctx.Event()
        args = (*args, self._queue, self._stop)
        self._process = self._ctx.Process(target=target, args=args, daemon=True, name=name)
        self._process.start()

    def close(self) -> None:
        """Stop the sampling process and wait for it."""
        self._stop_process(self._process, self._queue, self._stop)

    def _stop_process(self, process: Any, out: Any, stop: Any) -> None:
        """Stop a sampling process that puts into queue ``out`` until ``stop`` is set."""
        if self.closed:
            return
        self.closed = True
        stop.set()
        while True:  # unblock a put() waiting on a full queue; what it held is dropped
            try:
                out.get_nowait()
            except (queue.Empty, ValueError):  # drained, or closed
                break
            except (EOFError, OSError):  # a batch whose tensors' sender already exited
                continue
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
        out.close()
        out.cancel_join_thread()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class AsyncSampler(ProcessSampler):
    """Samples ``steps``-step rollouts in a separate process; see the module docstring.

    Args:
        make_agent: returns the :class:`rlx.Agent` to sample with (called in the sampling
            process, so its environments live there).
        policy: the learner; the sampler acts with a copy, refreshed by :meth:`publish`.
        steps: T of each rollout (``agent(policy).steps(steps)``).
        max_queue: batches sampled ahead at most; the sampler waits when the queue is full.
        seed: seeds torch in the sampling process (action sampling).
    """

    def __init__(
        self,
        make_agent: Callable[[], Agent],
        policy: torch.nn.Module,
        steps: int,
        max_queue: int = 2,
        seed: int | None = 0,
    ) -> None:
        if steps < 1 or max_queue < 1:
            raise ValueError("steps and max_queue must be at least 1.")
        super().__init__(policy)
        payload = cloudpickle.dumps((make_agent, copy.deepcopy(policy).cpu(), steps, seed))
        self._start(_sample_loop, "rlx-async-sampler", payload, self._weights, maxsize=max_queue)

    def get(self, timeout: float = 120.0) -> tuple[Rollout, int]:
        """The oldest waiting rollout and the policy version that sampled it."""
        if self.closed:
            raise SamplerError("this AsyncSampler is closed.")
        waited = 0.0
        while True:
            try:
                kind, data, version, episodes = self._queue.get(timeout=0.5)
                break
            except queue.Empty:
                waited += 0.5
                if not self._process.is_alive():
                    code = self._process.exitcode
                    self.close()
                    raise SamplerError(f"the sampling process died (exit {code}).") from None
                if waited >= timeout:
                    self.close()
                    raise SamplerError(f"no rollout arrived within {timeout:.0f} s.") from None
        if kind == "error":
            self.close()
            raise SamplerError(f"the sampling process raised:\n{data}")
        return self._to_learner(self._arrived(data, episodes)), version


def _worker_loop(payload: bytes, weights: tuple, pipe: Any) -> None:
    """A sampling worker: on each command, sample with the latest weights and reply."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    with contextlib.ExitStack() as closing:  # closes the agent after any error is sent
        try:
            make_agent, index, policy, steps, seed = cloudpickle.loads(payload)
            if seed is not None:
                torch.manual_seed(seed + index)
            agent = closing.enter_context(contextlib.closing(make_agent(index)))
            seen = -1
            while pipe.recv() == "sample":
                seen = _follow(policy, weights, seen)
                with torch.no_grad():
                    data = agent(policy).steps(steps).to_dict()
                pipe.send(("batch", data, seen, agent.pop_episodes()))
        except EOFError:
            pass
        except Exception:
            with contextlib.suppress(BrokenPipeError, OSError):
                pipe.send(("error", traceback.format_exc(), None, None))


class WorkerSampler(ProcessSampler):
    """Worker processes, each running a copy of the policy on its own environments
    (rlpyt's CPU sampler); ``get()`` samples ``steps`` steps in all of them and joins the
    pieces along the environment dimension.

    Same interface as :class:`AsyncSampler`, but synchronous: every batch comes from the
    latest published weights. Worth it when the policy's forward, not only the
    environment, is costly, and there are cores to spare.

    Args:
        make_agent: ``make_agent(worker_index)`` returns the worker's :class:`rlx.Agent`
            (give each worker its own seed, e.g. ``seed=1000 * worker_index``).
        policy, steps, seed: as for :class:`AsyncSampler`; worker ``i`` seeds torch with
            ``seed + i``.
        workers: number of worker processes.
    """

    def __init__(
        self,
        make_agent: Callable[[int], Agent],
        policy: torch.nn.Module,
        steps: int,
        workers: int = 2,
        seed: int | None = 0,
    ) -> None:
        if steps < 1 or workers < 1:
            raise ValueError("steps and workers must be at least 1.")
        super().__init__(policy)
        self._pipes, self._processes = [], []
        for index in range(workers):
            parent, child = self._ctx.Pipe()
            payload = cloudpickle.dumps(
                (make_agent, index, copy.deepcopy(policy).cpu(), steps, seed)
            )
            process = self._ctx.Process(
                target=_worker_loop,
                args=(payload, self._weights, child),
                daemon=True,
                name=f"rlx-sampler-worker-{index}",
            )
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)

    def get(self, timeout: float = 120.0) -> tuple[Rollout, int]:
        """One batch from every worker, joined along environments, and its version."""
        if self.closed:
            raise SamplerError("this WorkerSampler is closed.")
        for pipe in self._pipes:
            pipe.send("sample")
        pieces, versions = [], []
        for w, (pipe, process) in enumerate(zip(self._pipes, self._processes, strict=True)):
            ready = wait([pipe, process.sentinel], timeout=timeout)
            if pipe not in ready:
                code = process.exitcode
                self.close()
                raise SamplerError(f"sampling worker {w} died or hung (exit {code}).")
            try:
                kind, data, version, episodes = pipe.recv()
            except (EOFError, OSError):
                self.close()
                raise SamplerError(f"sampling worker {w} died.") from None
            if kind == "error":
                self.close()
                raise SamplerError(f"sampling worker {w} raised:\n{data}")
            pieces.append(self._arrived(data, episodes))
            versions.append(version)
        return self._to_learner(cat(pieces, dim=1)), min(versions)

    def close(self) -> None:
        """Stop the workers and wait for them."""
        if self.closed:
            return
        self.closed = True
        for pipe in self._pipes:
            with contextlib.suppress(BrokenPipeError, OSError):
                pipe.send("close")
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for pipe in self._pipes:
            pipe.close()

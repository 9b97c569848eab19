"""Environments stepped in worker processes, actions chosen centrally.

:class:`ParallelVectorEnv` splits ``B`` environments into ``workers`` contiguous groups;
each worker process owns one group and steps it when told to. The main process writes
the actions of all environments, and reads their observations, rewards and episode ends,
through shared memory: per step, a pipe to each worker carries only a short command and
the list of environments whose episode ended. The policy therefore runs once per step,
batched over all ``B`` environments, in the main process (rlpyt's "GPU sampler"
arrangement; on a CPU machine too). A worker resets an environment as soon as its
episode ends (gymnasium's same-step autoreset) and keeps the final observation in a
second shared buffer, so no step is spent on resets.

Faults surface in the main process: an exception inside an environment is raised there
as :class:`WorkerError` naming the environment and carrying the original traceback; a
worker that dies (killed by a signal, out of memory) is detected at once through its
process sentinel. In both cases every worker is stopped and the shared memory released
before the error propagates, so nothing hangs and nothing is left behind.

With the same seed, a ``ParallelVectorEnv`` produces exactly what gymnasium's
``SyncVectorEnv`` does: environment ``i`` is seeded with ``seed + i`` either way.

This module holds the main process's side; what runs in the workers is in
:mod:`rlx.envs.parallel_worker`, the shared arrays in :mod:`rlx.envs.shared_arrays`.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import weakref
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np

from rlx.envs.parallel_worker import EnvFault, EnvGroup, run_worker
from rlx.envs.shared_arrays import SharedBlock, copy_tree, leaf_specs, read_row
from rlx.tree import tree_map

STEP_TIMEOUT = 60.0  # seconds a worker may take for one step before it counts as hung


class WorkerError(RuntimeError):
    """An environment raised, or a worker process died, during parallel sampling."""


class ParallelVectorEnv(gym.vector.VectorEnv):
    """``B`` environments in ``workers`` processes; see the module docstring.

    Args:
        env_fns: one function per environment, each returning a new ``gymnasium.Env``.
        workers: number of groups the environments are split into (contiguous, of nearly
            equal size; at most ``len(env_fns)``), each stepped by its own process.
        inline: the main process steps the first group itself while the worker processes
            step theirs, instead of waiting idle (``workers - 1`` processes are started).
        context: multiprocessing start method (``None``: the platform's default).
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        workers: int = 2,
        inline: bool = True,
        context: str | None = None,
    ) -> None:
        n = len(env_fns)
        if n < 1:
            raise ValueError("ParallelVectorEnv needs at least one environment function.")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}.")
        workers = min(workers, n)
        probe = env_fns[0]()
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        self.metadata = {**getattr(probe, "metadata", {}), **type(self).metadata}
        self.render_mode = getattr(probe, "render_mode", None)
        probe.close()
        self.num_envs = n
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, n)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, n)
        self.spec = None
        self.closed = False

        obs_specs = leaf_specs(self.single_observation_space, n)
        step_specs = tuple(np.dtype((dtype, (n,))) for dtype in (np.float64, bool, bool))
        shared = (obs_specs, obs_specs, leaf_specs(self.single_action_space, n), step_specs)
        self._blocks = [SharedBlock(specs) for specs in shared]
        arrays = tuple(b.arrays for b in self._blocks)
        self._obs, self._finals, self._actions, result = arrays
        self._rewards, self._terminated, self._truncated = result
        names = tuple(b.names for b in self._blocks)

        ctx = mp.get_context(context)
        bounds = np.linspace(0, n, workers + 1).round().astype(int)
        self.groups = [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self._pipes: dict[int, Any] = {}
        self._processes: dict[int, Any] = {}
        self._local: EnvGroup | None = None
        if inline:
            self._local = EnvGroup([env_fns[i]() for i in self.groups[0]], 0, arrays)
        for w in range(int(inline), workers):
            group = self.groups[w]
            parent, child = ctx.Pipe()
            fns = cloudpickle.dumps([env_fns[i] for i in group])
            process = ctx.Process(
                target=run_worker,
                args=(child, fns, group.start, shared, names),
                daemon=True,
                name=f"rlx-env-worker-{w}",
            )
            process.start()
            child.close()
            self._pipes[w] = parent
            self._processes[w] = process
        self._finalizer = weakref.finalize(
            self, _shutdown, self._pipes, self._processes, self._blocks, self._local
        )
        self._gather("start")

    # -------------------------------------------------------------- commands
    def _gather(self, what: str, workers: Sequence[int] | None = None) -> list[Any]:
        """Every worker's (or these ``workers``') reply to the last command; WorkerError
        on a fault."""
        replies: dict[int, Any] = {}
        pending = dict(self._pipes) if workers is None else {w: self._pipes[w] for w in workers}
        sentinels = {p.sentinel: w for w, p in self._processes.items()}
        while pending:
            ready = wait([*pending.values(), *sentinels], timeout=STEP_TIMEOUT)
            if not ready:
                w = next(iter(pending))
                self._fail(f"worker {w} ({self._describe(w)}) did not answer {what} within "
                           f"{STEP_TIMEOUT:.0f} s")  # fmt: skip
            for obj in ready:
                if obj in sentinels:
                    w = sentinels[obj]
                    if w in pending and not pending[w].poll():
                        self._died(w, what)
                    continue
                w = next(k for k, p in pending.items() if p is obj)
                try:
                    status, data = obj.recv()
                except (EOFError, OSError):
                    self._died(w, what)
                if status == "error":
                    index, trace = data
                    self._fail(
                        f"environment {index} raised during {what} (in worker {w}):\n{trace}"
                    )
                replies[w] = data
                del pending[w]
        return [replies[w] for w in sorted(replies)]

    def _died(self, w: int, what: str) -> None:
        process = self._processes[w]
        process.join(timeout=1)
        code = process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
        self._fail(f"worker {w} ({self._describe(w)}) died during {what} ({how})")

    def _describe(self, w: int) -> str:
        group = self.groups[w]
        return f"environments {group.start}-{group.stop - 1}"

    def _fail(self, message: str) -> None:
        self.close()
        raise WorkerError(message)

    def _check_open(self) -> None:
        if self.closed:
            raise WorkerError(
                "this ParallelVectorEnv is closed (after close() or a worker fault); "
                "create a new Agent to sample again."
            )

    def _send(self, command: str, data: Any = None, workers: Sequence[int] | None = None) -> None:
        self._check_open()
        for w in self._pipes if workers is None else workers:
            try:
                self._pipes[w].send((command, data))
            except (BrokenPipeError, OSError):
                self._died(w, command)

    # ----------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if options:
            raise ValueError(
                "ParallelVectorEnv resets environments itself when their episodes end; "
                "reset() takes only a seed."
            )
        self._send("reset", seed)
        if self._local is not None:
            self._run_local(lambda g: g.reset(seed), "reset")
        self._gather("reset")
        return copy_tree(self._obs), {}

    def _run_local(self, fn: Callable[[EnvGroup], Any], what: str) -> Any:
        try:
            return fn(self._local)
        except EnvFault as fault:
            self._fail(
                f"environment {fault.index} raised during {what} (in the main process):\n"
                f"{fault.trace}"
            )

    def step(self, actions: Any):
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: Any) -> None:
        """Start a step of every environment; :meth:`step_wait` returns its result. The
        main process's own group (``inline``) is stepped in ``step_wait``."""
        self._step_async(actions, ALL_ROWS, None)

    def step_wait(self):
        """The result of the step :meth:`step_async` started, as ``step`` returns it."""
        return self._step_wait(ALL_ROWS, None, self._local is not None)

    def _step_async(self, actions: Any, rows: slice, workers: Sequence[int] | None) -> None:
        self._check_open()
        if isinstance(self._actions, np.ndarray):
            target = self._actions[rows]
            target[...] = np.asarray(actions).reshape(target.shape)
        else:
            tree_map(lambda dst, src: dst.__setitem__(rows, src), self._actions, actions)
        self._send("step", None, workers)

    def _step_wait(self, rows: slice, workers: Sequence[int] | None, local: bool):
        ended = self._run_local(EnvGroup.step, "step") if local else []
        ended += [i for reply in self._gather("step", workers) for i in reply]
        first = rows.start or 0
        n = (rows.stop if rows.stop is not None else self.num_envs) - first
        info: dict[str, Any] = {}
        if ended:
            mask = np.zeros(n, dtype=bool)
            final = np.empty(n, dtype=object)
            for i in ended:
                mask[i - first] = True
                final[i - first] = copy_tree(read_row(self._finals, i))
            info = {"final_obs": final, "_final_obs": mask}
        return (
            tree_map(lambda x: x[rows].copy(), self._obs),
            self._rewards[rows].copy(),
            self._terminated[rows].copy(),
            self._truncated[rows].copy(),
            info,
        )

    def halves(self) -> tuple[ParallelVectorView, ParallelVectorView]:
        """The environments as two vector environments of about half the worker
        processes each, which step independently: while one half steps, the policy can
        act for the other (the alternating sampler, :class:`rlx.core.collect.Alternating`).
        Needs ``inline=False`` and at least 2 workers."""
        if self._local is not None or len(self.groups) < 2:
            raise ValueError(
                "halves() needs a ParallelVectorEnv with inline=False and at least 2 workers."
            )
        middle = len(self.groups) // 2
        return (
            ParallelVectorView(self, range(middle)),
            ParallelVectorView(self, range(middle, len(self.groups))),
        )

    def call(self, name: str, *args: Any) -> tuple[Any, ...]:
        self._send("call", (name, args))
        local = [getattr(e, name)(*args) for e in self._local.envs] if self._local else []
        return tuple(local + [x for reply in self._gather(f"call {name}") for x in reply])

    def get_attr(self, name: str) -> tuple[Any, ...]:
        self._send("get", name)
        local = [getattr(e, name) for e in self._local.envs] if self._local else []
        return tuple(local + [x for reply in self._gather(f"get {name}") for x in reply])

    def close(self, **kwargs: Any) -> None:
        if not self.closed:
            self.closed = True
            # drop this process's views before the blocks are unmapped
            self._obs = self._finals = self._actions = None
            self._rewards = self._terminated = self._truncated = None
            self._finalizer()

    @property
    def worker_pids(self) -> dict[int, int | None]:
        """Process id of each group stepped by a worker process, by group index."""
        return {w: p.pid for w, p in self._processes.items()}

    @property
    def shared_memory_names(self) -> list[str]:
        return [name for b in self._blocks for name in b.names]


class ParallelVectorView(gym.vector.VectorEnv):
    """The environments of some of a :class:`ParallelVectorEnv`'s worker processes (a
    contiguous range), stepped and reset on their own; from :meth:`ParallelVectorEnv.halves`.
    Closing the view does nothing: its parent owns the processes."""

    metadata = ParallelVectorEnv.metadata

    def __init__(self, parent: ParallelVectorEnv, workers: range) -> None:
        self.parent, self.workers = parent, list(workers)
        first, last = parent.groups[workers.start], parent.groups[workers.stop - 1]
        self.rows = slice(first.start, last.stop)
        self.num_envs = last.stop - first.start
        self.single_observation_space = parent.single_observation_space
        self.single_action_space = parent.single_action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              self.num_envs)  # fmt: skip
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.metadata = parent.metadata
        self.render_mode = parent.render_mode
        self.spec = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset this view's environments; environment ``i`` of the parent is seeded with
        ``seed + i``, as a reset of the whole parent would seed it."""
        if options:
            raise ValueError("a ParallelVectorView's reset() takes only a seed.")
        self.parent._send("reset", seed, self.workers)
        self.parent._gather("reset", self.workers)
        return tree_map(lambda x: x[self.rows].copy(), self.parent._obs), {}

    def step(self, actions: Any):
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: Any) -> None:
        self.parent._step_async(actions, self.rows, self.workers)

    def step_wait(self):
        return self.parent._step_wait(self.rows, self.workers, False)

    def close(self, **kwargs: Any) -> None:
        pass


# Every environment's row of the shared arrays.
ALL_ROWS = slice(None)


def _shutdown(
    pipes: dict, processes: dict, blocks: list[SharedBlock], local: EnvGroup | None
) -> None:
    """Stop every worker (politely, then by force), close the inline group's
    environments and release the shared memory."""
    if local is not None:
        local.close()
    for pipe in pipes.values():
        with contextlib.suppress(BrokenPipeError, OSError):
            pipe.send(("close", None))
    for process in processes.values():
        process.join(timeout=2)
        if process.is_alive():
            process.kill()
            process.join(timeout=2)
    for pipe in pipes.values():
        pipe.close()
    for block in blocks:
        block.release()

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

Made with ``parts=2``, the environments form two halves, each spread over every worker,
stepped on their own (:meth:`ParallelVectorEnv.halves`): each worker steps its share of
one half while the policy acts for the other (rlpyt's alternating sampler).

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
        parts: contiguous ranges of environments stepped on their own (``2`` for the
            alternating sampler, with ``inline=False``; see :meth:`halves`). Every worker
            holds a share of every part, so that while the policy acts for one part all
            workers step another.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        workers: int = 2,
        inline: bool = True,
        context: str | None = None,
        parts: int = 1,
    ) -> None:
        n = len(env_fns)
        if n < 1:
            raise ValueError("ParallelVectorEnv needs at least one environment function.")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}.")
        if parts < 1 or parts > n or (parts > 1 and inline):
            raise ValueError(
                f"parts must be between 1 and the number of environments ({n}), and above 1 "
                f"only with inline=False; got parts={parts}, inline={inline}."
            )
        part_bounds = np.linspace(0, n, parts + 1).round().astype(int)
        workers = min(workers, int(np.diff(part_bounds).min()))  # a share of every part each
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
        # groups[w]: worker w's contiguous range of each part
        ends = zip(part_bounds[:-1], part_bounds[1:], strict=True)
        self.parts = [range(int(a), int(b)) for a, b in ends]
        self.groups: list[list[range]] = [[] for _ in range(workers)]
        for part in self.parts:
            bounds = np.linspace(part.start, part.stop, workers + 1).round().astype(int)
            for w in range(workers):
                self.groups[w].append(range(int(bounds[w]), int(bounds[w + 1])))
        self._pipes: dict[int, Any] = {}
        self._processes: dict[int, Any] = {}
        self._local: EnvGroup | None = None
        # Commands are numbered (tickets; 0: start-up); replies not yet gathered wait in
        # the stash, by (worker, ticket).
        self._sent, self._received = 1, dict.fromkeys(range(workers), 0)
        self._stash: dict[tuple[int, int], Any] = {}
        if inline:
            (rows,) = self.groups[0]
            self._local = EnvGroup([env_fns[i]() for i in rows], 0, arrays)
        for w in range(int(inline), workers):
            ranges = [(r.start, r.stop) for r in self.groups[w]]
            parent, child = ctx.Pipe()
            fns = cloudpickle.dumps([env_fns[i] for r in self.groups[w] for i in r])
            process = ctx.Process(
                target=run_worker,
                args=(child, fns, ranges, shared, names),
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
        self._gather("start", 0)

    # -------------------------------------------------------------- commands
    def _gather(self, what: str, ticket: int | None = None) -> list[Any]:
        """Every worker's reply to the command of this ``ticket`` (from :meth:`_send`;
        ``None``: the last one sent); WorkerError on a fault. Workers answer in order, so
        replies to earlier commands still unread are kept for their own gather."""
        ticket = self._sent - 1 if ticket is None else ticket
        sentinels = {p.sentinel: w for w, p in self._processes.items()}
        while pending := {w: p for w, p in self._pipes.items() if (w, ticket) not in self._stash}:
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
                self._stash[w, self._received[w]] = data
                self._received[w] += 1
        return [self._stash.pop((w, ticket)) for w in sorted(self._pipes)]

    def _died(self, w: int, what: str) -> None:
        process = self._processes[w]
        process.join(timeout=1)
        code = process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
        self._fail(f"worker {w} ({self._describe(w)}) died during {what} ({how})")

    def _describe(self, w: int) -> str:
        spans = ", ".join(str(r.start) if len(r) == 1 else f"{r.start}-{r.stop - 1}"
                          for r in self.groups[w] if r)  # fmt: skip
        return f"environments {spans}"

    def _fail(self, message: str) -> None:
        self.close()
        raise WorkerError(message)

    def _check_open(self) -> None:
        if self.closed:
            raise WorkerError(
                "this ParallelVectorEnv is closed (after close() or a worker fault); "
                "create a new Agent to sample again."
            )

    def _send(self, command: str, data: Any = None) -> int:
        """Send a command to every worker; its ticket for :meth:`_gather`."""
        self._check_open()
        ticket, self._sent = self._sent, self._sent + 1
        for w in self._pipes:
            try:
                self._pipes[w].send((command, data))
            except (BrokenPipeError, OSError):
                self._died(w, command)
        return ticket

    # ----------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if options:
            raise ValueError(
                "ParallelVectorEnv resets environments itself when their episodes end; "
                "reset() takes only a seed."
            )
        self._send("reset", (seed, None))
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
        self._step_ticket = self._step_async(actions, ALL_ROWS, None)

    def step_wait(self):
        """The result of the step :meth:`step_async` started, as ``step`` returns it."""
        return self._step_wait(ALL_ROWS, self._step_ticket, self._local is not None)

    def _step_async(self, actions: Any, rows: slice, part: int | None) -> int:
        self._check_open()
        if isinstance(self._actions, np.ndarray):
            target = self._actions[rows]
            target[...] = np.asarray(actions).reshape(target.shape)
        else:
            tree_map(lambda dst, src: dst.__setitem__(rows, src), self._actions, actions)
        return self._send("step", part)

    def _step_wait(self, rows: slice, ticket: int, local: bool):
        ended = self._run_local(EnvGroup.step, "step") if local else []
        ended += [i for reply in self._gather("step", ticket) for i in reply]
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
        """The two parts of a ``ParallelVectorEnv`` made with ``parts=2`` as vector
        environments that step independently: every worker steps its share of one half
        while the policy acts for the other (the alternating sampler,
        :class:`rlx.core.collect.Alternating`)."""
        if len(self.parts) != 2:
            raise ValueError(
                "halves() needs a ParallelVectorEnv made with parts=2 (and inline=False)."
            )
        return ParallelVectorView(self, 0), ParallelVectorView(self, 1)

    def call(self, name: str, *args: Any) -> tuple[Any, ...]:
        self._send("call", (name, args))
        local = [getattr(e, name)(*args) for e in self._local.envs] if self._local else []
        return self._by_row(local, self._gather(f"call {name}"))

    def get_attr(self, name: str) -> tuple[Any, ...]:
        self._send("get", name)
        local = [getattr(e, name) for e in self._local.envs] if self._local else []
        return self._by_row(local, self._gather(f"get {name}"))

    def _by_row(self, local: list[Any], replies: list[list[Any]]) -> tuple[Any, ...]:
        """Per-environment values (the inline group's, then each worker's in its order)
        in the order of the environments."""
        values = local + [x for reply in replies for x in reply]
        first = int(self._local is not None)
        rows = [*range(len(local)), *(i for g in self.groups[first:] for r in g for i in r)]
        out: list[Any] = [None] * self.num_envs
        for row, value in zip(rows, values, strict=True):
            out[row] = value
        return tuple(out)

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
    """One part of a :class:`ParallelVectorEnv` (a contiguous range of its environments,
    spread over its workers), stepped and reset on its own; from
    :meth:`ParallelVectorEnv.halves`. Closing the view does nothing: its parent owns the
    processes."""

    metadata = ParallelVectorEnv.metadata

    def __init__(self, parent: ParallelVectorEnv, part: int) -> None:
        self.parent, self.part = parent, part
        rows = parent.parts[part]
        self.rows = slice(rows.start, rows.stop)
        self.num_envs = len(rows)
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
        self.parent._send("reset", (seed, self.part))
        self.parent._gather("reset")
        return tree_map(lambda x: x[self.rows].copy(), self.parent._obs), {}

    def step(self, actions: Any):
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: Any) -> None:
        self._ticket = self.parent._step_async(actions, self.rows, self.part)

    def step_wait(self):
        return self.parent._step_wait(self.rows, self._ticket, False)

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

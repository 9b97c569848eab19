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
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import traceback
import weakref
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np

from rlx.core.tree import tree_map

STEP_TIMEOUT = 60.0  # seconds a worker may take for one step before it counts as hung


class WorkerError(RuntimeError):
    """An environment raised, or a worker process died, during parallel sampling."""


# ------------------------------------------------------------------ shared arrays
def _leaf_specs(space: gym.Space, n: int) -> Any:
    """A tree of ``(shape, dtype)`` for ``n`` stacked values of ``space``."""
    sample = gym.vector.utils.batch_space(space, n).sample()
    return tree_map(lambda x: (np.asarray(x).shape, np.asarray(x).dtype), _as_tree(sample))


def _as_tree(value: Any) -> Any:
    """gymnasium's Dict samples are dicts already; make Tuple samples tuples."""
    if isinstance(value, dict):
        return {k: _as_tree(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_as_tree(v) for v in value)
    return np.asarray(value)


class _Block:
    """One shared-memory block per leaf, with numpy views on it."""

    def __init__(self, specs: Any, names: Any = None) -> None:
        self.owner = names is None
        leaves = _spec_leaves(specs)
        if names is None:
            self.blocks = [
                SharedMemory(create=True, size=max(1, int(np.prod(s)) * d.itemsize))
                for s, d in leaves
            ]
        else:
            self.blocks = [_attach(name) for name in names]
        views = iter(
            np.ndarray(s, dtype=d, buffer=b.buf)
            for (s, d), b in zip(leaves, self.blocks, strict=True)
        )
        self.arrays = _rebuild(specs, views)

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.blocks]

    def release(self) -> None:
        self.arrays = None
        for block in self.blocks:
            with contextlib.suppress(BufferError):  # a view still open: unmapped at exit
                block.close()
            if self.owner:
                with contextlib.suppress(FileNotFoundError):
                    block.unlink()
        self.blocks = []


def _attach(name: str) -> SharedMemory:
    """Open a block the main process owns. Workers share the main process's resource
    tracker, so the block stays registered once, and the main process unlinks it."""
    try:
        return SharedMemory(name=name, track=False)
    except TypeError:  # Python < 3.13: attaching registers again (a set: no duplicate)
        return SharedMemory(name=name)


def _is_spec(x: Any) -> bool:
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], np.dtype)


def _spec_leaves(specs: Any) -> list[tuple[tuple[int, ...], np.dtype]]:
    if _is_spec(specs):
        return [specs]
    children = specs.values() if isinstance(specs, dict) else specs
    return [leaf for child in children for leaf in _spec_leaves(child)]


def _rebuild(specs: Any, views: Any) -> Any:
    if _is_spec(specs):
        return next(views)
    if isinstance(specs, dict):
        return {k: _rebuild(v, views) for k, v in specs.items()}
    return tuple(_rebuild(v, views) for v in specs)


def _put(tree: Any, i: int, value: Any) -> None:
    """Write one environment's value into row ``i`` of a shared tree."""
    if isinstance(tree, np.ndarray):
        tree[i] = value
    elif isinstance(tree, dict):
        for k, sub in tree.items():
            _put(sub, i, value[k])
    else:
        for sub, v in zip(tree, value, strict=True):
            _put(sub, i, v)


def _row(tree: Any, i: int) -> Any:
    if isinstance(tree, np.ndarray):
        return tree[i]
    if isinstance(tree, dict):
        return {k: _row(v, i) for k, v in tree.items()}
    return tuple(_row(v, i) for v in tree)


def _copy(tree: Any) -> Any:
    return tree_map(np.array, tree)


# ------------------------------------------------------------------------ worker
def _work(
    pipe: Any,
    env_fns: bytes,
    first: int,
    specs: tuple[Any, Any, Any],
    names: tuple[list[str], list[str], list[str], list[str]],
) -> None:
    """A worker's loop: step, reset or close its group of environments on command."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    obs_specs, act_specs, step_specs = specs
    obs = _Block(obs_specs, names[0])
    finals = _Block(obs_specs, names[1])
    actions = _Block(act_specs, names[2])
    result = _Block(step_specs, names[3])
    rewards, terminated, truncated = result.arrays
    envs: list[gym.Env] = []
    try:
        envs = [fn() for fn in cloudpickle.loads(env_fns)]
        pipe.send(("ready", None))
        while True:
            command, data = pipe.recv()
            if command == "step":
                ended = []
                for k, env in enumerate(envs):
                    i = first + k
                    try:
                        o, r, term, trunc, _ = env.step(_row(actions.arrays, i))
                        if term or trunc:
                            _put(finals.arrays, i, o)
                            o, _ = env.reset()
                            ended.append(i)
                    except Exception:
                        pipe.send(("error", (i, traceback.format_exc())))
                        return
                    _put(obs.arrays, i, o)
                    rewards[i], terminated[i], truncated[i] = r, term, trunc
                pipe.send(("ok", ended))
            elif command == "reset":
                for k, env in enumerate(envs):
                    i = first + k
                    try:
                        seed = None if data is None else data + i
                        o, _ = env.reset(seed=seed)
                    except Exception:
                        pipe.send(("error", (i, traceback.format_exc())))
                        return
                    _put(obs.arrays, i, o)
                pipe.send(("ok", None))
            elif command == "call":
                name, args = data
                pipe.send(("ok", [getattr(env, name)(*args) for env in envs]))
            elif command == "get":
                pipe.send(("ok", [getattr(env, data) for env in envs]))
            else:  # "close"
                break
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    except Exception:
        with contextlib.suppress(BrokenPipeError, OSError):
            pipe.send(("error", (first, traceback.format_exc())))
    finally:
        for env in envs:
            with contextlib.suppress(Exception):
                env.close()
        for block in (obs, finals, actions, result):
            block.release()
        pipe.close()


# ------------------------------------------------------------------ the vector env
class ParallelVectorEnv(gym.vector.VectorEnv):
    """``B`` environments in ``workers`` processes; see the module docstring.

    Args:
        env_fns: one function per environment, each returning a new ``gymnasium.Env``.
        workers: number of worker processes (at most ``len(env_fns)``); environments are
            split into contiguous groups of (nearly) equal size.
        context: multiprocessing start method (``None``: the platform's default).
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        workers: int = 2,
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

        obs_specs = _leaf_specs(self.single_observation_space, n)
        act_specs = _leaf_specs(self.single_action_space, n)
        step_specs = (((n,), np.dtype(np.float64)), ((n,), np.dtype(bool)), ((n,), np.dtype(bool)))
        self._blocks = [
            _Block(obs_specs), _Block(obs_specs), _Block(act_specs), _Block(step_specs),
        ]  # fmt: skip
        self._obs, self._finals, self._actions, result = (b.arrays for b in self._blocks)
        self._rewards, self._terminated, self._truncated = result
        names = tuple(b.names for b in self._blocks)

        ctx = mp.get_context(context)
        bounds = np.linspace(0, n, workers + 1).round().astype(int)
        self.groups = [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self._pipes, self._processes = [], []
        for group in self.groups:
            parent, child = ctx.Pipe()
            fns = cloudpickle.dumps([env_fns[i] for i in group])
            process = ctx.Process(
                target=_work,
                args=(child, fns, group.start, (obs_specs, act_specs, step_specs), names),
                daemon=True,
                name=f"rlx-env-worker-{len(self._processes)}",
            )
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)
        self._finalizer = weakref.finalize(
            self, _shutdown, self._pipes, self._processes, self._blocks
        )
        self._gather("start")

    # -------------------------------------------------------------- commands
    def _gather(self, what: str) -> list[Any]:
        """Every worker's reply to the last command; WorkerError on a fault."""
        replies: dict[int, Any] = {}
        pending = dict(enumerate(self._pipes))
        sentinels = {p.sentinel: w for w, p in enumerate(self._processes)}
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
        return [replies[w] for w in range(len(self._pipes))]

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

    def _send(self, command: str, data: Any = None) -> None:
        self._check_open()
        for w, pipe in enumerate(self._pipes):
            try:
                pipe.send((command, data))
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
        self._gather("reset")
        return _copy(self._obs), {}

    def step(self, actions: Any):
        self._check_open()
        self._write_actions(actions)
        self._send("step")
        ended = [i for reply in self._gather("step") for i in reply]
        info: dict[str, Any] = {}
        if ended:
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[ended] = True
            final = np.empty(self.num_envs, dtype=object)
            for i in ended:
                final[i] = _copy(_row(self._finals, i))
            info = {"final_obs": final, "_final_obs": mask}
        return (
            _copy(self._obs),
            self._rewards.copy(),
            self._terminated.copy(),
            self._truncated.copy(),
            info,
        )

    def _write_actions(self, actions: Any) -> None:
        if isinstance(self._actions, np.ndarray):
            self._actions[...] = np.asarray(actions).reshape(self._actions.shape)
            return
        actions = _as_tree(actions)
        tree_map(lambda dst, src: dst.__setitem__(..., src), self._actions, actions)

    def call(self, name: str, *args: Any) -> tuple[Any, ...]:
        self._send("call", (name, args))
        return tuple(x for reply in self._gather(f"call {name}") for x in reply)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        self._send("get", name)
        return tuple(x for reply in self._gather(f"get {name}") for x in reply)

    def close(self, **kwargs: Any) -> None:
        if not self.closed:
            self.closed = True
            # drop this process's views before the blocks are unmapped
            self._obs = self._finals = self._actions = None
            self._rewards = self._terminated = self._truncated = None
            self._finalizer()

    @property
    def worker_pids(self) -> list[int | None]:
        return [p.pid for p in self._processes]

    @property
    def shared_memory_names(self) -> list[str]:
        return [name for b in self._blocks for name in b.names]


def _shutdown(pipes: list, processes: list, blocks: list[_Block]) -> None:
    """Stop every worker (politely, then by force) and release the shared memory."""
    for pipe in pipes:
        with contextlib.suppress(BrokenPipeError, OSError):
            pipe.send(("close", None))
    for process in processes:
        process.join(timeout=2)
        if process.is_alive():
            process.kill()
            process.join(timeout=2)
    for pipe in pipes:
        pipe.close()
    for block in blocks:
        block.release()

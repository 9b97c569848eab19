"""The worker side of :class:`~rlx.envs.parallel.ParallelVectorEnv`.

:class:`EnvGroup` is a contiguous group of environments stepped against the shared
arrays (:mod:`rlx.envs.shared_arrays`), in a worker process or inline in the main
process; :func:`run_worker` is the loop each worker process runs, answering the main
process's commands over a pipe.
"""

from __future__ import annotations

import contextlib
import signal
import traceback
from typing import Any

import cloudpickle
import gymnasium as gym

from rlx.envs.shared_arrays import SharedBlock, read_row, write_row


class EnvFault(Exception):
    """An environment of a group raised: its index and the formatted traceback."""

    def __init__(self, index: int, trace: str) -> None:
        super().__init__(index, trace)
        self.index, self.trace = index, trace


class EnvGroup:
    """A contiguous group of environments stepped against the shared arrays."""

    def __init__(self, envs: list[gym.Env], first: int, arrays: tuple[Any, ...]) -> None:
        self.envs, self.first = envs, first
        self.obs, self.finals, self.actions, (self.rewards, self.terms, self.truncs) = arrays

    def step(self) -> list[int]:
        """Step every environment; the indices whose episode ended (reset at once)."""
        ended = []
        for i, env in enumerate(self.envs, self.first):
            try:
                o, r, term, trunc, _ = env.step(read_row(self.actions, i))
                if term or trunc:
                    write_row(self.finals, i, o)
                    o, _ = env.reset()
                    ended.append(i)
            except Exception:
                raise EnvFault(i, traceback.format_exc()) from None
            write_row(self.obs, i, o)
            self.rewards[i], self.terms[i], self.truncs[i] = r, term, trunc
        return ended

    def reset(self, seed: int | None) -> None:
        for i, env in enumerate(self.envs, self.first):
            try:
                o, _ = env.reset(seed=None if seed is None else seed + i)
            except Exception:
                raise EnvFault(i, traceback.format_exc()) from None
            write_row(self.obs, i, o)

    def close(self) -> None:
        for env in self.envs:
            with contextlib.suppress(Exception):
                env.close()


def run_worker(
    pipe: Any,
    env_fns: bytes,
    ranges: list[tuple[int, int]],
    specs: tuple[Any, Any, Any, Any],
    names: tuple[list[str], list[str], list[str], list[str]],
) -> None:
    """A worker's loop: step, reset or close its environments on command. It holds one
    contiguous range of environments (``ranges``) per part of the vector environment;
    ``step`` and ``reset`` name a part, or ``None`` for all."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    blocks = [SharedBlock(spec, n) for spec, n in zip(specs, names, strict=True)]
    groups: list[EnvGroup] = []
    envs: list[gym.Env] = []
    first = ranges[0][0]
    try:
        envs = [fn() for fn in cloudpickle.loads(env_fns)]
        arrays = tuple(b.arrays for b in blocks)
        taken = 0
        for start, stop in ranges:
            groups.append(EnvGroup(envs[taken : taken + stop - start], start, arrays))
            taken += stop - start
        pipe.send(("ready", None))
        while True:
            command, data = pipe.recv()
            if command == "step":
                chosen = groups if data is None else [groups[data]]
                pipe.send(("ok", [i for group in chosen for i in group.step()]))
            elif command == "reset":
                seed, part = data
                for group in groups if part is None else [groups[part]]:
                    group.reset(seed)
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
    except Exception as err:  # an environment's fault, or one in making the environments
        fault = err if isinstance(err, EnvFault) else EnvFault(first, traceback.format_exc())
        with contextlib.suppress(BrokenPipeError, OSError):
            pipe.send(("error", (fault.index, fault.trace)))
    finally:
        for env in envs:
            with contextlib.suppress(Exception):
                env.close()
        for block in blocks:
            block.release()
        pipe.close()

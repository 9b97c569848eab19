"""The training loop: iterations, online and offline returns, logging, checkpoints, resume.

``Runner(RunConfig(...), PPOConfig(...)).train()`` builds the agent, a ready policy and the
algorithm, then alternates ``algorithm.iteration()`` (sample and update) with bookkeeping
until a step, episode, iteration or return target is reached. A run directory holds
``config.json``, ``progress.csv``, ``log.txt``, ``tb/``, ``checkpoints/`` and ``curves.png``.

``Runner.resume(run_dir)`` rebuilds the run from ``config.json`` and its newest usable
checkpoint (policy, optimizer, algorithm state, RNG states, the agent's sampling position
and, where possible, the environments). On CPU with a fixed seed the resumed run's later
rows of ``progress.csv`` equal an uninterrupted run's, wall-clock columns aside.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import statistics
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlx.algos.base import Algorithm
from rlx.algos.config import AlgorithmConfig
from rlx.algos.registry import algorithm_class
from rlx.core import distributed
from rlx.core.agent import Agent
from rlx.core.parametric import Parametric
from rlx.envs.vector import unknown_id_error
from rlx.runner import checkpoint
from rlx.runner.config import RESUMABLE, RunConfig, from_dict, read_config, to_dict
from rlx.runner.logger import RunLogger, setup_file_log

log = logging.getLogger("rlx")


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_run_dir(run: RunConfig) -> Path:
    return Path("runs") / f"{run.algo}-{run.env}-s{run.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def episode_horizon(env_id: str) -> int:
    return gym.spec(env_id).max_episode_steps or 10_000


def build_policy(run: RunConfig, agent: Agent, algo_config: AlgorithmConfig) -> Parametric:
    """The ready policy a run's options describe, for the agent's spaces."""
    previous = {}  # the algorithm's default unless the run says
    if run.previous_action_reward is not None:
        previous["previous_action_reward"] = run.previous_action_reward
    return algorithm_class(run.algo).default_policy(
        agent.observation_space, agent.action_space, algo_config,
        kind=run.policy, hidden=run.hidden, squash=run.squash, **previous,
    )  # fmt: skip


def check(run: RunConfig, algo_config: AlgorithmConfig | None = None) -> AlgorithmConfig:
    """Raise ValueError (TypeError) naming the first problem of a run's options, before
    anything is built; returns the algorithm's config (its defaults when None)."""
    run.validate()
    cls = algorithm_class(run.algo)
    try:
        gym.spec(run.env)
    except gym.error.Error as err:
        raise unknown_id_error(run.env, err) from None
    config = algo_config if algo_config is not None else cls.Config()
    if not isinstance(config, cls.Config):
        raise TypeError(f"{run.algo} takes a {cls.Config.__name__}, got {type(config).__name__}.")
    if run.sampler == "async" and (config.episodes or cls.name == "offpac"):
        raise ValueError(
            f"--sampler async samples fixed-length segments; {run.algo} samples whole "
            "episodes. Use it with a2c, ppo or a replay-based algorithm."
        )
    if run.sampler == "async" and callable(config.steps):
        raise ValueError(
            "--sampler async samples segments of one length from its own process: give "
            f"--steps a number, not a schedule ({config.steps!r})."
        )
    if run.nproc > 1:
        if not cls.data_parallel:
            raise ValueError(
                f"--nproc: {run.algo} takes no gradient steps to average; run it with --nproc 1."
            )
        if run.sampler == "async":
            raise ValueError(
                "--nproc and --sampler async do not go together: use the serial, parallel "
                "or alternating sampler in each process."
            )
        cuda = torch.device(run.device).type == "cuda"
        cores = getattr(os, "sched_getaffinity", None)  # Linux: the cores this process may use
        limit = torch.cuda.device_count() if cuda else len(cores(0)) if cores else os.cpu_count()
        if run.nproc > limit and not run.force:
            what = "CUDA devices" if cuda else "CPU cores"
            raise ValueError(
                f"--nproc {run.nproc} is more than this machine's {limit} {what}; use "
                f"--nproc {limit} or less (or --force to start them anyway)."
            )
    return config


def join_process_group(run: RunConfig) -> tuple[int, int]:
    """(rank, world size) of this process: a data-parallel run's process joins its
    process group (started by ``rlx train --nproc`` or torchrun: ``WORLD_SIZE`` is set)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        if run.nproc > 1:
            raise ValueError(
                f"nproc={run.nproc}: start a data-parallel run with `rlx train ... --nproc "
                f"{run.nproc}` or torchrun, which start its processes."
            )
        return 0, 1
    if run.nproc not in (1, world):
        raise ValueError(f"--nproc {run.nproc} but this run has {world} processes (WORLD_SIZE).")
    run.nproc = world
    if run.device == "cuda":
        run.device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}"
    return distributed.init(run.device)


class Runner:
    """Trains one algorithm on one environment as configured; see the module docstring.

    In a data-parallel run (``--nproc N``, or torchrun) each process has a Runner: all
    build the same model (rank 0's, broadcast), sample their own environments (seeded
    ``seed + rank * num_envs`` onwards) and average gradients at every step; their
    steps and finished episodes are pooled after every iteration, so every process
    stops at the same iteration. Rank 0 alone writes the run directory's logs and
    evaluates; each process saves its own checkpoints (rank r > 0 in
    ``checkpoints-rank<r>``) and restores them on resume."""

    def __init__(self, run: RunConfig, algo_config: AlgorithmConfig | None = None) -> None:
        self.algo_config = check(run, algo_config)
        cls = algorithm_class(run.algo)
        self.run = run
        self.run_dir = Path(run.run_dir) if run.run_dir else default_run_dir(run)
        self.rank, self.world = join_process_group(run)
        if self.world > 1:  # every process writes where rank 0 does
            self.run_dir = Path(distributed.broadcast_object(str(self.run_dir)))
        seed_everything(run.seed)
        torch.set_num_threads(run.torch_threads)
        in_process = "serial" if run.sampler == "async" else run.sampler
        seed = run.seed + self.rank * self.algo_config.num_envs
        make_agent = partial(Agent, run.env, num_envs=self.algo_config.num_envs, seed=seed)
        self.agent = make_agent(sampler=in_process, workers=run.workers)
        self.policy = build_policy(run, self.agent, self.algo_config).to(run.device)
        self.algorithm: Algorithm = cls(self.agent, self.policy, self.algo_config)
        if self.world > 1:  # one model: rank 0's weights (and targets, critics...) everywhere
            state = distributed.broadcast_object(
                self.algorithm.state_dict() if self.rank == 0 else None
            )
            if self.rank > 0:
                self.algorithm.load_state_dict(state)
                seed_everything(run.seed + self.rank)
        if run.sampler == "async":
            from rlx.algos.offpolicy import OffPolicyAlgorithm
            from rlx.sampling import AsyncSampler, ReplaySampler

            if isinstance(self.algorithm, OffPolicyAlgorithm):  # acting into a shared replay
                self.algorithm.sampler = ReplaySampler(make_agent, self.algorithm, seed=run.seed)
            else:
                self.algorithm.sampler = AsyncSampler(
                    make_agent, self.policy, self.algo_config.steps, seed=run.seed
                )
        self.algorithm.seed(run.seed + self.rank)
        self.algorithm.checkpoint_replay = run.checkpoint_replay
        self.total_steps = 0  # environment steps of every process
        self.iteration = 0
        self.episodes = 0
        self.elapsed = 0.0
        self.next_eval = run.eval_every if run.eval_every else math.inf
        self.last_eval: float | None = None
        self.window: deque[tuple[float, int]] = deque(maxlen=run.window)
        self._resumed: dict[str, Any] | None = None

    @classmethod
    def resume(cls, run_dir: str | Path, **overrides: Any) -> Runner:
        """A runner that continues the run in ``run_dir`` from its newest usable checkpoint;
        ``overrides`` may change run options such as ``total_steps`` (to extend a run)."""
        run_dir = Path(run_dir)
        saved = read_config(run_dir)
        fixed = {k for k, v in overrides.items() if k not in RESUMABLE and saved["run"].get(k) != v}
        if fixed:
            names = ", ".join(f"--{k.replace('_', '-')}" for k in sorted(fixed))
            raise ValueError(
                f"{names} cannot change on --resume: a resumed run keeps its algorithm, "
                "policy, seed and environment; only how long it runs and what it records "
                "may change (e.g. --total-steps, --eval-every, --log-level)."
            )
        run = from_dict(RunConfig, {**saved["run"], **overrides, "run_dir": str(run_dir)})
        runner = cls(run, from_dict(algorithm_class(run.algo).Config, saved["algo"]))
        folder = runner.checkpoint_dir
        if runner.world == 1:
            state = checkpoint.load_latest(folder, map_location=run.device)
        else:  # the newest iteration every process has saved
            mine = {checkpoint.iteration_of(p) for p in checkpoint.checkpoint_files(folder)}
            have = distributed.all_gather(mine)
            common = set.intersection(*have)
            if not common:
                raise checkpoint.CheckpointError(
                    f"no checkpoint iteration is saved by every process of {run_dir}."
                )
            path = checkpoint.path_of(folder, max(common))
            state = {**checkpoint.read(path, run.device), "path": str(path)}
        runner._restore(state)
        return runner

    @property
    def checkpoint_dir(self) -> Path:
        """Where this process saves its checkpoints."""
        name = "checkpoints" if self.rank == 0 else f"checkpoints-rank{self.rank}"
        return self.run_dir / name

    def _state(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm.state_dict(),
            "agent": self.agent.state_dict(self.policy),
            "rng": checkpoint.rng_state(),
            "counters": {
                "iteration": self.iteration,
                "episodes": self.episodes,
                "elapsed": self.elapsed,
                "next_eval": self.next_eval if math.isfinite(self.next_eval) else -1,
                "last_eval": self.last_eval,
                "rows": self.iteration,
                "steps": self.total_steps,
            },
            "window": [list(w) for w in self.window],
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.algorithm.load_state_dict(state["algorithm"])
        exact = self.agent.load_state_dict(state["agent"], self.policy)
        if self.algorithm.sampler is not None:
            log.warning("an asynchronous run resumes its sampling with new episodes.")
        elif not exact:
            log.warning("the environments' state could not be restored: new episodes start.")
        checkpoint.set_rng_state(state["rng"])
        c = state["counters"]
        self.iteration, self.episodes, self.elapsed = c["iteration"], c["episodes"], c["elapsed"]
        self.total_steps = c.get("steps", self.agent.total_steps)
        self.next_eval = c["next_eval"] if c["next_eval"] >= 0 else math.inf
        self.last_eval = c["last_eval"]
        self.window.extend((float(r), int(n)) for r, n in state["window"])
        self._resumed = state

    def evaluate(self, episodes: int | None = None) -> float:
        """Average return of deterministic episodes on fresh evaluation environments."""
        seed = self.run.seed + 1_000_003 * (1 + self.iteration)
        agent = Agent(self.run.env, num_envs=episodes or self.run.eval_episodes, seed=seed)
        with torch.no_grad():
            rollout = agent(self.policy).episode(episode_horizon(self.run.env), deterministic=True)
        agent.close()
        return rollout.rewards.double().sum(0).mean().item()

    def _done(self) -> bool:
        run = self.run
        if self.total_steps >= run.total_steps:
            return True
        if run.total_episodes is not None and self.episodes >= run.total_episodes:
            return True
        if run.total_iterations is not None and self.iteration >= run.total_iterations:
            return True
        if run.target_return is not None and len(self.window) >= min(run.window, 10):
            return statistics.fmean(r for r, _ in self.window) >= run.target_return
        return False

    def _row(self, info: dict[str, float], steps: int, seconds: float) -> dict[str, Any]:
        returns = [r for r, _ in self.window]
        lengths = [n for _, n in self.window]
        return {
            "Iteration": self.iteration,
            "CumSteps": self.total_steps,
            "CumTime": self.elapsed,
            "StepsPerSecond": steps / seconds if seconds > 0 else math.nan,
            "ReturnAverage": statistics.fmean(returns) if returns else math.nan,
            "ReturnStd": statistics.pstdev(returns) if returns else math.nan,
            "ReturnMedian": statistics.median(returns) if returns else math.nan,
            "ReturnMin": min(returns) if returns else math.nan,
            "ReturnMax": max(returns) if returns else math.nan,
            "LengthAverage": statistics.fmean(lengths) if lengths else math.nan,
            "EvalReturnAverage": self.last_eval if self.last_eval is not None else math.nan,
            **info,
        }

    def train(
        self, callbacks: list[Callable[[Runner, dict[str, Any]], None]] = ()
    ) -> dict[str, Any]:
        """Run until done and return the last row of progress.csv; each of ``callbacks`` is
        called as ``callback(runner, row)`` after every iteration (in every process of a
        data-parallel run; ``runner.rank`` tells them apart)."""
        run = self.run
        writes = self.rank == 0  # the run directory's logs are rank 0's
        config = {"run": to_dict(run), "algo": to_dict(self.algo_config)}
        resumed = self._resumed is not None
        handler = logger = None
        if writes:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(config, indent=2))
            handler = setup_file_log(self.run_dir, run.log_level)
            logger = RunLogger(
                self.run_dir,
                run,
                config,
                keep_rows=self.iteration if resumed else 0,
                start_steps=self.total_steps,
                purge_step=self.total_steps + 1 if resumed else None,
            )
            log.info("training %s on %s; run directory %s", run.algo, run.env, self.run_dir)
            if self.world > 1:
                log.info("data-parallel: %d processes", self.world)
            if resumed:
                log.info("resumed from %s at iteration %d", self._resumed["path"], self.iteration)
        row: dict[str, Any] = {}
        if resumed and self._done() and writes:
            log.warning(
                "the run is already complete (%d steps, %d episodes); pass a larger "
                "--total-steps (or --total-episodes) to go on.",
                self.total_steps,
                self.episodes,
            )
        try:
            while not self._done():
                start, steps_before = time.perf_counter(), self.agent.total_steps
                self.algorithm.progress = self.total_steps / run.total_steps
                self.algorithm.step_offset = self.total_steps - steps_before
                info = self.algorithm.iteration()
                self.iteration += 1
                steps = self.agent.total_steps - steps_before
                finished = self.agent.pop_episodes()
                if self.world > 1:  # every process's steps and episodes
                    shares = distributed.all_gather((steps, finished))
                    steps = sum(n for n, _ in shares)
                    finished = [episode for _, done in shares for episode in done]
                self.total_steps += steps
                self.episodes += len(finished)
                self.window.extend(finished)
                if self.total_steps >= self.next_eval:
                    if writes:
                        self.last_eval = self.evaluate()
                    while self.next_eval <= self.total_steps:
                        self.next_eval += run.eval_every
                seconds = time.perf_counter() - start
                self.elapsed += seconds
                row = self._row(info, steps, seconds)
                if logger is not None:
                    logger.log(row)
                for callback in callbacks:
                    callback(self, row)
                if self.iteration % run.checkpoint_every == 0:
                    self.save()
            self.save()
        finally:
            if logger is not None:
                logger.close()
            if handler is not None:
                log.removeHandler(handler)
                handler.close()
        if run.plot and writes:
            from rlx.runner.plot import plot_runs

            try:
                plot_runs([self.run_dir], self.run_dir / "curves.png")
            except ValueError as err:  # e.g. no episode has finished yet
                log.warning("no curves.png: %s", err)
        return row

    def close(self) -> None:
        """Close the environments and stop any sampling processes."""
        if self.algorithm.sampler is not None:
            self.algorithm.sampler.close()
        self.agent.close()

    def save(self) -> Path:
        """Write a checkpoint of everything the run needs to continue."""
        return checkpoint.save(
            self.checkpoint_dir, self.iteration, self._state(), self.run.keep_checkpoints
        )

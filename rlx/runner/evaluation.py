"""Running a trained policy from a checkpoint: ``rlx eval``."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import torch

from rlx.algos.registry import algorithm_class
from rlx.core.agent import Agent
from rlx.runner import checkpoint
from rlx.runner.config import RunConfig, from_dict, read_config
from rlx.runner.runner import build_policy, episode_horizon


def locate(path: str | Path) -> tuple[Path, dict]:
    """(run directory, checkpoint state) for a checkpoint file or a run directory."""
    path = Path(path)
    if path.is_dir():
        return path, checkpoint.load_latest(path / "checkpoints")
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: give a checkpoint file or a run directory."
        )
    return path.parent.parent, checkpoint.read(path)


def evaluate_checkpoint(
    path: str | Path,
    episodes: int,
    seed: int = 12345,
    video_dir: str | Path | None = None,
    deterministic: bool = True,
) -> list[float]:
    """Returns of ``episodes`` episodes of the checkpoint's policy (recorded if ``video_dir``)."""
    run_dir, state = locate(path)
    saved = read_config(run_dir)
    run = from_dict(RunConfig, saved["run"])
    algo_config = from_dict(algorithm_class(run.algo).Config, saved["algo"])
    horizon = episode_horizon(run.env)
    if video_dir is not None:
        try:
            import moviepy  # noqa: F401
        except ImportError:
            raise ValueError("--video needs moviepy: pip install 'rlx[video]'.") from None
        env = gym.wrappers.RecordVideo(
            gym.make(run.env, render_mode="rgb_array"), str(video_dir),
            # Each rlx episode is followed by an autoreset that opens an empty episode
            # (odd numbers); record only the real ones.
            episode_trigger=lambda k: k % 2 == 0, disable_logger=True,
        )  # fmt: skip
        agent = Agent(env, seed=seed)
    else:
        agent = Agent(run.env, num_envs=episodes, seed=seed)
    policy = build_policy(run, agent, algo_config)
    policy.load_state_dict(state["algorithm"]["policy"])
    returns: list[float] = []
    try:
        with torch.no_grad():
            while len(returns) < episodes:
                rollout = agent(policy).episode(horizon, deterministic=deterministic)
                returns += rollout.rewards.sum(0).tolist()
    except gym.error.DependencyNotInstalled as err:
        raise ValueError(f"recording video needs the environment's renderer: {err}") from None
    finally:
        agent.close()
    return returns[:episodes]

"""Training runs: the loop, logging, checkpoints and resume, evaluation, plots."""

from rlx.runner.config import RunConfig
from rlx.runner.runner import Runner, seed_everything

__all__ = ["RunConfig", "Runner", "seed_everything"]

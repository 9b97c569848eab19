import sys
from pathlib import Path

import pytest
import torch

import rlx.fast

sys.path.insert(0, str(Path(__file__).parent))
from helpers import cpu_capability  # noqa: E402


@pytest.fixture(autouse=True)
def _deterministic():
    """Every test starts from the same torch seed and one thread."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


def describe() -> str:
    fast = "on" if rlx.fast.enabled() else "off (RLX_FAST=0)"
    return f"torch {torch.__version__}, CPU kernel path {cpu_capability()}, rlx fast paths {fast}"


def pytest_report_header(config):
    return describe()


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(describe())

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _deterministic():
    """Every test starts from the same torch seed and one thread."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


def cpu_capability() -> str:
    """The kernel path torch's CPU operators take here (``ATEN_CPU_CAPABILITY`` chooses
    another): learning runs round differently on each, so a failure must name it."""
    chosen = os.environ.get("ATEN_CPU_CAPABILITY")
    path = torch.backends.cpu.get_cpu_capability()
    return f"{path} (ATEN_CPU_CAPABILITY={chosen})" if chosen else f"{path} (the processor's own)"


def pytest_report_header(config):
    return f"torch {torch.__version__}, CPU kernel path {cpu_capability()}"


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"torch {torch.__version__}, CPU kernel path {cpu_capability()}")

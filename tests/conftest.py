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

import pytest

import rlx


@pytest.fixture(autouse=True)
def _fast_paths_on():
    """These tests pin the fast paths against the plain ones: they run with the fast
    paths on even where the rest of the suite runs with RLX_FAST=0."""
    with rlx.fast_paths(True):
        yield

"""Target networks: hard and Polyak updates, buffers copied, replaced layers followed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlx.algos.target import TargetNetwork


def test_target_network_hard_and_polyak_updates():
    source = nn.Linear(3, 2)
    target = TargetNetwork(source)
    assert not any(p.requires_grad for p in target.parameters())
    pairs = zip(target.parameters(), source.parameters(), strict=True)
    assert all(a is not b for a, b in pairs)  # a copy, and the source is not registered
    x = torch.randn(5, 3)
    torch.testing.assert_close(target(x), source(x))
    before = target.target.weight.clone()
    with torch.no_grad():
        source.weight.add_(1.0)
    target.update(tau=0.25)
    torch.testing.assert_close(target.target.weight, before + 0.25)
    target.update()
    torch.testing.assert_close(target.target.weight, source.weight)
    with pytest.raises(ValueError, match="tau"):
        target.update(tau=0.0)


def test_target_update_averages_copies_buffers_and_follows_replaced_layers():
    source = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    target = TargetNetwork(source)
    before = target.target[0].weight.detach().clone()
    with torch.no_grad():
        source[0].weight.add_(1.0)
    source(torch.randn(4, 2))  # moves the running statistics
    target.update(0.25)
    torch.testing.assert_close(target.target[0].weight, before + 0.25)
    torch.testing.assert_close(target.target[1].running_mean, source[1].running_mean)
    source[0] = torch.nn.Linear(2, 3)  # a reset layer: new parameter objects
    target.update()
    torch.testing.assert_close(target.target[0].weight, source[0].weight)
    source.append(torch.nn.Linear(3, 1))
    with pytest.raises(ValueError, match="no longer matches its source"):
        target.update(0.5)

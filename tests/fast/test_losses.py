"""The losses against the plain torch computations they replace."""

import math

import torch

import rlx


def test_clipped_surrogate_matches_min_and_clamp_in_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    log_ratio = torch.randn(512, generator=g) * 0.3
    log_ratio[:4] = torch.tensor([math.log(0.8), math.log(1.2), 0.0, 0.0])  # boundaries
    adv = torch.randn(512, generator=g)
    adv[3] = 0.0
    a = log_ratio.clone().requires_grad_()
    b = log_ratio.clone().requires_grad_()
    ra, rb = a.exp(), b.exp()
    reference = torch.min(ra * adv, ra.clamp(0.8, 1.2) * adv)
    ours = rlx.clipped_surrogate(rb, adv, 0.2)
    assert torch.equal(ours, reference)
    reference.sum().backward()
    ours.sum().backward()
    torch.testing.assert_close(b.grad, a.grad)

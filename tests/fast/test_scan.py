"""The numpy reverse scan against the torch loop it replaces."""

import torch

import rlx.core.returns as R


def test_numpy_reverse_scan_matches_the_torch_loop_to_the_bit():
    g = torch.Generator().manual_seed(0)
    for T, B in ((257, 1), (64, 8)):
        x = torch.randn(T, B, generator=g)
        keep = (torch.rand(T, B, generator=g) > 0.1).float() * 0.99 * 0.95
        expected = torch.empty_like(x)
        running = torch.zeros(B)
        for t in range(T - 1, -1, -1):
            running = x[t] + keep[t] * running
            expected[t] = running
        assert torch.equal(R.reverse_scan(x, keep), expected)
        assert torch.equal(R.reverse_scan(x.T.contiguous().T, keep), expected)  # strided
        expected64 = torch.empty_like(x, dtype=torch.float64)
        running = torch.zeros(B, dtype=torch.float64)
        for t in range(T - 1, -1, -1):
            running = x[t].double() + keep[t].double() * running
            expected64[t] = running
        assert torch.equal(R.reverse_scan(x.double(), keep.double()), expected64)
        # Inputs with gradient keep the torch loop (and its graph).
        xg = x.clone().requires_grad_()
        out = R.reverse_scan(xg, keep)
        assert out.requires_grad
        torch.testing.assert_close(out, expected)

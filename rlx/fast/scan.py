"""The reverse scan behind every return and advantage, on numpy views of the tensors: a
numpy row operation costs a fraction of a torch call (a PPO batch of one environment has
2,048 rows), and the same operations in the same dtype give the same bits."""

from __future__ import annotations

import numpy as np
import torch


def reverse_scan(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor | None:
    """``y_t = x_t + keep_t * y_{t+1}`` on numpy views; None where they cannot be had (not
    on the CPU, other dtypes, tensors that need gradients)."""
    if not (
        x.device.type == "cpu" and keep.device.type == "cpu" and x.dtype == keep.dtype
        and x.dtype in (torch.float32, torch.float64) and not x.requires_grad
        and not keep.requires_grad
    ):  # fmt: skip
        return None
    xs, ks = x.numpy(), keep.numpy()
    ys = np.empty_like(xs)
    running = np.zeros_like(xs[0])
    for t in range(xs.shape[0] - 1, -1, -1):
        running = xs[t] + ks[t] * running
        ys[t] = running
    return torch.from_numpy(ys)

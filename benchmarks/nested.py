"""Benchmark: rlx's nested-tree ``Rollout`` versus the same data in a ``TensorDict``.

Builds one ``[128, 8]`` rollout (T=128 time steps, B=8 environments) with a Dict
observation (``position`` float32 ``[4]``, ``image`` uint8 ``[2, 8, 8]``: small, so that
copying memory does not hide the containers' own cost), next observations, int64
actions, float32 rewards and bool terminations, truncations, valid and starts, once as
an :class:`rlx.core.rollout.Rollout` and once as a ``tensordict.TensorDict`` (nested for
the observations). It then times, for both:

- index one time step (``r[5]`` versus ``td[5:6]``, so both keep a time dimension),
- slice time (``[:64]``),
- permute the environments (``[:, perm]`` with a fixed permutation of 8),
- concatenate two rollouts along time (``rlx.core.rollout.cat`` versus ``torch.cat``).

Single-threaded CPU; each figure is microseconds per operation, the best of 5 repeats
of ``timeit``. A benchmark, not a test: no thresholds, always exits 0.

Run from the repository root::

    python -m benchmarks.nested
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

import torch

from rlx.core.rollout import Rollout, cat

T, B = 128, 8
NUMBER = 2000
REPEAT = 5


def make_fields() -> dict[str, Any]:
    """The rollout's tensors, observations as a nested dict."""
    g = torch.Generator().manual_seed(0)

    def obs() -> dict[str, torch.Tensor]:
        return {
            "position": torch.randn(T, B, 4, generator=g),
            "image": torch.randint(0, 256, (T, B, 2, 8, 8), generator=g, dtype=torch.uint8),
        }

    return {
        "observations": obs(),
        "next_observations": obs(),
        "actions": torch.randint(0, 4, (T, B), generator=g),
        "rewards": torch.randn(T, B, generator=g),
        "terminations": torch.rand(T, B, generator=g) < 0.01,
        "truncations": torch.zeros(T, B, dtype=torch.bool),
        "valid": torch.ones(T, B, dtype=torch.bool),
        "starts": torch.rand(T, B, generator=g) < 0.01,
    }


def best_us(fn: Callable[[], Any]) -> float:
    """Microseconds per call: best of ``REPEAT`` runs of ``NUMBER`` calls, after a warm-up."""
    for _ in range(200):
        fn()
    return min(timeit.repeat(fn, number=NUMBER, repeat=REPEAT)) / NUMBER * 1e6


def main() -> None:
    torch.set_num_threads(1)
    fields = make_fields()
    perm = torch.randperm(B, generator=torch.Generator().manual_seed(1))
    r1 = Rollout(**fields, dry=True)
    r2 = Rollout(**fields, dry=True)
    rlx_ops: dict[str, Callable[[], Any]] = {
        "index one step": lambda: r1[5],
        "slice time [:64]": lambda: r1[:64],
        "permute envs": lambda: r1[:, perm],
        "cat along time": lambda: cat([r1, r2], dim=0),
    }
    rlx_us = {name: best_us(fn) for name, fn in rlx_ops.items()}

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, T={T}, B={B}")
    try:
        import tensordict
        from tensordict import TensorDict
    except ImportError:
        print("tensordict is not importable: showing rlx figures only.")
        print(f"{'operation':<20} {'rlx trees (us)':>15}")
        for name, us in rlx_us.items():
            print(f"{name:<20} {us:>15.1f}")
        return

    print(f"tensordict {tensordict.__version__}")
    td_fields = dict(fields)
    for key in ("observations", "next_observations"):
        td_fields[key] = TensorDict(fields[key], batch_size=[T, B])
    td1 = TensorDict(td_fields, batch_size=[T, B])
    td2 = TensorDict(td_fields, batch_size=[T, B])
    td_ops: dict[str, Callable[[], Any]] = {
        "index one step": lambda: td1[5:6],
        "slice time [:64]": lambda: td1[:64],
        "permute envs": lambda: td1[:, perm],
        "cat along time": lambda: torch.cat([td1, td2], 0),
    }
    td_us = {name: best_us(fn) for name, fn in td_ops.items()}

    header = f"{'operation':<20} {'rlx trees (us)':>15} {'TensorDict (us)':>16} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for name in rlx_ops:
        ratio = td_us[name] / rlx_us[name]
        print(f"{name:<20} {rlx_us[name]:>15.1f} {td_us[name]:>16.1f} {ratio:>6.2f}x")
    print("ratio = TensorDict / rlx trees (above 1: rlx trees are faster)")


if __name__ == "__main__":
    main()

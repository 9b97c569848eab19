"""Adam steps of a small network: rlx's direct fused kernel against torch's own steps and
``torch.compile``.

PPO's networks at Stable-Baselines3's settings (2x64 tanh actor and critic, CartPole-v1
sizes, minibatch 64, gradients clipped to 0.5), one thread: microseconds per clipped
optimiser step (gradients already computed), median of interleaved rounds, for

- ``foreach``: ``clip_grad_norm_`` + ``torch.optim.Adam(...).step()`` (torch's default);
- ``fused``: the same with ``Adam(fused=True)``;
- ``compiled``: that clipped step under ``torch.compile`` (inductor on the CPU; compile
  time printed);
- ``rlx direct``: :func:`rlx.core.optim.step` with the fast paths on (the fused kernel
  called directly, the clipping folded into it).

The direct step is kept while it is at least as fast as the compiled one over a run's
length (compile time included).

Run: ``python -m benchmarks.optimizer_step [--rounds 5] [--steps 2000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.fused_mlp import interleaved
from rlx.core.optim import step as rlx_step


def networks() -> torch.nn.Module:
    torch.manual_seed(0)

    def mlp(out: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh(),
                                   torch.nn.Linear(64, 64), torch.nn.Tanh(),
                                   torch.nn.Linear(64, out))  # fmt: skip

    nets = torch.nn.ModuleList([mlp(2), mlp(1)])
    x = torch.randn(64, 4)
    (nets[0](x).pow(2).mean() + nets[1](x).pow(2).mean()).backward()
    return nets


def variants() -> dict[str, tuple]:
    out = {}
    for name in ("foreach", "fused", "compiled"):
        nets = networks()
        opt = torch.optim.Adam(nets.parameters(), lr=3e-4, eps=1e-5, fused=name != "foreach")

        def clipped(nets=nets, opt=opt) -> None:
            torch.nn.utils.clip_grad_norm_(nets.parameters(), 0.5)
            opt.step()

        out[name] = (torch.compile(clipped) if name == "compiled" else clipped, False)
    nets = networks()
    opt = torch.optim.Adam(nets.parameters(), lr=3e-4, eps=1e-5, fused=True)
    out["rlx direct"] = (lambda: rlx_step(opt, 0.5), True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = variants()
    start = time.perf_counter()
    steps["compiled"][0]()
    compile_s = time.perf_counter() - start
    fast = {name for name, (_, on) in steps.items() if on}
    times = interleaved({name: step for name, (step, _) in steps.items()}, fast,
                        args.rounds, args.steps, warmup=50, unit=1e6)  # fmt: skip
    print(f"clipped Adam step, 2x64 actor + critic, torch {torch.__version__}, 1 thread; "
          f"torch.compile took {compile_s:.1f} s")  # fmt: skip
    print(f"{'variant':12} {'us per step (rounds)':>40} {'median':>7}")
    for name, values in times.items():
        rounds = " ".join(f"{v:.0f}" for v in values)
        print(f"{name:12} {rounds:>40} {statistics.median(values):>7.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

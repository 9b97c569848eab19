"""The ``rlx`` command line: ``rlx train``, ``rlx eval``, ``rlx plot``, ``rlx launch``.

Every option of ``rlx train`` is a field of :class:`rlx.runner.RunConfig` or of the
algorithm's config dataclass (``rlx train ppo ENV --help`` lists PPO's). Bad input ends
with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import sys
from pathlib import Path

import gymnasium as gym

from rlx.algos.config import validate_config
from rlx.algos.registry import ALGORITHMS, ALIASES, algorithm_class, canonical_name
from rlx.runner.checkpoint import CheckpointError

USAGE_ERRORS = (ValueError, TypeError, OSError, KeyError, CheckpointError, gym.error.Error)


class Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments:"):
            flags = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
            for word in message.split(":", 1)[1].split():
                if close := difflib.get_close_matches(word.split("=")[0], flags, n=1):
                    message += f" (did you mean {close[0]}?)"
                    break
        raise SystemExit(fail(message))


def fail(message: str) -> int:
    sys.stderr.write(f"rlx: error: {message}\n")
    return 2


def train_parser(algo: str | None) -> Parser:
    from rlx.runner.config import RunConfig, add_arguments

    parser = Parser(
        prog="rlx train",
        description="Train an algorithm on an environment.",
        epilog="Every numeric algorithm option takes a number or a schedule of the environment "
        "step, e.g. --gamma 'linear(0.9, 0.99, 10000)' (a count is rounded; the value is "
        "fixed for an iteration), except those whose help says 'fixed for the run' (and why).",
    )
    aliases = ", ".join(f"{short} for {full}" for short, full in ALIASES.items())
    parser.add_argument(
        "algo", nargs="?", help=f"algorithm: {', '.join(ALGORITHMS)} (aliases: {aliases})"
    )
    parser.add_argument("env", nargs="?", help="gymnasium environment id, e.g. CartPole-v1")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    add_arguments(parser, RunConfig, skip=("algo", "env"))
    if algo is not None:
        add_arguments(parser, algorithm_class(algo).Config)
    return parser


def cmd_train(argv: list[str]) -> int:
    from rlx.runner.config import RunConfig, from_arguments, read_config
    from rlx.runner.runner import Runner

    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("algo", nargs="?")
    probe.add_argument("--resume")
    known, _ = probe.parse_known_args(argv)
    algo = known.algo if known.algo and not known.algo.startswith("-") else None
    try:
        if known.resume:
            algo = read_config(known.resume)["run"]["algo"]
        args = train_parser(algo).parse_args(argv)
        if args.resume:
            if args.algo or args.env:
                raise ValueError(
                    "with --resume the algorithm and environment come from the run; "
                    "leave out ALGO and ENV."
                )
            given = {k: v for k, v in vars(args).items() if k not in ("algo", "env", "resume")}
            nproc = read_config(args.resume)["run"].get("nproc", 1)
            if nproc > 1 and "WORLD_SIZE" not in os.environ:
                from rlx.runner.data_parallel import run_processes

                return run_processes([sys.executable, "-m", "rlx.cli", "train", *argv], nproc)
            runner = Runner.resume(args.resume, **given)
        else:
            if not args.algo or not args.env:
                return fail(
                    "rlx train needs ALGO and ENV (e.g. rlx train ppo CartPole-v1), "
                    "or --resume RUN_DIR."
                )
            run = from_arguments(RunConfig, args, algo=canonical_name(args.algo), env=args.env)
            algo_config = from_arguments(algorithm_class(args.algo).Config, args)
            validate_config(algo_config)
            if run.nproc > 1 and "WORLD_SIZE" not in os.environ:
                from rlx.runner.data_parallel import run_processes
                from rlx.runner.runner import check

                check(run, algo_config)  # bad input: one line here, not one per process
                return run_processes([sys.executable, "-m", "rlx.cli", "train", *argv], run.nproc)
            runner = Runner(run, algo_config)
    except USAGE_ERRORS as err:
        return fail(str(err))
    with contextlib.closing(runner):
        row = runner.train()
    if runner.rank > 0:  # a data-parallel run speaks through rank 0
        return 0
    print(f"run directory: {runner.run_dir}")
    if row:
        print(f"steps {row['CumSteps']}  average return {row['ReturnAverage']:.1f}")
    return 0


def cmd_eval(argv: list[str]) -> int:
    parser = Parser(prog="rlx eval", description="Run a trained policy for some episodes.")
    parser.add_argument("checkpoint", help="a checkpoint file or a run directory (its newest)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--video", metavar="DIR", help="record the episodes as videos in DIR")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--stochastic", action="store_true", help="sample actions (default: mode)")
    args = parser.parse_args(argv)
    from rlx.runner.evaluation import evaluate_checkpoint

    if args.episodes <= 0:
        return fail(f"--episodes must be positive, got {args.episodes}.")
    try:
        returns = evaluate_checkpoint(
            args.checkpoint, args.episodes, seed=args.seed, video_dir=args.video,
            deterministic=not args.stochastic,
        )  # fmt: skip
    except USAGE_ERRORS as err:
        return fail(str(err))
    print(f"episodes {len(returns)}  average return {sum(returns) / len(returns):.2f}  "
          f"min {min(returns):.2f}  max {max(returns):.2f}")  # fmt: skip
    return 0


def cmd_plot(argv: list[str]) -> int:
    parser = Parser(prog="rlx plot", description="Plot learning curves of run directories.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("-o", "--output", default="curves.png")
    parser.add_argument("--x", default="CumSteps", help="column for the x axis")
    parser.add_argument("--y", default="ReturnAverage", help="column for the y axis")
    args = parser.parse_args(argv)
    from rlx.runner.plot import plot_runs

    output = Path(args.output)
    if not output.suffix:
        output = output.with_suffix(".png")
    try:
        data = plot_runs(args.runs, output, args.x, args.y)
    except USAGE_ERRORS as err:
        return fail(str(err))
    print(f"wrote {output}: {', '.join(data)}")
    return 0


def launch_parser() -> Parser:
    parser = Parser(
        prog="rlx launch",
        allow_abbrev=False,  # every other option belongs to rlx train
        usage="rlx launch ALGO ENV [rlx train options] [--grid OPTION=V1,V2...] "
        "[--variants FILE] [--seeds N...] [--slots N | --gpus ID...] [--out DIR]\n"
        "       rlx launch --resume DIR [--slots N | --gpus ID...]",
        description="Run a grid of variants x seeds as separate rlx train runs, several at "
        "once, each in OUT/VARIANT/sSEED; then summarise them and plot OUT/curves.png.",
        epilog="Options other than these are rlx train's, shared by every run (see rlx train "
        "ALGO ENV --help); a variant's own options come after them.",
    )
    parser.add_argument("--grid", action="append", default=[], metavar="OPTION=V1,V2",
                        help="an rlx train option and its values; several make their cartesian "
                        "product, e.g. --grid lr=3e-4,1e-3 --grid gamma=0.99,0.995")  # fmt: skip
    parser.add_argument("--variants", metavar="FILE",
                        help="variants from a YAML, JSON or Python file (VARIANTS = ...): a list "
                        "of dicts of rlx train options, each optionally with a name")  # fmt: skip
    parser.add_argument(
        "--seeds", type=int, nargs="+", metavar="SEED", help="seeds of every variant (default 0)"
    )
    parser.add_argument(
        "--slots",
        type=int,
        metavar="N",
        help="runs at once on CPUs (default: cores // --torch-threads)",
    )
    parser.add_argument("--gpus", nargs="+", metavar="ID",
                        help="run on these GPUs instead (each run sees only its own)")  # fmt: skip
    parser.add_argument(
        "--runs-per-gpu", type=int, metavar="N", help="runs at once on each GPU (default 1)"
    )
    parser.add_argument("--out", metavar="DIR", help="default runs/launch-ALGO-ENV-TIME")
    parser.add_argument("--resume", metavar="DIR", help="continue the grid launched in DIR")
    return parser


def cmd_launch(argv: list[str]) -> int:
    import time

    from rlx.runner import launch
    from rlx.runner.grid import Grid, combine, grid_variants, read_variants
    from rlx.runner.slots import cpu_slots, gpu_slots

    args, rest = launch_parser().parse_known_args(argv)
    for word in rest:
        name = word.split("=")[0]
        if name in ("--seed", "--run-dir", "--variant"):
            better = {"--seed": "--seeds", "--run-dir": "--out", "--variant": "--variants"}
            return fail(f"rlx launch sets {name} of each run: use {better[name]}.")
    try:
        if args.slots is not None and args.slots < 1:
            raise ValueError(f"--slots must be at least 1, got {args.slots}.")
        if args.slots is not None and args.gpus:
            raise ValueError("give --slots (CPU) or --gpus, not both.")
        if args.runs_per_gpu is not None and args.runs_per_gpu < 1:
            raise ValueError(f"--runs-per-gpu must be at least 1, got {args.runs_per_gpu}.")
        if args.resume:
            given = [f for f, v in (("ALGO ENV and rlx train options", rest), ("--grid", args.grid),
                     ("--variants", args.variants), ("--seeds", args.seeds),
                     ("--out", args.out)) if v]  # fmt: skip
            if given:
                raise ValueError(f"with --resume the grid comes from {args.resume}/launch.json; "
                                 f"leave out {', '.join(given)}.")  # fmt: skip
            out = Path(args.resume)
            grid, saved = launch.load(out)
        else:
            if len(rest) < 2 or rest[0].startswith("-") or rest[1].startswith("-"):
                raise ValueError("rlx launch needs ALGO and ENV first, e.g. rlx launch ppo "
                                 "CartPole-v1 --grid lr=3e-4,1e-3 --seeds 0 1 2.")  # fmt: skip
            algo, env, train_args = canonical_name(rest[0]), rest[1], rest[2:]
            train_parser(algo).parse_args([algo, env, *train_args])  # its own errors, as train
            variants = read_variants(args.variants) if args.variants else None
            grid = Grid(algo, env, combine(variants, grid_variants(args.grid)),
                        args.seeds or [0], train_args)  # fmt: skip
            out = Path(args.out or f"runs/launch-{algo}-{env}-{time.strftime('%Y%m%d-%H%M%S')}")
            saved = {}
        told = args.slots is not None or args.gpus is not None  # else a resume keeps its slots
        slots = {"slots": args.slots if told else saved.get("slots"),
                 "gpus": args.gpus if told else saved.get("gpus"),
                 "runs_per_gpu": args.runs_per_gpu or saved.get("runs_per_gpu") or 1}  # fmt: skip
        configs = launch.prepare(grid, out, slots)
        # cores a run keeps busy: its torch threads in each of its data-parallel processes
        threads = max(run.torch_threads * getattr(run, "nproc", 1) for run in configs)
        extra: list[str] = []
        if slots["gpus"]:
            places = gpu_slots(slots["gpus"], slots["runs_per_gpu"], threads)
            if all(run.device == "cpu" for run in configs):
                extra = ["--device", "cuda"]
        else:
            places = cpu_slots(slots["slots"], threads)
    except USAGE_ERRORS as err:
        return fail(str(err))
    return launch.launch(grid, out, places, extra)


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "plot": cmd_plot, "launch": cmd_launch}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: rlx {train,eval,plot,launch} ...\n\n"
              "  rlx train ALGO ENV [options]     train (rlx train ppo CartPole-v1 --help)\n"
              "  rlx train --resume RUN_DIR       continue a run\n"
              "  rlx launch ALGO ENV [options] --grid lr=3e-4,1e-3 --seeds 0 1 2 --out DIR\n"
              "  rlx launch --resume DIR          continue a grid\n"
              "  rlx eval CHECKPOINT --episodes N [--video DIR]\n"
              "  rlx plot RUN_DIR... -o curves.png")  # fmt: skip
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        return fail(f"unknown command {argv[0]!r}: use train, eval, plot or launch.")
    return COMMANDS[argv[0]](argv[1:])


# --------------------------------------------------- the original rlx command line
ORIGINAL_ALGOS = ("rf", "ac", "a2c", "ppo", "offpac")


def original_main(argv: list[str] | None = None) -> int:
    """``python main.py --algo ppo --policytype rnn --batch_size 16 ...``: the original rlx
    README's command line. Each update uses ``--batch_size`` whole episodes of at most
    ``--horizon`` steps (sampled in parallel environments); training stops after
    ``--max_episode`` episodes."""
    from rlx.runner.config import RunConfig
    from rlx.runner.runner import Runner

    p = Parser(prog="main.py", description=original_main.__doc__)
    p.add_argument("--algo", default="ppo", help="|".join(ORIGINAL_ALGOS))
    p.add_argument("--policytype", default="mlp", choices=("mlp", "rnn"))
    p.add_argument("--env", default="CartPole-v0")
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--entropy_reg", type=float, default=0.0)
    p.add_argument("--ppo_clip", type=float, default=0.2)
    p.add_argument("-K", "--ppo_k_epochs", type=int, default=4)
    p.add_argument("--grad_clip", type=float, default=None)
    p.add_argument("--batch_size", type=int, default=16, help="episodes per update")
    p.add_argument("--horizon", type=int, default=500)
    p.add_argument("--max_episode", type=int, default=5000)
    p.add_argument("--interval", type=int, default=10, help="iterations between checkpoints")
    p.add_argument("--rbsize", type=int, default=100, help="episodes kept for off-policy replay")
    p.add_argument("--render", action="store_true", help="record 3 episodes as videos at the end")
    p.add_argument("--standardize_return", action="store_true")
    p.add_argument("--tbdir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-envs", type=int, default=None, help="environments (default batch_size)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    try:
        if a.algo not in ORIGINAL_ALGOS:
            raise ValueError(
                f"unknown algorithm {a.algo!r}: choose one of {', '.join(ORIGINAL_ALGOS)}."
            )
        cls = algorithm_class(a.algo)
        for name in ("batch_size", "horizon", "max_episode", "ppo_k_epochs"):
            if getattr(a, name) <= 0:
                raise ValueError(f"--{name} must be positive, got {getattr(a, name)}.")
        fields = {"num_envs": a.num_envs or a.batch_size, "episodes": True, "horizon": a.horizon,
                  "lr": a.lr, "gamma": a.gamma, "grad_clip": a.grad_clip,
                  "entropy_coef": a.entropy_reg}  # fmt: skip
        extra = {"clip": a.ppo_clip, "epochs": a.ppo_k_epochs, "replay_episodes": a.rbsize,
                 "standardize_return": a.standardize_return,
                 "normalize_advantages": a.standardize_return}  # fmt: skip
        fields.update({k: v for k, v in extra.items() if k in cls.Config.__dataclass_fields__})
        algo_config = cls.Config(**fields)
        run = RunConfig(algo=canonical_name(a.algo), env=a.env, policy=a.policytype,
                        seed=a.seed, device=a.device, total_steps=a.max_episode * a.horizon,
                        total_episodes=a.max_episode, tbdir=a.tbdir,
                        checkpoint_every=a.interval)  # fmt: skip
        runner = Runner(run, algo_config)
    except USAGE_ERRORS as err:
        return fail(str(err))
    with contextlib.closing(runner):
        row = runner.train()
    print(f"run directory: {runner.run_dir}")
    if a.render:
        from rlx.runner.evaluation import evaluate_checkpoint

        try:
            evaluate_checkpoint(runner.run_dir, 3, video_dir=runner.run_dir / "videos")
        except USAGE_ERRORS as err:
            return fail(str(err))
        print(f"videos: {runner.run_dir / 'videos'}")
    if row:
        print(f"episodes {runner.episodes}  average return {row['ReturnAverage']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

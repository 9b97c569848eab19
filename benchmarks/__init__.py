"""rlx's benchmarks: scripts run from the repository root as ``python -m
benchmarks.NAME`` (see ``benchmarks/README.md``); the learning harness
(:mod:`benchmarks.learning`) and the cases are importable, so the learning tests train
exactly the benchmark's cases."""

"""The end every benchmark prints: a line per target and ``N passed, M failed``."""

from __future__ import annotations


def verdict(checks: list[tuple[str, str, bool]]) -> int:
    """Print ``target: NAME: passed|MISSED (VALUE)`` for each (name, value, ok) and the
    ``N passed, M failed`` line; the exit code (non-zero when a target is missed)."""
    print()
    for name, value, ok in checks:
        print(f"target: {name}: {'passed' if ok else 'MISSED'} ({value})")
    passed = sum(ok for _, _, ok in checks)
    print(f"{passed} passed, {len(checks) - passed} failed")
    return 0 if passed == len(checks) else 1

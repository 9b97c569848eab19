"""The README's algorithm snippets run as printed (with their loops shortened), so the
documentation cannot drift from the API."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
# (snippet marker, shortening replacements)
SHORTER = {
    "= PPO(": [("range(100)", "range(3)")],
    "= DQN(": [("< 50_000", "< 1_600")],
    "= SAC(": [("< 20_000", "< 300")],
    "= CMAES(": [("range(30)", "range(2)")],
}


def snippets() -> list[tuple[str, str]]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    found = []
    for marker, replacements in SHORTER.items():
        (code,) = [b for b in blocks if marker in b]
        for old, new in replacements:
            assert old in code, f"README snippet with {marker} no longer has {old!r}"
            code = code.replace(old, new)
        found.append((marker[2:-1], code))
    return found


@pytest.mark.parametrize(("name", "code"), snippets(), ids=[n for n, _ in snippets()])
def test_readme_snippet_runs(name, code):
    namespace: dict = {}
    exec(compile("import rlx\nimport torch\n" + code, f"README:{name}", "exec"), namespace)
    agent = namespace["agent"]
    assert agent.total_steps > 0
    algo = next(v for k, v in namespace.items() if k == name.lower())
    info = namespace.get("info") or algo.iteration()
    numbers = [v for v in info.values() if isinstance(v, float)]
    assert numbers and all(math.isfinite(v) for v in numbers), info

"""The package's layering, read from its source: no private name imported from another
package, and the lower layers import nothing from the higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rlx"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def subpackage(module: str) -> str:
    """``rlx.core.rollout`` -> ``core``; a top-level module is its own layer."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of every ``from rlx... import name`` in the file (``import
    rlx.x`` gives ``(rlx.x, "")``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rlx"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.startswith("rlx")]
    return found


@pytest.mark.parametrize("path", SOURCES, ids=[module_name(p) for p in SOURCES])
def test_no_private_name_crosses_a_package(path):
    here = subpackage(module_name(path))
    crossing = [
        f"{module}.{name}"
        for module, name in imports(path)
        if name.startswith("_") and not name.startswith("__") and subpackage(module) != here
    ]
    assert not crossing, f"{module_name(path)} imports private names {crossing}"


# Each layer may import only from itself and from these (DESIGN.md, "Layers").
BELOW = {
    "tree": set(),
    "schedules": set(),
    "fast": {"tree"},
    "envs": {"tree"},
    "core": {"tree", "envs", "fast"},
}


@pytest.mark.parametrize("layer", sorted(BELOW))
def test_lower_layers_do_not_import_higher_ones(layer):
    allowed = BELOW[layer] | {layer}
    wrong = {
        f"{module_name(path)} -> {module}"
        for path in SOURCES
        if subpackage(module_name(path)) == layer
        for module, _ in imports(path)
        if module != "rlx" and subpackage(module) not in allowed
    }
    assert not wrong, f"{layer} imports from a higher layer: {sorted(wrong)}"

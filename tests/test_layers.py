"""The layer contract: imports only go down the layers, and no modules import each other in a ring.

Layers, bottom to top (docs/architecture.md): the shared base (``lsci.errors``,
``lsci._version``, ``lsci._arrays``), ``core``, ``sim``, ``calibration``, ``drivers``,
``recording``, ``acquisition``, ``processing``, ``analysis``, ``viz``, ``study``, then the callers
(``lsci.demo``, ``lsci.cli`` and the short top-level API ``lsci``), then the napari plugin.
A module may import from its own layer and the layers below it. Every import counts: those at
module level, inside functions (lazy imports) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Source directory of each import root (the package-dir mapping of pyproject.toml).
SOURCES = {
    "lsci": ROOT / "lsci",
    "lsci.drivers": ROOT / "drivers",
    "napari_lsci": ROOT / "plugins" / "napari_lsci",
}
LAYERS: tuple[tuple[str, ...], ...] = (
    ("lsci.errors", "lsci._version", "lsci._arrays"),
    ("lsci.core",),
    ("lsci.sim",),
    ("lsci.calibration",),
    ("lsci.drivers",),
    ("lsci.recording",),
    ("lsci.acquisition",),
    ("lsci.processing",),
    ("lsci.analysis",),
    ("lsci.viz",),
    ("lsci.study",),
    ("lsci.demo", "lsci.cli", "lsci"),
    ("napari_lsci",),
)


@cache
def modules() -> dict[str, Path]:
    """Every module of the three import roots by dotted name."""
    found: dict[str, Path] = {}
    for root, directory in SOURCES.items():
        for path in sorted(directory.rglob("*.py")):
            parts = path.relative_to(directory).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((root, *parts))] = path
    return found


def layer(module: str) -> int:
    """Index of the layer ``module`` belongs to (the longest matching prefix decides)."""
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best >= 0, f"{module} is in no layer: add it to LAYERS"
    return best


def _package(module: str) -> str:
    path = modules()[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports(module: str) -> Iterator[tuple[str, int]]:
    """(imported project module, line) for every import statement in ``module``."""
    known = modules()
    tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = _package(module).split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from package import submodule" depends on the submodule.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target:
                yield target, node.lineno


def downward_violations() -> list[str]:
    found = []
    for module in modules():
        for target, line in imports(module):
            if layer(target) > layer(module):
                found.append(f"{module}:{line} imports {target}")
    return sorted(set(found))


def import_cycles() -> list[list[str]]:
    """Rings of modules importing each other (strongly connected components, Tarjan)."""
    graph: dict[str, set[str]] = {
        m: {t for t, _ in imports(m) if t != m and not m.startswith(t + ".")} for m in modules()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    rings: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            ring = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                ring.append(top)
                if top == node:
                    break
            if len(ring) > 1:
                rings.append(sorted(ring))

    for node in graph:
        if node not in index:
            visit(node)
    return rings


def test_every_module_has_a_layer() -> None:
    assert {"lsci.core.contrast", "lsci.drivers.base", "napari_lsci"} <= set(modules())
    for module in modules():
        layer(module)


def test_imports_only_go_down() -> None:
    violations = downward_violations()
    assert not violations, "imports against the layer order:\n" + "\n".join(violations)


def test_no_import_cycles() -> None:
    rings = import_cycles()
    assert not rings, "modules importing each other:\n" + "\n".join(map(" <-> ".join, rings))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from lsci.recording import layout", "lsci.recording.layout"),
        ("from lsci.recording import open_recording", "lsci.recording"),
        ("import lsci.core.contrast as c", "lsci.core.contrast"),
        ("from . import noise", "lsci.calibration.noise"),
        ("from .stored import DarkFrame", "lsci.calibration.stored"),
        ("import numpy", None),
    ],
)
def test_import_resolution(tmp_path: Path, source: str, expected: str | None) -> None:
    """The parser resolves absolute, relative and from-package imports to modules."""
    module = "lsci.calibration.beta"
    real = modules()[module]
    fake = tmp_path / "beta.py"
    fake.write_text(f"def f():\n    {source}\n", encoding="utf-8")
    modules()[module] = fake
    try:
        found = [target for target, _ in imports(module)]
    finally:
        modules()[module] = real
    assert found == ([] if expected is None else [expected])

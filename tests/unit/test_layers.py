"""The house's layers: every import (also one inside a function) points down or sideways, never
up, and no modules import each other in a circle. Read from the source with `ast`, so that an
import the code only runs sometimes counts too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dags", "jobs", "schemas")

# Highest first. A module's layer is the one of its longest matching prefix.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("entry points and developer tools", (
        "dags", "jobs.cli", "jobs.run_cli", "jobs.airflow_local", "jobs.bench", "jobs.generate", "jobs.docs",
    )),
    ("the pipeline", ("jobs.pipeline", "jobs.lineage", "jobs.maintain")),
    ("the stages", (
        "jobs.extract", "jobs.importer", "jobs.snapshot_inputs", "jobs.clean_changes", "jobs.clean_layer",
        "jobs.customer_day_state", "jobs.quality", "jobs.metrics", "jobs.transform", "jobs.publish",
        "jobs.export_s3", "jobs.report", "jobs.runs",
    )),
    ("the resources", (
        "jobs.config", "jobs.spark", "jobs.warehouse", "jobs.lake", "jobs.delta", "jobs.clean_state", "jobs.s3",
        "jobs.airflow_connections", "jobs.parallel", "jobs.pseudonymize", "jobs.faults",
    )),
    ("the contract", ("schemas",)),
)


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> Iterator[str]:
    """The project modules `path` imports, wherever the import statement stands."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name:
                yield name


GRAPH = {m: {t for t in _imports(p) if t != m} for m, p in MODULES.items()}


def _layer(module: str) -> int:
    if module in PACKAGES:  # a package itself (jobs/__init__.py sets up logging): imports nothing of ours
        assert not GRAPH[module], f"{module}/__init__.py imports {GRAPH[module]}: keep the package root empty"
        return len(LAYERS) - 1
    best: tuple[int, int] | None = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return best[0]


def test_every_module_has_a_layer() -> None:
    assert len(MODULES) > 40  # the walk found the package
    for module in MODULES:
        _layer(module)


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{source} ({LAYERS[_layer(source)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        for source, targets in sorted(GRAPH.items())
        for target in sorted(targets)
        if _layer(target) < _layer(source)
    ]
    assert upward == []


def _circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles() -> None:
    assert _circles() == []


def test_the_check_sees_an_upward_import_and_a_circle() -> None:
    """The checks above can fail: a stage importing the pipeline is both."""
    GRAPH["jobs.publish"].add("jobs.pipeline")
    try:
        assert _layer("jobs.pipeline") < _layer("jobs.publish")
        assert any("jobs.publish" in c and "jobs.pipeline" in c for c in _circles())
    finally:
        GRAPH["jobs.publish"].discard("jobs.pipeline")

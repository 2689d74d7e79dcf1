"""The house's layers: every import (also one inside a function) points down or sideways, never
up, and no modules import each other in a circle. Read from the source with `ast`, so that an
import the code only runs sometimes counts too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dags", "devtools", "jobs", "schemas")

# Highest first. A module's layer is the one of its longest matching prefix; each room of jobs/ is
# one folder, so the table names folders, not modules.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("entry points and developer tools", ("dags", "jobs.cli", "devtools")),
    ("the pipeline", ("jobs.pipeline",)),
    ("the stages", ("jobs.ingest", "jobs.clean", "jobs.quality", "jobs.metrics", "jobs.publish", "jobs.report")),
    ("the platform", ("jobs.platform",)),
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
    if module in PACKAGES:  # a package root (jobs/__init__.py sets up logging): imports nothing of ours
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
    GRAPH["jobs.publish.to_warehouse"].add("jobs.pipeline.steps")
    try:
        assert _layer("jobs.pipeline.steps") < _layer("jobs.publish.to_warehouse")
        assert any("jobs.publish.to_warehouse" in c and "jobs.pipeline.steps" in c for c in _circles())
    finally:
        GRAPH["jobs.publish.to_warehouse"].discard("jobs.pipeline.steps")


def test_every_room_says_what_it_is_for() -> None:
    """Each folder of the packages has an __init__.py whose docstring says what the room holds
    (dags/ is Airflow's DAG folder, not a package: its one module says it)."""
    for package in ("devtools", "jobs", "schemas"):
        for folder in [ROOT / package, *(p for p in (ROOT / package).rglob("*") if p.is_dir())]:
            if folder.name in ("__pycache__", "templates"):
                continue
            init = folder / "__init__.py"
            assert init.exists(), f"{folder.relative_to(ROOT)} has no __init__.py"
            doc = ast.get_docstring(ast.parse(init.read_text()))
            assert doc and len(doc) > 40, f"{init.relative_to(ROOT)}: say in its docstring what the room is for"


def test_the_production_package_leaves_the_tools_and_the_faults_out() -> None:
    """jobs/ imports neither the developer tools nor the tests' fault injection."""
    assert not [m for m in MODULES if m.startswith("jobs.") and m.rsplit(".", 1)[-1] in ("faults", "generate", "bench")]
    leaks = sorted((m, t) for m, targets in GRAPH.items() if m.startswith("jobs") for t in targets if t.startswith("devtools"))
    assert leaks == []
    for path in (ROOT / "jobs").rglob("*.py"):
        assert "tests.support" not in path.read_text(), f"{path.relative_to(ROOT)} names the tests' support code"

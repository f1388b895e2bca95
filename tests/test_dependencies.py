"""Dependencies point one way: task modules import the services they wrap; services send tasks by name
(`webapp.dispatch`) and never import a task module; no module, no webapp app and no package imports back
into what imports it, counting the imports inside functions (a lazy import that dodges a cycle is still
one)."""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = "workers.tasks"
PACKAGES = ("webapp", "workers", "retrieval_core")
Graph = dict[str, set[str]]


def _imported_modules(path: Path) -> Iterator[str]:
    """Every module an import statement anywhere in the file names (lazy imports in functions too)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _task_imports(paths: Iterator[Path]) -> dict[str, list[str]]:
    found = {}
    for path in paths:
        names = sorted({name for name in _imported_modules(path) if name.startswith(TASKS)})
        if names:
            found[path.relative_to(ROOT).as_posix()] = names
    return found


def _module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted name → file of every module of ``packages`` under ``root`` (a package is its __init__)."""
    files = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            files[name.removesuffix(".__init__")] = path
    return files


def _resolve(target: str, known: set[str]) -> str | None:
    """The project module ``target`` names (an imported name resolves to the module defining it)."""
    while target not in known:
        if "." not in target:
            return None
        target = target.rsplit(".", 1)[0]
    return target


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> Graph:
    """Module → the project modules it imports, anywhere in the file, relative imports included. A module's
    own ancestor packages are left out: Python imports them first whatever the module says."""
    files = _module_files(root, packages)
    known = set(files)
    graph: Graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(filter(None, (_resolve(alias.name, known) for alias in node.names)))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    resolved = _resolve(f"{base}.{alias.name}", known)
                    if resolved is not None:
                        targets.add(resolved)
        graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return graph


def app_of(module: str) -> str:
    """The unit whose dependencies must point one way: a webapp app (or a module of webapp's own, such as
    `webapp.dispatch`), else the top-level package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "webapp" else parts[0]


def app_graph(graph: Graph) -> Graph:
    apps: Graph = {}
    for module, targets in graph.items():
        apps.setdefault(app_of(module), set()).update(
            app_of(t) for t in targets if app_of(t) != app_of(module)
        )
    return apps


def a_cycle(graph: Graph) -> list[str] | None:
    """One cycle of ``graph`` (its nodes, the first repeated at the end), or None when it has none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def edges_between(graph: Graph, source: str, target: str) -> list[str]:
    return sorted(
        f"{m} -> {t}"
        for m, ts in graph.items()
        for t in ts
        if m.split(".")[0] == source and t.split(".")[0] == target
    )


def test_no_webapp_module_imports_a_task_module() -> None:
    offenders = _task_imports(ROOT.glob("webapp/**/*.py"))
    assert not offenders, offenders


def test_dispatch_and_the_task_names_import_no_task_module() -> None:
    assert _task_imports(iter([ROOT / "webapp/dispatch.py", ROOT / "webapp/task_names.py"])) == {}


def test_no_import_cycle_between_modules() -> None:
    assert a_cycle(import_graph(ROOT)) is None


def test_no_import_cycle_between_webapp_apps_or_packages() -> None:
    assert a_cycle(app_graph(import_graph(ROOT))) is None


def test_workers_depend_on_webapp_and_never_the_reverse() -> None:
    graph = import_graph(ROOT)
    assert edges_between(graph, "workers", "webapp"), "the tasks should import the services they wrap"
    assert edges_between(graph, "webapp", "workers") == []


def test_retrieval_core_imports_neither_webapp_nor_workers() -> None:
    graph = import_graph(ROOT)
    assert edges_between(graph, "retrieval_core", "webapp") == []
    assert edges_between(graph, "retrieval_core", "workers") == []


def test_the_checks_see_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The graph these tests read finds a cycle that a function-local import closes, and an app cycle."""
    app_a, app_b = tmp_path / "webapp" / "a", tmp_path / "webapp" / "b"
    for folder in (app_a, app_b, tmp_path / "workers"):
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
    (tmp_path / "webapp" / "__init__.py").write_text("")
    (app_a / "services.py").write_text("from . import models\n\ndef f():\n    from webapp.b import views\n")
    (app_a / "models.py").write_text("")
    (app_b / "views.py").write_text("import webapp.a.services\n")
    (tmp_path / "workers" / "tasks.py").write_text("from webapp.a.services import f\n")

    graph = import_graph(tmp_path)

    assert graph["webapp.a.services"] == {"webapp.a.models", "webapp.b.views"}
    assert a_cycle(graph) is not None
    assert a_cycle(app_graph(graph)) is not None
    assert edges_between(graph, "workers", "webapp") == ["workers.tasks -> webapp.a.services"]
    (app_a / "services.py").write_text("from . import models\n")
    assert a_cycle(import_graph(tmp_path)) is None

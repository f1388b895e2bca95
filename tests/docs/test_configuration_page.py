"""docs/configuration.md documents exactly the environment variables that webapp/settings.py reads.

The variables the settings read are found two ways: statically, every ``env_*("NAME", ...)`` call and every
``os.environ`` / ``os.getenv`` read of a literal name in the module's source (branches that did not run
included), and at run time, the names the ``webapp.env`` helpers recorded while the settings loaded (a name
built at run time included). The page documents a variable when its name, in backticks, is in the first cell
of a row of a table whose first column is headed ``variable``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Set
from pathlib import Path

from webapp import env

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "webapp" / "settings.py"
PAGE = ROOT / "docs" / "configuration.md"
ENV_READERS = {"env_str", "env_int", "env_bool", "env_float", "env_list", "env_path", "getenv"}
NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _called_name(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def variables_read(source: str) -> set[str]:
    """Names of the environment variables a settings module's source reads, by literal name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            called = _called_name(func)
            reads_environ = isinstance(func, ast.Attribute) and _is_os_environ(func.value)
            if (called in ENV_READERS or called.startswith("env_") or reads_environ) and node.args:
                name = _literal(node.args[0])
                if name:
                    names.add(name)
        elif isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            name = _literal(node.slice)
            if name:
                names.add(name)
        elif isinstance(node, ast.Compare) and any(_is_os_environ(c) for c in node.comparators):
            name = _literal(node.left)
            if name:
                names.add(name)
    return names


def variables_documented(markdown: str) -> set[str]:
    """Names in the first cell of the rows of every table whose first column is headed ``variable``."""
    names: set[str] = set()
    in_table = False
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if not cells:
            in_table = False
        elif cells[0].lower() == "variable":
            in_table = True
        elif in_table and not set(cells[0]) <= set("-: "):
            names.update(NAME.findall(cells[0]))
    return names


def drift(source: str, markdown: str, also_read: Set[str] = frozenset()) -> tuple[set[str], set[str]]:
    """(read but not documented, documented but not read)."""
    read = variables_read(source) | set(also_read)
    documented = variables_documented(markdown)
    return read - documented, documented - read


def test_the_configuration_page_documents_every_variable_the_settings_read_and_no_other() -> None:
    import webapp.settings  # noqa: F401  (loads the settings, so the helpers have recorded what they read)

    undocumented, unread = drift(SETTINGS.read_text(), PAGE.read_text(), set(env.READ_VARIABLES))
    assert not undocumented, (
        f"webapp/settings.py reads {sorted(undocumented)} but docs/configuration.md does not document them: "
        "add a row to one of its 'variable' tables"
    )
    assert not unread, (
        f"docs/configuration.md documents {sorted(unread)} but webapp/settings.py does not read them: "
        "remove them from the page"
    )


def test_the_check_sees_every_way_of_reading_a_variable_and_both_kinds_of_drift() -> None:
    source = (
        "import os\n"
        "A = env_int('ALPHA', 1)\n"
        "B = env.env_path('BETA', BASE)\n"
        "C = os.environ.get('GAMMA', '')\n"
        "D = os.environ['DELTA']\n"
        "E = os.getenv('EPSILON')\n"
        "if 'ZETA' in os.environ:\n"
        "    pass\n"
        "F = dict(NOT_AN_ENV='x')\n"
    )
    assert variables_read(source) == {"ALPHA", "BETA", "GAMMA", "DELTA", "EPSILON", "ZETA"}
    page = (
        "| variable | default | meaning |\n|---|---|---|\n"
        "| `ALPHA`, `BETA` | `1` | uses `NOT_A_ROW_NAME` |\n| `GAMMA` | | |\n| `OMEGA` | | |\n\n"
        "| files | setting |\n|---|---|\n| `DELTA` | not a variable table |\n"
    )
    assert variables_documented(page) == {"ALPHA", "BETA", "GAMMA", "OMEGA"}
    undocumented, unread = drift(source, page, {"ETA"})
    assert undocumented == {"DELTA", "EPSILON", "ZETA", "ETA"}
    assert unread == {"OMEGA"}

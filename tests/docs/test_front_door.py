"""The README stays a front door, and no text in the repository speaks of internal tickets or of how the
work was organised.

Readers are users and maintainers: a reference such as "see ticket 12", or a note about what else ran on
the machine, means nothing to them in a comment, a docstring or a page. A measurement states its
conditions (the load, the cores) instead.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 200
TEXT_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".toml", ".html", ".js", ".css", ".txt", ".cfg", ".sh"}
SCANNED = [
    "README.md",
    "CHANGELOG.md",
    "mkdocs.yml",
    "Makefile",
    "Procfile",
    "docs",
    "retrieval_core",
    "webapp",
    "workers",
    "bench",
    "tests",
    "deploy",
]
# The word for a ticket followed by its number, spaced, hashed, hyphenated or underscored (an upstream
# project's "owner/repo#123" is fine). Spelt in pieces here so that this file does not match itself.
WORD = "iss" + "ue"
TICKET = re.compile(rf"(?<![a-z]){WORD}s?[ _#-]{{0,2}}\d+", re.IGNORECASE)
# Words about how the work was organised rather than about the product (spelt in pieces, as above).
ORGANISATION = re.compile(
    "|".join(
        [
            "qui" + "et machine",
            "this ses" + "sion",
            "other ses" + "sions",
            "shared with other" + " (?:work|jobs)",
            "other heavy" + " jobs",
            "loaded by other" + " jobs",
            "no GPU was" + " lent",
        ]
    ),
    re.IGNORECASE,
)


def _text_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
    return files


def test_the_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < README_MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it under {README_MAX_LINES} and move detail into docs/"
    )


def test_no_text_refers_to_internal_tickets_or_how_the_work_was_organised() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}"
        for path in _text_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
        if TICKET.search(line) or ORGANISATION.search(line)
    ]
    assert not found, (
        "internal ticket references or words about how the work was organised (say what the code does, or "
        "the measurement's conditions, instead):\n" + "\n".join(found)
    )


def test_the_ticket_pattern_matches_what_it_should() -> None:
    hits = [
        f"{WORD} 13",
        f"{WORD.title()} 15",
        f"{WORD}s 13",
        f"{WORD} #20",
        f"{WORD}-13 bug",
        f"x_{WORD}_13",
    ]
    misses = ["milvus-io/milvus#39629", f"{WORD}_api_token", f"{WORD.title()} an API token", f"t{WORD} 3"]
    assert all(TICKET.search(text) for text in hits)
    assert not any(TICKET.search(text) for text in misses)
    assert ORGANISATION.search("measured on a " + "qui" + "et machine")
    assert not ORGANISATION.search("requests have been quiet for 2 s")

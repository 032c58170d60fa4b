# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The code cites the project's own docs/, and what it cites exists: every cited file, every cited section,
every link between the docs pages; nothing points at a specification outside the repository."""

import re
from pathlib import Path

from tests.conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"
CITING_SUFFIXES = (".py", ".yaml", ".md", ".toml")
# `docs/model.md`, optionally followed by a section: `docs/model.md, "Swin block"` or `, section 'Presets'`.
CITATION = re.compile(r"""docs/([\w/-]+\.md)(?:,(?: section)? ["']([^"']+)["'])?""")
LINK = re.compile(r"\]\(([\w/-]+\.md)(?:#([\w-]+))?\)")


def project_files() -> list[Path]:
    skipped = {".git", ".venv", "outputs", "__pycache__", "build", "dist"}  # not the sources: local artefacts
    return [p for p in REPO_ROOT.rglob("*") if p.suffix in CITING_SUFFIXES and p.is_file()
            and not skipped & set(p.relative_to(REPO_ROOT).parts)]


def headings(page: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in page.read_text().splitlines() if line.startswith("#")]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_cited_docs_and_sections_exist():
    cited = 0
    for path in project_files():
        for page, section in CITATION.findall(path.read_text(errors="replace")):
            cited += 1
            where = f"{path.relative_to(REPO_ROOT)} cites docs/{page}"
            assert (DOCS / page).is_file(), f"{where}, which does not exist"
            if section:
                assert section in headings(DOCS / page), f"{where}, section {section!r}, which it lacks"
    assert cited >= 13  # the docstrings, the recipe and the loss study's report


def test_nothing_points_at_the_external_specification():
    cited = re.compile(r"lavt-spec\.md|\bspec sections? \d|\bspec \(section", re.IGNORECASE)
    stale = [str(p.relative_to(REPO_ROOT)) for p in project_files() if cited.search(p.read_text(errors="replace"))]
    assert not stale, stale


def test_links_between_docs_pages_resolve():
    pages = sorted(DOCS.glob("*.md")) + [REPO_ROOT / "README.md"]
    for page in pages:
        for target, fragment in LINK.findall(page.read_text()):
            resolved = (page.parent / target).resolve()
            assert resolved.is_file(), f"{page.name} links to {target}, which does not exist"
            if fragment:
                assert fragment in {anchor(h) for h in headings(resolved)}, f"{page.name} links to {target}#{fragment}"

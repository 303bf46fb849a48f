"""What the package cites exists in the repository: docs sections named in docstrings, numbers docs quote."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "zsl_scale"
CITATION = re.compile(r"docs/([\w-]+\.md) §(\d+)")


def _package_texts() -> dict[Path, str]:
    files = [p for p in PKG.rglob("*") if p.is_file() and p.suffix in (".py", ".yaml", ".json", ".md")]
    return {p: p.read_text(encoding="utf-8") for p in files}


def test_no_citation_points_outside_the_repository() -> None:
    outside = [str(p.relative_to(ROOT)) for p, text in _package_texts().items() if "DESIGN.md" in text]
    assert outside == [], f"cite docs/design.md, not the team's notes outside the repository: {outside}"


def test_every_cited_docs_section_exists() -> None:
    cited = {(m.group(1), m.group(2)) for text in _package_texts().values() for m in CITATION.finditer(text)}
    assert ("design.md", "1") in cited  # the model's docstring cites the method's section
    for doc, section in sorted(cited):
        headings = (ROOT / "docs" / doc).read_text(encoding="utf-8").splitlines()
        assert any(h.startswith(f"## {section}. ") for h in headings), f"docs/{doc} has no section {section}"

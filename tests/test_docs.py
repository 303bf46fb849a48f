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


def test_demo_reference_is_the_measured_row_docs_quote() -> None:
    from zsl_scale.cli.small import FULL_PROTOCOL_FLO, full_protocol_reference

    method = (ROOT / "docs" / "cada.md").read_text(encoding="utf-8")
    table_b = method[method.index("### Tables (b) and (c)"):]
    row = next(line for line in table_b.splitlines() if line.startswith("| GZSL |"))
    cells = [c.strip().strip("*") for c in row.strip("|").split("|")]
    n, mean, sd = full_protocol_reference()
    quoted = f"{mean:.1f} ± {sd:.1f}"
    assert cells[3] == quoted and cells[4].split() == [f"{h:.1f}" for h in _per_seed(FULL_PROTOCOL_FLO)]
    assert n == len(cells[4].split())
    assert f"H {quoted}" in (ROOT / "README.md").read_text(encoding="utf-8")


def _per_seed(path: Path) -> list[float]:
    import json

    return json.loads(path.read_text(encoding="utf-8"))["H"]


def test_stage_settings_tables_are_generated_from_the_models() -> None:
    """docs/jobs.md's stage settings tables are exactly what the settings models generate (keys, types, defaults)."""
    from zsl_scale.jobs.settings import SETTINGS_BEGIN, SETTINGS_END, settings_reference

    text = (ROOT / "docs" / "jobs.md").read_text(encoding="utf-8")
    block = text.split(SETTINGS_BEGIN, 1)[1].split(SETTINGS_END, 1)[0]
    assert block.strip() == settings_reference().strip(), "regenerate: see docs/jobs.md, 'Stage settings'"
    assert "| `epochs` | `int` | required |" in block and "| `runner` | `Literal['local', 'spawn', 'ray']` |" in block

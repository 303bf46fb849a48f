"""pyproject declares exactly what the package imports: every third-party import is a declared
dependency (core or an extra), and every declared dependency is imported somewhere."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.conftest import parse_python

ROOT = Path(__file__).resolve().parents[1]
# Imported behind a guard and deliberately not declared: the paper's ResNet-101 backbone needs a torchvision
# built for the user's torch (PyPI's does not import beside torch 2.13.0 CPU; docs/features.md).
UNDECLARED = {"torchvision"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = list(project["dependencies"])
    for extra, deps in project["optional-dependencies"].items():
        specs += deps if extra != "dev" else []
    return {_norm(re.match(r"[A-Za-z0-9_.-]+", s).group(0)) for s in specs}


def _imported() -> set[str]:
    names = set()
    for path in (ROOT / "zsl_scale").rglob("*.py"):
        for node in ast.walk(parse_python(path)):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"zsl_scale", "__future__"}


def test_every_import_is_declared_and_every_declaration_imported() -> None:
    declared, imported, dists = _declared(), _imported(), packages_distributions()
    # what is not installed here (an extra, e.g. faiss on a machine without it) cannot be mapped: skipped
    providers = {m: {_norm(d) for d in dists[m]} for m in imported - UNDECLARED if m in dists}
    undeclared = sorted(m for m, p in providers.items() if not p & declared)
    assert undeclared == [], f"imported but not declared in pyproject.toml: {undeclared}"
    installed = {_norm(d) for ds in dists.values() for d in ds}
    provided = set().union(*providers.values())
    unused = sorted(d for d in declared if d in installed and d not in provided)
    assert unused == [], f"declared in pyproject.toml but never imported: {unused}"

"""The package's folders are its architecture: one subpackage per stage, data flowing one way.

The import graph is built from the source with ``ast`` (every import, also those inside functions, so
a lazy import cannot hide a cycle). A name imported from a subpackage (``from zsl_scale.features import
X``) resolves to the module its ``__init__`` maps it to.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import parse_python

PKG = Path(__file__).resolve().parents[1] / "zsl_scale"
# Lower layers first: a subpackage may import only subpackages listed before it.
LAYERS = ("core", "datasets", "imagenet", "embeddings", "features", "cada", "results", "distributed", "latents",
          "scoring", "methods", "protocol", "report", "jobs", "cli")
MAX_LINES = 400
MAX_TOP_LEVEL_MODULES = 6


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _exports(path: Path) -> dict[str, str]:
    """``_EXPORTS`` (public name → module) of a subpackage ``__init__``; ``{}`` if it has none."""
    for node in parse_python(path).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def _all(path: Path) -> set[str]:
    """The public names of a subpackage: its ``_EXPORTS`` (``__all__ = [*_EXPORTS]``), else a literal ``__all__``."""
    if _exports(path):
        return set(_exports(path))
    for node in parse_python(path).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every ``zsl_scale`` import in ``path``."""
    found = []
    for node in ast.walk(parse_python(path)):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name.startswith("zsl_scale")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zsl_scale") and not node.level:
            found += [(node.module, a.name, node.lineno) for a in node.names]
    return found


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    """Module → modules it imports (``__init__`` re-exports resolved), and rule violations found on the way."""
    modules = _modules()
    exports = {name: _exports(path) for name, path in modules.items() if path.name == "__init__.py"}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    problems = []
    for mod, path in modules.items():
        own = mod.split(".")[1] if mod.count(".") else None
        for target, name, line in _imports(path, modules):
            where = f"{path.relative_to(PKG.parent)}:{line}"
            sub = f"{target}.{name}" if name else None
            if sub in modules:  # ``from zsl_scale.jobs import stages``: a module
                resolved = sub
            elif target in exports and name in exports[target]:
                resolved = f"{target}.{exports[target][name]}"
            else:
                resolved = target
            if resolved not in modules:
                problems.append(f"{where}: imports unknown module {resolved}")
                continue
            pkg = resolved.split(".")[1] if resolved.count(".") else None
            if own and pkg and pkg != own and mod.count(".") and target != f"zsl_scale.{pkg}" and sub not in modules:
                problems.append(f"{where}: {mod} reaches into {target} (import from zsl_scale.{pkg} instead)")
            if own and pkg and pkg != own and target == f"zsl_scale.{pkg}" and name and sub not in modules \
                    and name not in _all(modules[target]):
                problems.append(f"{where}: {name} is not a public name of zsl_scale.{pkg} (__all__)")
            if path.name == "__init__.py" and resolved.startswith(f"{mod}."):
                continue  # a package's own re-exports
            graph[mod].add(resolved)
    return graph, problems


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    def pkg(m: str) -> str | None:
        return m.split(".")[1] if m.count(".") and (PKG / m.split(".")[1]).is_dir() else None

    out: dict[str, set[str]] = {}
    for mod, targets in graph.items():
        if pkg(mod):
            out.setdefault(pkg(mod), set()).update(p for t in targets if (p := pkg(t)) and p != pkg(mod))
    return out


def test_no_import_cycle_between_modules():
    graph, _ = _graph()
    assert _cycle(graph) is None, " → ".join(_cycle(graph) or [])


def test_no_import_cycle_between_subpackages_and_layers_respected():
    pkgs = _package_graph(_graph()[0])
    assert _cycle(pkgs) is None, " → ".join(_cycle(pkgs) or [])
    assert set(pkgs) == set(LAYERS), f"subpackages not in LAYERS: {sorted(set(pkgs) ^ set(LAYERS))}"
    upward = [f"{p} imports {q}" for p, qs in pkgs.items() for q in sorted(qs) if LAYERS.index(q) > LAYERS.index(p)]
    assert not upward, upward
    assert pkgs["core"] == set(), "core imports nothing else of the package"
    assert not [p for p, qs in pkgs.items() if "cli" in qs], "no stage imports cli"
    assert [p for p, qs in pkgs.items() if "jobs" in qs] in ([], ["cli"]), "only cli imports jobs"


def test_stages_use_each_others_public_names_only():
    _, problems = _graph()
    assert not problems, "\n".join(problems)


def test_public_names_resolve():
    import importlib

    for name, path in _modules().items():
        if path.name == "__init__.py" and name != "zsl_scale":
            module = importlib.import_module(name)
            for public in getattr(module, "__all__", []):
                assert getattr(module, public) is not None, f"{name}.{public}"


def test_package_shape():
    top = [p for p in PKG.glob("*.py")]
    subpackages = [p for p in PKG.iterdir() if (p / "__init__.py").is_file()]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, sorted(p.name for p in top)
    assert len(subpackages) >= 6
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


@pytest.mark.parametrize("layer", LAYERS)
def test_tests_mirror_subpackages(layer):
    assert (Path(__file__).parent / layer).is_dir(), f"tests/{layer}/ is missing"

"""Method plugins: the example plugin end to end on Flowers; every way a plugin can be broken is one error line.

A broken plugin must name itself and what is wrong, exit 2, and leave the built-in methods (and the other
plugins) usable: it is only imported when asked for.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI, run_cli
from zsl_scale.methods import PLUGIN_GROUP, get_method, method_names
from zsl_scale.methods import plugins as plugin_module
from zsl_scale.results import read_result

GOOD = '''
from zsl_scale.methods import MethodSpec, get_method
def method():
    eszsl = get_method("eszsl")
    return MethodSpec(name="{name}", display="Mine", kind="closed-form", reference="a test", make=eszsl.make,
                      grid={{"gamma": [1.0], "lam": [1.0]}})
'''
BROKEN = {
    "import error": ("import numpy\nimport not_a_module_anywhere\n", "failed to import: ModuleNotFoundError"),
    "no attribute": ("x = 1\n", "has no attribute 'method'"),
    "wrong type": ("def method():\n    return {'name': 'mine'}\n", "is a dict, not a zsl_scale.methods.MethodSpec"),
    "factory raises": ("def method():\n    raise RuntimeError('no GPU here')\n",
                       "the factory raised RuntimeError: no GPU here"),
    "missing make": ("from zsl_scale.methods import MethodSpec\nmethod = MethodSpec(name='mine', display='Mine', "
                     "kind='closed-form', reference='r', make=None, grid={'lam': [1.0]})\n",
                     "MethodSpec.make must be a callable"),
    "empty grid": ("from zsl_scale.methods import MethodSpec\nmethod = MethodSpec(name='mine', display='Mine', "
                   "kind='closed-form', reference='r', make=print)\n", "MethodSpec.grid must be a non-empty mapping"),
    "empty name": ("from zsl_scale.methods import MethodSpec\nmethod = MethodSpec(name='', display='Mine', "
                   "kind='closed-form', reference='r', make=print, grid={'lam': [1]})\n",
                   "MethodSpec.name must be a non-empty string"),
    "bad kind": ("from zsl_scale.methods import MethodSpec\nmethod = MethodSpec(name='mine', display='Mine', "
                 "kind='magic', reference='r', make=print, grid={'lam': [1]})\n", "MethodSpec.kind must be one of"),
    "built-in name": (GOOD.format(name="eszsl"), "the name 'eszsl' is a built-in method's"),
    "fit returns a tensor": (GOOD.format(name="mine").replace("make=eszsl.make", "make=Bad") +
                             "class Bad:\n    def __init__(self, data, seed): pass\n"
                             "    def fit(self, hp, on_epoch=None):\n        import torch; return torch.zeros(3)\n",
                             "fit() returned a Tensor, not a zsl_scale.methods.Fitted"),
}


def require_example() -> str:
    """The example plugin's installed version (README's install command installs it; CI must have it)."""
    try:
        return md.version("zsl-plugin-example")
    except md.PackageNotFoundError:
        msg = "examples/zsl-plugin-example is not installed (pip install -e examples/zsl-plugin-example)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_plugin_is_one_error_line_naming_it(case: str, tmp_path: Path, monkeypatch, capsys) -> None:
    module = f"broken_{case.replace(' ', '_').replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(BROKEN[case][0])
    monkeypatch.syspath_prepend(str(tmp_path))
    ref = f"{module}:method"
    # a bundle-free check: the error comes at fit (the last case) or before any data is read
    args = ["evaluate", "flo", "--method", ref, "--out", str(tmp_path / "out"), "--set", "eval.val_folds=1"]
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: plugin {ref!r}") and BROKEN[case][1] in err[0], err
    assert not list((tmp_path / "out").glob("results/*.json"))
    assert get_method("eszsl").name == "eszsl"  # the built-ins are untouched


def test_broken_entry_point_hides_nothing(monkeypatch, capsys) -> None:
    """An installed plugin whose module is gone: named in one error when asked for, invisible otherwise."""
    real = plugin_module.entry_points()
    broken = md.EntryPoint(name="ghost", value="ghost_plugin_module:method", group=PLUGIN_GROUP)
    mismatch = md.EntryPoint(name="other", value="zsl_plugin_example:method", group=PLUGIN_GROUP)
    monkeypatch.setattr(plugin_module, "entry_points", lambda: {**real, "ghost": broken, "other": mismatch})
    assert run_cli(["evaluate", "flo", "--method", "ghost"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "plugin 'ghost' (entry point 'ghost_plugin_module:method'" in err[0], err
    assert "ModuleNotFoundError" in err[0]
    assert method_names()[:7] == ["cada", "eszsl", "devise", "sje", "ale", "conse", "fclswgan"]
    assert "ghost" in method_names() and get_method("sje").display == "SJE"
    assert run_cli(["evaluate", "flo", "--method", "eszl"]) == 2  # unknown names still get the built-in hint
    assert "did you mean 'eszsl'" in capsys.readouterr().err
    if "linproto" in real:
        assert run_cli(["evaluate", "flo", "--method", "other"]) == 2
        assert "named 'linproto', not 'other'" in capsys.readouterr().err


def test_example_plugin_on_flowers_as_users_run_it(tmp_path: Path) -> None:
    """``pip install -e examples/zsl-plugin-example`` then ``zsl-scale evaluate flo --method linproto``."""
    version = require_example()
    env = {**os.environ, "ZSL_SCALE_DEBUG": ""}
    cmd = [str(Path(sys.executable).with_name("zsl-scale")), "evaluate", "flo", "--method", "linproto",
           "--out", str(tmp_path / "run"), "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = read_result(tmp_path / "run/results/flo__xlsa17__LinProto__gzsl__seed0.json")
    assert rec.selection == "validation" and rec.extra["method"] == "linproto"
    assert rec.provenance["method_plugin"] == {"entry_point": "linproto = zsl_plugin_example:method",
                                               "distribution": "zsl-plugin-example", "version": version}
    # a real method: far above chance (1/102) on both halves; 38.4 measured on 2026-12-06 (seed 0)
    assert rec.metrics.S > 30 and rec.metrics.U > 10 and rec.metrics.H > 20
    assert run_cli(["leaderboard", str(tmp_path / "run/results"), "--out", str(tmp_path / "board")]) == 0
    md_text = (tmp_path / "board/leaderboard.md").read_text()
    assert f"| LinProto [plugin zsl-plugin-example {version}] | ours | validation |" in md_text


def test_module_plugin_records_its_file_sha256_and_the_board_shows_it(tmp_path: Path, monkeypatch) -> None:
    """``--method module:factory`` that no distribution owns: provenance is the module file's sha256."""
    from tests.protocol.test_methods import planted
    from zsl_scale.core import sha256_file
    from zsl_scale.datasets.bundle import save_bundle

    module = tmp_path / "my_zsl_method.py"
    module.write_text(GOOD.format(name="mine"))
    monkeypatch.syspath_prepend(str(tmp_path))
    bundle = save_bundle(planted(), tmp_path / "planted", feature_dtype="float32")
    out = tmp_path / "run"
    assert run_cli(["evaluate", str(bundle), "--method", "my_zsl_method:method", "--device", "cpu", "--out", str(out),
                    "--set", "eval.val_folds=1"]) == 0
    rec = read_result(out / "results/planted__xlsa17__Mine__gzsl__seed0.json")
    origin = rec.provenance["method_plugin"]
    assert origin["reference"] == "my_zsl_method:method" and origin["sha256"] == sha256_file(module)
    assert rec.metrics.H is not None and rec.extra["method"] == "mine"
    assert run_cli(["leaderboard", str(out / "results"), "--out", str(tmp_path / "board")]) == 0
    board = (tmp_path / "board/leaderboard.md").read_text()
    assert f"| Mine [plugin my_zsl_method.py sha256 {origin['sha256'][:12]}] | ours | validation |" in board

"""Methods from outside the package: installed plugins (entry points) and ``package.module:factory`` references.

A plugin is a :class:`~zsl_scale.methods.MethodSpec` (or a zero-argument callable returning one) that a
package advertises in the entry-point group ``zsl_scale.methods`` under the method's name, or that a user
names directly with ``--method package.module:factory``. It runs through exactly the same protocol and
scorer as the built-in methods (docs/methods.md, "Add your method").

Why it is checked here and not trusted: a plugin is someone else's code. Every way it can be wrong (the
module does not import, the attribute is missing, the factory raises or returns something other than a
``MethodSpec``, a field is missing or of the wrong type, ``fit`` returns something other than a
``Fitted``) becomes one :class:`~zsl_scale.core.ConfigError` naming the plugin, and a broken plugin is only
loaded when it is asked for, so it never hides the built-in methods or the other plugins.

Provenance: :func:`plugin_origin` records the plugin's distribution name and version (or, for a module
that no installed distribution owns, the module file's sha256); results files carry it under
``provenance.method_plugin`` and the leaderboard shows it beside the method's name.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

from zsl_scale.core import ConfigError, sha256_file
from zsl_scale.methods.base import Fitted, Hyper, Kind, MethodSpec, OnEpoch, TrainData

PLUGIN_GROUP = "zsl_scale.methods"


def entry_points() -> dict[str, md.EntryPoint]:
    """Installed plugins by entry-point name (nothing is imported: a broken one costs nothing until used)."""
    return {ep.name.lower(): ep for ep in md.entry_points(group=PLUGIN_GROUP)}


def load_entry_point(ep: md.EntryPoint) -> MethodSpec:
    """The validated spec behind an installed plugin's entry point."""
    where = f"plugin {ep.name!r} (entry point {ep.value!r}"
    where += f" of {ep.dist.name} {ep.dist.version})" if ep.dist is not None else ")"
    obj = _load(where, ep.load)
    origin = {"entry_point": f"{ep.name} = {ep.value}"}
    if ep.dist is not None:
        origin |= {"distribution": ep.dist.name, "version": ep.dist.version}
    spec = _checked(where, obj, origin)
    if spec.name.lower() != ep.name.lower():
        raise ConfigError(f"{where}: the spec is named {spec.name!r}, not {ep.name!r} (the entry point's name "
                          "must be the method's name)")
    return spec


def load_reference(ref: str) -> MethodSpec:
    """The validated spec of ``package.module:factory`` (an attribute path after the colon)."""
    where = f"plugin {ref!r}"
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{where}: expected package.module:factory")

    def load() -> Any:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise ConfigError(f"{where}: module {module_name!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        return obj

    obj = _load(where, load)
    return _checked(where, obj, {"reference": ref, **module_origin(module_name)})


def module_origin(module_name: str) -> dict[str, str]:
    """The distribution (name, version) that installed ``module_name``'s top package, else its file's sha256."""
    top = module_name.split(".")[0]
    dists = md.packages_distributions().get(top, [])
    if dists:
        return {"distribution": dists[0], "version": md.version(dists[0])}
    module = importlib.import_module(module_name)
    path = getattr(module, "__file__", None)
    if not path:
        return {"module": module_name}
    return {"module": module_name, "file": str(Path(path).resolve()), "sha256": sha256_file(Path(path))}


def origin_label(origin: Mapping[str, Any]) -> str:
    """How the leaderboard names a plugin's origin: ``dist 1.2.0`` or ``module.py sha256 1a2b3c4d5e6f``."""
    if origin.get("distribution"):
        return f"plugin {origin['distribution']} {origin.get('version', '')}".strip()
    if origin.get("sha256"):
        return f"plugin {Path(str(origin.get('file', ''))).name} sha256 {str(origin['sha256'])[:12]}"
    return f"plugin {origin.get('module', '?')}"


def _load(where: str, load: Callable[[], Any]) -> Any:
    """Run a plugin's import; whatever goes wrong is one line naming the plugin."""
    try:
        return load()
    except ConfigError:
        raise
    except Exception as exc:  # its code, its failure: any exception type, reported in one line
        raise ConfigError(f"{where} failed to import: {type(exc).__name__}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _checked(where: str, obj: Any, origin: dict[str, str]) -> MethodSpec:
    """``obj`` (a spec or a factory returning one) as a spec with ``origin`` and a type-checking trainer."""
    if not isinstance(obj, MethodSpec) and callable(obj) and not isinstance(obj, type):
        try:
            obj = obj()
        except Exception as exc:  # the factory is plugin code
            raise ConfigError(f"{where}: the factory raised {type(exc).__name__}: {_first_line(exc)}") from exc
    if not isinstance(obj, MethodSpec):
        raise ConfigError(f"{where} is a {type(obj).__name__}, not a zsl_scale.methods.MethodSpec "
                          "(or a factory returning one)")
    for name in ("name", "display", "reference"):
        if not isinstance(getattr(obj, name), str) or not getattr(obj, name):
            raise ConfigError(f"{where}: MethodSpec.{name} must be a non-empty string")
    if obj.kind not in get_args(Kind):
        raise ConfigError(f"{where}: MethodSpec.kind must be one of {', '.join(get_args(Kind))}, not {obj.kind!r}")
    if obj.protocol != "generic" or not callable(obj.make):
        raise ConfigError(f"{where}: MethodSpec.make must be a callable make(data, seed) → trainer "
                          "(the 'cada' protocol is the built-in CADA-VAE's only)")
    if not isinstance(obj.grid, Mapping) or not obj.grid:
        raise ConfigError(f"{where}: MethodSpec.grid must be a non-empty mapping of hyper-parameter → list of "
                          "values")
    bad = [k for k, v in obj.grid.items() if not isinstance(v, list | tuple) or not v]
    if bad:
        raise ConfigError(f"{where}: MethodSpec.grid[{bad[0]!r}] must be a non-empty list of values")
    return replace(obj, grid={k: list(v) for k, v in obj.grid.items()}, make=_guarded(where, obj.make),
                   origin=origin)


def _guarded(where: str, make: Callable[[TrainData, int], Any]) -> Callable[[TrainData, int], Any]:
    """``make`` whose trainers must have ``fit`` and return :class:`Fitted` (else one line naming the plugin)."""

    class Guarded:
        def __init__(self, data: TrainData, seed: int) -> None:
            self.inner = make(data, seed)
            if not callable(getattr(self.inner, "fit", None)):
                raise ConfigError(f"{where}: make(data, seed) returned a {type(self.inner).__name__} without a "
                                  "fit(hp, on_epoch) method")

        def fit(self, hp: Hyper, on_epoch: OnEpoch | None = None) -> Fitted:
            out = self.inner.fit(hp, on_epoch)
            if not isinstance(out, Fitted):
                raise ConfigError(f"{where}: fit() returned a {type(out).__name__}, not a "
                                  "zsl_scale.methods.Fitted")
            return out

    return Guarded

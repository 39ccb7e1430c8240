"""Plugins: everything sfteval can be extended with is found through entry points, the built-ins included.

A package extends sfteval by declaring entry points in its own ``pyproject.toml``; sfteval declares its
built-ins the same way, so a plugin is a first-class citizen and nothing is special-cased:

- ``sfteval.backends``: name -> a :class:`~sfteval.harness.backends.base.Backend` subclass
- ``sfteval.importers``: name -> an :class:`~sfteval.harness.importers.base.Importer`
- ``sfteval.rules``: name -> a rule function ``(item, answer) -> RuleOutcome``
- ``sfteval.judge_configs``: name -> a folder of judge-config YAML files (a module: its own folder)
- ``sfteval.stages``: name -> a :class:`~sfteval.harness.stages.base.Stage` subclass
- ``sfteval.executors``: name -> a Backend subclass that runs another backend's requests elsewhere (``--ray``)

Only the chosen plugin is imported (``sfteval --help`` stays fast). A built-in name cannot be taken over by a
plugin: the built-in wins and ``sfteval plugins`` shows the other as shadowed. Run from a source checkout
(no installed metadata, or stale editable metadata), the built-ins are read from the checkout's
``pyproject.toml``, the one place they are declared.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from pathlib import Path
from typing import Any, Optional

#: plugin kind -> entry-point group
GROUPS: dict[str, str] = {
    "backends": "sfteval.backends",
    "importers": "sfteval.importers",
    "rules": "sfteval.rules",
    "judge_configs": "sfteval.judge_configs",
    "stages": "sfteval.stages",
    "executors": "sfteval.executors",
}
SELF = "sfteval"
_CHECKOUT_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


class PluginError(RuntimeError):
    """A plugin that cannot be found or loaded; the message names the plugin and where it came from."""


@dataclass(frozen=True)
class Plugin:
    kind: str
    name: str
    target: str  #: "module:attribute" or "module"
    distribution: str  #: the distribution that declares it ("sfteval" for the built-ins)
    shadowed: bool = False  #: a plugin whose name a built-in already uses (never loaded)

    @property
    def builtin(self) -> bool:
        return self.distribution == SELF

    def load(self) -> Any:
        module_name, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name.strip())
            for part in filter(None, attr.strip().split(".")):
                obj = getattr(obj, part)
        except ImportError as e:
            raise PluginError(f"{self.kind} plugin {self.name!r} ({self.target}, from {self.distribution}) needs a "
                              f"package that is not installed: {e}") from e
        except AttributeError as e:
            raise PluginError(f"{self.kind} plugin {self.name!r}: {self.target} does not exist ({e})") from e
        return obj


def _group(kind: str) -> str:
    if kind not in GROUPS:
        raise PluginError(f"unknown plugin kind {kind!r} (kinds: {', '.join(GROUPS)})")
    return GROUPS[kind]


def _checkout_entry_points() -> Optional[dict[str, dict[str, str]]]:
    """The built-ins as the source checkout's pyproject.toml declares them (None when not in a checkout)."""
    if not _CHECKOUT_PYPROJECT.is_file():
        return None
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed metadata is all there is
        return None
    data = tomllib.loads(_CHECKOUT_PYPROJECT.read_text(encoding="utf-8"))
    if data.get("project", {}).get("name") != SELF:
        return None
    return data["project"].get("entry-points", {})


@lru_cache(maxsize=None)
def _builtins(kind: str) -> dict[str, str]:
    declared = _checkout_entry_points()
    if declared is not None:
        return dict(declared.get(_group(kind), {}))
    try:
        eps = distribution(SELF).entry_points
    except PackageNotFoundError:
        raise PluginError("sfteval is neither installed nor run from its source checkout: no built-in "
                          "plugins can be found (pip install sfteval)") from None
    return {ep.name: ep.value for ep in eps if ep.group == _group(kind)}


@lru_cache(maxsize=None)
def _discovered(kind: str) -> tuple[Plugin, ...]:
    builtin = _builtins(kind)
    found = [Plugin(kind, name, target, SELF) for name, target in sorted(builtin.items())]
    seen = set(builtin)
    for ep in sorted(entry_points(group=_group(kind)), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "?"
        if dist.lower() == SELF:
            continue  # the built-ins, already taken from their declaration
        found.append(Plugin(kind, ep.name, ep.value, dist, shadowed=ep.name in seen))
        seen.add(ep.name)
    return tuple(found)


_registered: dict[str, dict[str, Plugin]] = {kind: {} for kind in GROUPS}


def register(kind: str, name: str, target: str, distribution: str = "registered at run time") -> None:
    """Add a plugin from code (a test, a notebook) without packaging it; ``target`` is 'module:attribute'."""
    _group(kind)
    _registered[kind][name] = Plugin(kind, name, target, distribution)


def plugins(kind: str) -> list[Plugin]:
    """Every plugin of a kind, built-ins first, then installed ones, then those registered at run time."""
    found = list(_discovered(kind))
    names = {p.name for p in found if not p.shadowed}
    found += [p for p in _registered[kind].values() if p.name not in names]
    return found


def names(kind: str) -> list[str]:
    return sorted(p.name for p in plugins(kind) if not p.shadowed)


def find(kind: str) -> dict[str, Plugin]:
    return {p.name: p for p in plugins(kind) if not p.shadowed}


@lru_cache(maxsize=None)
def _load_cached(plugin: Plugin) -> Any:
    return plugin.load()


def load(kind: str, name: str) -> Any:
    """The object a plugin names (imported once); :class:`PluginError` naming the known ones if unknown."""
    plugin = find(kind).get(name)
    if plugin is None:
        raise PluginError(f"unknown {kind[:-1].replace('_', ' ')} {name!r} (known: {', '.join(names(kind)) or 'none'})")
    return _load_cached(plugin)


def load_all(kind: str) -> dict[str, Any]:
    return {p.name: _load_cached(p) for p in plugins(kind) if not p.shadowed}


def refresh() -> None:
    """Forget what was discovered (after installing a plugin into the running interpreter)."""
    _builtins.cache_clear()
    _discovered.cache_clear()
    _load_cached.cache_clear()
    importlib.invalidate_caches()

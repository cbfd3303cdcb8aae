"""Backend discovery through the ``polyingress.backends`` entry-point group."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from polyingress.core import hookspecs

__all__ = ["ENTRY_POINT_GROUP", "BackendPlugin", "discover", "load_backend", "plugin_manager"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "polyingress.backends"
OWN_DISTRIBUTION = "polyingress"
BUILTIN_NAMES = ("nginx", "haproxy", "traefik")


class PluginError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BackendPlugin:
    name: str
    distribution: str
    version: str
    entry_point: metadata.EntryPoint


def discover() -> dict[str, BackendPlugin]:
    """Installed backend plugins by name. A third-party distribution cannot shadow a built-in
    name: for ``nginx``, ``haproxy`` and ``traefik`` only polyingress's own entry point counts.
    """
    found: dict[str, BackendPlugin] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        dname = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        if ep.name in BUILTIN_NAMES and dname != OWN_DISTRIBUTION:
            log.warning(
                "ignoring backend %r from distribution %s: the name is reserved for the "
                "built-in backend",
                ep.name,
                dname,
            )
            continue
        if ep.name in found and found[ep.name].distribution != dname:
            log.warning(
                "backend %r is provided by both %s and %s; using %s",
                ep.name,
                found[ep.name].distribution,
                dname,
                found[ep.name].distribution,
            )
            continue
        found[ep.name] = BackendPlugin(ep.name, dname, version, ep)
    return dict(sorted(found.items()))


def load_backend(name: str) -> tuple[BackendPlugin, Any]:
    plugins = discover()
    if name not in plugins:
        known = ", ".join(plugins) or "none"
        raise PluginError(f"unknown backend {name!r}; installed backends: {known}")
    plugin = plugins[name]
    try:
        obj = plugin.entry_point.load()
    except Exception as exc:  # a broken third-party plugin must not take the CLI down silently
        raise PluginError(f"backend {name!r} failed to load: {exc!r}") from exc
    return plugin, obj


def plugin_manager(*plugins: tuple[str, Any]) -> pluggy.PluginManager:
    """A plugin manager with our hookspecs and the given (name, plugin object) registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, obj in plugins:
        pm.register(obj, name=name)
    pm.check_pending()
    if os.environ.get("POLYINGRESS_TRACE_HOOKS") == "1":

        def before(hook_name: str, impls: Any, kwargs: Any) -> None:
            log.info("hook %s(%s)", hook_name, ", ".join(sorted(kwargs)))

        def after(outcome: Any, hook_name: str, impls: Any, kwargs: Any) -> None:
            log.info("hook %s done", hook_name)

        pm.add_hookcall_monitoring(before, after)
    return pm

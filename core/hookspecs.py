"""The backend plugin API: the manual for writing a polyingress backend.

A backend plugin is a module (or object) with functions marked ``@hookimpl`` (from
``polyingress.core``), published in the ``polyingress.backends`` entry-point group under the
name users pass to ``--backend``. The built-in nginx, haproxy and traefik backends are found
through that same group. Only the selected backend is loaded and registered for ``run`` and
``render``; ``polyingress plugins`` loads each one to list it.

The short way: write a class that follows :class:`polyingress.core.ProxyBackend` (start, apply,
supervise, health, stop) and publish ``backend_plugin(info=..., create=YourClass, render=...)``
(:mod:`polyingress.core.kit`): it provides every hook below for you. The kit also has the
managed-process helper, the "wait until served" helper and ``TransientApplyError``. The hooks
are documented one by one for those who need them directly.

Lifecycle of ``polyingress run --backend NAME``::

    polyingress_add_options(parser)           # every loaded plugin, before parsing argv
    polyingress_create_backend(settings)      # -> your backend object (kept by the core)
    polyingress_start(backend, model)         # start the proxy, serving the first model
    loop:
        polyingress_apply(backend, model, previous, diff)  # each new model (one worker)
        polyingress_push_endpoints(...)           # optional: endpoint-only changes that
                                                  # arrive while an apply runs (a 2nd thread)
        polyingress_supervise(backend, model)             # about once a second
        polyingress_health(backend)                       # on /healthz and /readyz
    polyingress_stop(backend)                 # SIGTERM/SIGINT: stop, leave no process behind

All lifecycle hooks are called from ONE worker thread of the core (never concurrently with each
other), except ``polyingress_health``, which is called from the health server's thread and must
only read state, and ``polyingress_push_endpoints``, called while ``polyingress_apply`` runs.
Implementations may accept a subset of a hook's arguments (pluggy rule). Hook names are stable;
arguments may be added, never renamed or removed without a deprecation cycle.

Models are immutable (:class:`polyingress.core.RouteModel`); every string that comes from a
Kubernetes object has been validated by the core (hosts, paths, names), but a backend must still
quote every string through its own single quoting function before it reaches proxy config.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import pluggy

from polyingress.core.api import ApplyResult, BackendInfo, HealthReport, RenderedConfig, RunSettings
from polyingress.core.pipeline.builder import BuildResult
from polyingress.core.pipeline.diff import ModelDiff
from polyingress.core.pipeline.model import RouteModel

if TYPE_CHECKING:
    from polyingress.core.kit import ProxyBackend

PROJECT = "polyingress"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------------------------
# Startup: options, identity, creation
# ---------------------------------------------------------------------------------------------


@hookspec
def polyingress_add_options(parser: argparse.ArgumentParser) -> None:
    """Add the backend's own command-line options to ``run`` and ``render``.

    Called once per loaded plugin, before the command line is parsed. Prefix option names with
    the backend's name (``--nginx-lua``, ``--traefik-binary``) so that plugins never collide.
    The parsed values reach the backend through ``RunSettings.options`` (an
    ``argparse.Namespace``). For numbers and addresses, use the core's value types
    (``port_number``, ``positive_number``, ``non_negative_number``, ``non_negative_int``,
    ``ip_address``): a bad value is then a usage error naming the flag. Return value ignored.
    """


@hookspec
def polyingress_add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add backend-specific subcommands (e.g. ``polyingress traefik static-config``).

    Called with the CLI's subparsers when the first word of the command line is the backend's
    name. Set ``func`` on the parser with ``set_defaults(func=callable)``; the callable gets the
    parsed ``argparse.Namespace`` and returns the exit code. Return value ignored.
    """


@hookspec(firstresult=True)
def polyingress_backend_info() -> BackendInfo | None:
    """Describe the backend for ``polyingress plugins``.

    Return a :class:`BackendInfo` (name, version, description, and ``features``: short
    strings such as ``"runtime-endpoints"`` or ``"lua: unavailable (static upstreams)"``).
    ``settings`` maps the ConfigMap keys the backend applies (of the core's allow-list,
    ``polyingress.core.SETTINGS``) to what each sets in the proxy; ``run`` and ``render``
    report every other key the ConfigMap sets as not applied. The backend reads the typed
    values from ``model.settings`` (``GlobalSettings``: durations in milliseconds, sizes in
    bytes) and formats them (``format_duration``, ``format_size``); it never parses them.
    First result wins; only called with the one plugin registered.
    """


@hookspec(firstresult=True)
def polyingress_create_backend(settings: RunSettings) -> ProxyBackend | None:
    """Create the backend object for this run; called once, before ``polyingress_start``.

    ``settings`` carries the listen addresses/ports, the workdir (the backend owns it: pid
    files, sockets, generated config, keys) and the plugin's parsed options. Do not start
    processes here. Return the backend object (a :class:`polyingress.core.ProxyBackend`; a
    plugin that implements the lifecycle hooks itself may return any object): the core passes
    it back as ``backend`` to every other lifecycle hook. First result wins.
    """


# ---------------------------------------------------------------------------------------------
# Running: start, apply, supervise, health, stop
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def polyingress_start(backend: ProxyBackend, model: RouteModel) -> ApplyResult | None:
    """Start the proxy (or attach to it) and make it serve ``model``.

    Return only once the proxy serves ``model`` (the core reports ready after this returns),
    with an :class:`ApplyResult` whose ``reasons`` are ``(ReloadReason.START,)``.
    Raise :class:`polyingress.core.ApplyError` when the proxy cannot start with this model; the
    core then retries with backoff. First result wins.
    """


@hookspec(firstresult=True)
def polyingress_apply(
    backend: ProxyBackend, model: RouteModel, previous: RouteModel, diff: ModelDiff
) -> ApplyResult | None:
    """Make the running proxy serve ``model``; ``previous`` is what it serves now.

    ``diff`` says precisely what changed (see :class:`polyingress.core.ModelDiff`): decide
    from it whether the change can be made at run time or needs a reload, and say which in the
    returned :class:`ApplyResult`: ``reloaded``, and for a reload its ``reasons`` as members
    of :class:`polyingress.core.ReloadReason` (``diff_reasons(diff)`` gives those a diff
    has; add ``RUNTIME_FAILED``, ``PROCESS_RESTARTED``... for what only the backend knows).
    The reasons label the ``polyingress_reloads_total`` metric, so they are a closed set: put
    free text (counts, names, error messages) in ``detail``, which is logged; a string that
    is not a member's value is counted as ``other``. Never called with an empty diff. Return
    only once the proxy serves ``model``.

    On failure raise :class:`polyingress.core.ApplyError` (naming the Ingresses at fault when
    known) and leave the proxy serving ``previous``: the core keeps ``previous`` as the last
    good model, reports the error, and does not retry the same model again. Raise
    :class:`polyingress.core.TransientApplyError` when the proxy could not take the model now
    (busy, restarting): the core retries the same model after a pause. First result wins.
    """


@hookspec(firstresult=True)
def polyingress_push_endpoints(
    backend: ProxyBackend, model: RouteModel, previous: RouteModel, diff: ModelDiff
) -> ApplyResult | None:
    """Make an endpoint change live while ``polyingress_apply`` is still running (optional).

    An apply that takes long (a reload) would hold every change behind it, endpoint changes
    too. While ``polyingress_apply`` runs, the core keeps building the models that arrive, and
    for each that changes the endpoints of backends it shares with ``previous`` (the model
    being applied, then the last one built) calls this hook, from a second thread, concurrently
    with ``polyingress_apply``. ``diff`` names those backends only (``diff.endpoints_only``);
    a routing change in the same model waits for the next ``polyingress_apply``. Make the
    endpoints of those backends in ``model`` live at run time and return an
    :class:`ApplyResult` (``runtime_changes``), or return None to leave it to the next
    ``polyingress_apply``: the core calls that anyway, with the same model, once the running
    apply returned (make it cheap when the endpoints are live already). Never reload or
    restart here, never raise for a refusal (return None), and guard what this hook shares
    with ``polyingress_apply``. The kit provides it for a backend with a ``push_endpoints``
    method (``backend_plugin(..., push_endpoints=True)``). First result wins.
    """


@hookspec(firstresult=True)
def polyingress_supervise(backend: ProxyBackend, model: RouteModel) -> str | None:
    """Check the proxy process; restart it if it died, and make it serve ``model`` again.

    Called about once a second with the last successfully applied model. Return None when all
    is well, or a short sentence saying what was repaired ("nginx exited with code 1;
    restarted"), which the core logs and counts. Restarts should back off. First result wins.
    """


@hookspec(firstresult=True)
def polyingress_health(backend: ProxyBackend) -> HealthReport | None:
    """Report the proxy's health for ``/healthz`` and ``/readyz``.

    Called from the health server's thread, concurrently with the lifecycle hooks: read
    state only, never block for long. ``live`` False fails ``/healthz``; ``ready`` False
    fails ``/readyz``. First result wins.
    """


@hookspec(firstresult=True)
def polyingress_stop(backend: ProxyBackend) -> None:
    """Stop the proxy gracefully (let in-flight requests finish, with a bound), leaving no
    process behind. Called once at shutdown, also after a failed start. Return value ignored.
    """


# ---------------------------------------------------------------------------------------------
# Dry run
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def polyingress_render(settings: RunSettings, model: RouteModel) -> RenderedConfig | None:
    """Render the configuration the backend would apply for ``model``, without side effects.

    Used by ``polyingress render`` and by golden-file tests: return a
    :class:`RenderedConfig` whose ``files`` are (relative name, text) pairs, byte-identical for
    equal models and settings. Must not write files or start processes; secrets (private
    keys) must be replaced by a placeholder in ``files``, which is printed. Fill ``written``
    with the files exactly as ``run`` writes them into ``settings.workdir`` (keys included,
    each :class:`RenderedFile` with its mode): ``polyingress render --output DIR`` writes them
    (values a process makes anew, such as a self-signed fallback certificate, are made anew).
    First result wins.
    """


# ---------------------------------------------------------------------------------------------
# Observers (any number of plugins; all are called)
# ---------------------------------------------------------------------------------------------


@hookspec
def polyingress_model_built(result: BuildResult) -> None:
    """Called after every model build with the model and every problem found, before apply.

    For observers (metrics, audit logs, status writers). Must not modify anything and must
    return quickly. Return value ignored.
    """


@hookspec
def polyingress_applied(model: RouteModel, diff: ModelDiff, result: ApplyResult) -> None:
    """Called after a model was applied successfully. For observers. Return value ignored."""

"""The ``polyingress`` command line.

Flags are named as ingress-nginx names them where the concept is the same; they are a public
interface (users script them): rename nothing.

Every mistake in a command line or in what it names (a missing directory, no cluster
credentials, a port in use) ends in one line on stderr and a non-zero exit: 2 for the command
line itself, 1 when the inputs or the proxy failed (``--log-level debug`` also logs the
traceback of a failed start). Any other traceback is a bug in polyingress.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from polyingress.core.api import RenderedFile, RunSettings
from polyingress.core.argtypes import (
    address_list,
    ip_address,
    namespaced_name,
    non_negative_int,
    port_number,
)
from polyingress.core.files import write_atomic
from polyingress.core.pipeline.annotations import validate_prefix
from polyingress.core.pipeline.builder import (
    DEFAULT_CONTROLLER_CLASS,
    BuildOptions,
    BuildResult,
    _our_classes,
    build_model,
)
from polyingress.core.pipeline.gateway import gateway_addresses, served_features, with_addresses
from polyingress.core.pipeline.settings import SettingsSupport
from polyingress.core.pipeline.store import ObjectStore, Snapshot
from polyingress.core.runtime.plugins import PluginError, discover, load_backend, plugin_manager
from polyingress.core.sources.kubernetes.source import add_kube_options
from polyingress.core.sources.manifests import ManifestError

__all__ = ["CommandError", "main"]

log = logging.getLogger("polyingress")


class CommandError(Exception):
    """A mistake the user can fix: printed as one line, exit ``code`` (no traceback)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _version() -> str:
    try:
        return importlib.metadata.version("polyingress")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _prefix(value: str) -> str:
    try:
        return validate_prefix(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_source_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("objects")
    g.add_argument(
        "--manifests",
        type=Path,
        metavar="DIR",
        help="read Kubernetes objects from *.yaml/*.yml/*.json files below DIR (watched)",
    )
    g.add_argument("--controller-class", default=DEFAULT_CONTROLLER_CLASS, metavar="C")
    g.add_argument("--watch-ingress-without-class", action="store_true")
    g.add_argument("--default-backend-service", type=namespaced_name, metavar="NAMESPACE/NAME")
    g.add_argument("--configmap", type=namespaced_name, metavar="NAMESPACE/NAME")
    g.add_argument(
        "--annotations-prefix",
        type=_prefix,
        default="polyingress.io",
        metavar="PREFIX",
        help="read per-Ingress settings from PREFIX/<key> annotations (ingress-nginx's "
        "nginx.ingress.kubernetes.io/<key> is accepted too)",
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("proxy")
    g.add_argument("--bind", type=ip_address, default="0.0.0.0", metavar="ADDR")
    g.add_argument("--http-port", type=port_number, default=8080, metavar="P")
    g.add_argument("--https-port", type=port_number, default=8443, metavar="Q")
    g.add_argument(
        "--http-redirect-port",
        type=port_number,
        metavar="P",
        help="the HTTP port clients reach, named in redirects to HTTP (default: --http-port)",
    )
    g.add_argument(
        "--https-redirect-port",
        type=port_number,
        metavar="Q",
        help="the HTTPS port clients reach, named in redirects to HTTPS, such as ssl-redirect's "
        "(default: --https-port; 443 behind a Service that maps 443 to --https-port)",
    )
    g.add_argument("--workdir", type=Path, default=Path("workdir"), metavar="DIR")
    g.add_argument("--health-port", type=port_number, default=10254, metavar="H")
    g.add_argument("--health-bind", default="127.0.0.1", metavar="ADDR")
    g.add_argument(
        "--debounce-ms",
        type=non_negative_int,
        default=50,
        metavar="MS",
        help="coalesce changes arriving within MS milliseconds into one apply (default 50)",
    )
    g.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


DASHBOARD_PORT = 10260


def _add_dashboard_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dashboard")
    g.add_argument(
        "--dashboard",
        action="store_true",
        help="serve the read-only dashboard (where every request goes, problems, applies) on "
        "--dashboard-bind:--dashboard-port",
    )
    g.add_argument(
        "--dashboard-bind",
        type=ip_address,
        default="127.0.0.1",
        metavar="ADDR",
        help="the dashboard's address (default 127.0.0.1: this machine only)",
    )
    g.add_argument(
        "--dashboard-port",
        type=port_number,
        default=DASHBOARD_PORT,
        metavar="D",
        help=f"the dashboard's port (default {DASHBOARD_PORT})",
    )


def _url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/"


def _build_options(args: argparse.Namespace, pm: Any = None, now: str = "") -> BuildOptions:
    """The build options of a command; with the plugin manager of a ``--backend``, the Gateway
    API features that backend serves (without one: every feature) and the ConfigMap keys it
    applies (without one: not checked; its ``BackendInfo.settings``)."""
    info = None
    if pm is not None and getattr(args, "backend", None):
        info = pm.hook.polyingress_backend_info()
    support = None if info is None else SettingsSupport(info.name, frozenset(info.settings))
    return BuildOptions(
        controller_class=args.controller_class,
        watch_ingress_without_class=args.watch_ingress_without_class,
        default_backend_service=args.default_backend_service,
        configmap=args.configmap,
        annotations_prefix=args.annotations_prefix,
        features=None if info is None else served_features(info.gateway_features),
        backend=str(getattr(args, "backend", None) or ""),
        now=now,
        settings_support=support,
        http_port=_public_port(args, "http", 80),
        https_port=_public_port(args, "https", 443),
    )


def _public_port(args: argparse.Namespace, scheme: str, default: int) -> int:
    """The port clients reach ``scheme`` on: ``--<scheme>-redirect-port``, else
    ``--<scheme>-port``, else ``default`` (commands without ports)."""
    given: int | None = getattr(args, f"{scheme}_redirect_port", None)
    if given is not None:
        return given
    port: int = getattr(args, f"{scheme}_port", default)
    return port


def _settings(args: argparse.Namespace, pm: Any = None) -> RunSettings:
    return RunSettings(
        backend=args.backend,
        bind=getattr(args, "bind", "0.0.0.0"),
        http_port=getattr(args, "http_port", 8080),
        https_port=getattr(args, "https_port", 8443),
        http_redirect_port=getattr(args, "http_redirect_port", None),
        https_redirect_port=getattr(args, "https_redirect_port", None),
        workdir=Path(getattr(args, "workdir", Path("workdir"))).resolve(),
        health_port=getattr(args, "health_port", 10254),
        build=_build_options(args, pm),
        options=args,
    )


def _load_store(args: argparse.Namespace) -> tuple[ObjectStore, Any]:
    """The objects below ``--manifests``; the caller reports ``source.file_errors`` and
    ``source.file_warnings`` (validate prints them, run logs them)."""
    from polyingress.core.sources.manifests import ManifestSource

    if args.manifests is None:
        raise CommandError(
            f"{args.command} needs --manifests DIR"
            + (" (`run` without it reads the Kubernetes API)" if args.command == "run" else "")
        )
    store = ObjectStore()
    source = ManifestSource(
        args.manifests, store, debounce_ms=max(1, getattr(args, "debounce_ms", 50) // 2)
    )
    try:
        source.load()
    except ManifestError as exc:
        raise CommandError(f"--manifests {exc}") from None
    return store, source


def _without_class(result: BuildResult, snapshot: Snapshot, opts: BuildOptions) -> list[str]:
    """Why each class-less Ingress is not served, and how to serve it."""
    if not result.without_class:
        return []
    ours, _default = _our_classes(snapshot, opts)
    if ours:
        named = " or ".join(sorted(ours))
        use = f"set spec.ingressClassName: {named}"
    else:
        use = (
            f"create an IngressClass with spec.controller: {opts.controller_class} "
            "and name it in spec.ingressClassName"
        )
    return [
        f"{ref}: not served: it names no IngressClass (no spec.ingressClassName, no "
        f"kubernetes.io/ingress.class annotation) and no IngressClass of controller "
        f"{opts.controller_class} is the default; to serve it, {use}, or run with "
        "--watch-ingress-without-class"
        for ref in result.without_class
    ]


# -- commands ---------------------------------------------------------------------------------


def cmd_plugins(args: argparse.Namespace) -> int:
    for name, plugin in discover().items():
        try:
            _p, obj = load_backend(name)
            pm = plugin_manager((name, obj))
            info = pm.hook.polyingress_backend_info()
        except Exception as exc:
            print(f"{name}\t{plugin.version}\t{plugin.distribution}\tfailed to load: {exc}")
            continue
        features = ", ".join(info.features) if info is not None else ""
        desc = info.description if info is not None else ""
        print(f"{name}\t{plugin.version}\t{plugin.distribution}\t{desc}")
        if features:
            print(f"\t{features}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    store, source = _load_store(args)
    snapshot = store.snapshot()
    opts = _build_options(args)
    result = build_model(snapshot, opts)
    failed = False
    for _path, err in sorted(source.file_errors.items()):
        print(f"error: {err}")
        failed = True
    for _path, warnings in sorted(source.file_warnings.items()):
        for warning in warnings:
            print(f"warning: {warning}")
    for p in result.problems:
        print(f"{p.severity.value}: {p}")
        failed = failed or p.severity.value == "error"
    for line in _without_class(result, snapshot, opts):
        print(f"warning: {line}")
    routes = sum(len(v.routes) for v in result.model.vhosts)
    other = len(result.ignored) - len(result.without_class)
    print(
        f"{len(result.served)} Ingresses served, {len(result.rejected)} rejected, "
        f"{other} of other classes, {len(result.without_class)} without a class; "
        f"{len(result.model.vhosts)} hosts, {routes} routes, {len(result.model.backends)} backends"
    )
    gateway_line = _gateway_summary(result.statuses)
    if gateway_line:
        print(gateway_line)
    return 1 if failed else 0


def _gateway_summary(statuses: tuple[dict[str, Any], ...]) -> str:
    """One line on the Gateway API objects of ours (none: no line, so the output of a world
    without them stays as it was)."""
    if not statuses:
        return ""
    kinds = [d["kind"] for d in statuses]
    accepted = sum(
        1
        for d in statuses
        if d["kind"] == "HTTPRoute"
        and all(
            c["status"] == "True"
            for p in d["status"]["parents"]
            for c in p["conditions"]
            if c["type"] == "Accepted"
        )
    )
    routes = kinds.count("HTTPRoute")
    return (
        f"{kinds.count('GatewayClass')} GatewayClasses, {kinds.count('Gateway')} Gateways; "
        f"{routes} HTTPRoutes: {accepted} accepted, {routes - accepted} not accepted "
        "(polyingress status says why)"
    )


def cmd_status(args: argparse.Namespace, pm: Any) -> int:
    """Print the status the controller would write for every GatewayClass, Gateway and
    HTTPRoute of ours, as one YAML list (the same computation as in Kubernetes mode)."""
    import yaml

    store, source = _load_store(args)
    for _path, err in sorted(source.file_errors.items()):
        print(f"polyingress: {err}", file=sys.stderr)
    if source.file_errors:
        return 1
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = build_model(store.snapshot(), _build_options(args, pm, now=now))
    documents = with_addresses(result.statuses, gateway_addresses(args.publish_status_address))
    sys.stdout.write(yaml.safe_dump(documents, sort_keys=False, width=100))
    return 0


def _cluster_objects(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every object the controller reads, listed once from the cluster (``run``'s source)."""
    from polyingress.core.sources.kubernetes.source import KubeOptions, KubeSource

    runtime = _kube_runtime(argparse.Namespace(**{**vars(args), "backend": ""}))
    opts: KubeOptions = runtime.opts
    api = runtime.api
    store = ObjectStore()
    source = KubeSource(api, store, opts)
    try:
        source.start(wait=True)
    except Exception as exc:
        log.debug("reading the cluster failed", exc_info=True)
        raise CommandError(f"cannot read the cluster: {_one_line(exc)}", code=1) from None
    finally:
        source.stop()
    snapshot = store.snapshot()
    return [dict(o) for kind in snapshot.objects for o in snapshot.of(kind).values()]


def cmd_migrate(args: argparse.Namespace) -> int:
    """Per Ingress and backend: which ingress-nginx annotations are honoured, partial or
    unsupported; exit 1 when anything would behave otherwise than under ingress-nginx."""
    from polyingress.core.runtime.matrix import features_of
    from polyingress.core.runtime.migrate import (
        changes_behaviour,
        migration_report,
        render_report,
    )

    names = list(dict.fromkeys(args.backend or sorted(discover())))
    if not names:
        raise CommandError("no backend is installed (polyingress plugins lists them)", code=1)
    backends: dict[str, frozenset[str] | None] = {}
    for name in names:
        try:
            backends[name] = features_of(name)
        except PluginError as exc:
            raise CommandError(str(exc)) from None
    if args.manifests is not None:
        store, source = _load_store(args)
        for _path, err in sorted(source.file_errors.items()):
            print(f"error: {err}")
        objects = [
            dict(o) for kind in store.snapshot().objects for o in store.snapshot().of(kind).values()
        ]
        failed = bool(source.file_errors)
    else:
        objects = _cluster_objects(args)
        failed = False
    reports = migration_report(
        objects,
        backends,
        prefix=args.annotations_prefix,
        ports=(args.http_port, args.https_port),
    )
    sys.stdout.write(render_report(reports, names))
    return 1 if failed or changes_behaviour(reports) else 0


def _output_path(directory: Path, name: str) -> Path:
    relative = PurePosixPath(name)
    if relative.is_absolute() or not relative.parts or ".." in relative.parts:
        raise CommandError(f"the backend named a file outside --output: {name!r}", code=1)
    return directory.joinpath(*relative.parts)


def _write_output(directory: Path, files: tuple[RenderedFile, ...]) -> None:
    """Write every file below ``directory`` with its mode (a key is never readable by others,
    not even for an instant: write_atomic sets the mode before writing)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for f in files:
            path = _output_path(directory, f.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, f.text, mode=f.mode)
    except OSError as exc:
        where = exc.filename or directory
        raise CommandError(f"--output {where}: {exc.strerror or exc}", code=1) from None


def cmd_render(args: argparse.Namespace, pm: Any) -> int:
    store, source = _load_store(args)
    if source.file_errors:
        for _path, err in sorted(source.file_errors.items()):
            print(f"polyingress: {err}", file=sys.stderr)
        return 1
    for _path, warnings in sorted(source.file_warnings.items()):
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
    settings = _settings(args, pm)
    result = build_model(store.snapshot(), settings.build)
    for p in result.problems:
        print(f"{p.severity.value}: {p}", file=sys.stderr)
    rendered = pm.hook.polyingress_render(settings=settings, model=result.model)
    if rendered is None:
        print(f"polyingress: backend {args.backend} cannot render", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(rendered.text())
        return 0
    files = rendered.output()
    _write_output(args.output, files)
    print(f"{len(files)} files written to {args.output}", file=sys.stderr)
    return 0


def _kube_runtime(args: argparse.Namespace) -> Any:
    from kubernetes.config.config_exception import ConfigException

    from polyingress.core.sources.kubernetes.source import KubeRuntime

    try:
        return KubeRuntime.from_args(args)
    except Exception as exc:  # the kubernetes client raises many kinds; each means the same
        log.debug("loading Kubernetes credentials failed", exc_info=True)
        without = "use --manifests DIR to run without a cluster"
        if args.kubeconfig:
            if isinstance(exc, ConfigException):
                reason = _one_line(exc).rstrip(".")
            elif isinstance(exc, OSError):
                reason = exc.strerror or _one_line(exc)
            else:  # the client's parser fails with TypeError, KeyError ... on other files
                reason = "not a kubeconfig file"
            raise CommandError(
                f"--kubeconfig {args.kubeconfig}: cannot load it ({reason}); {without}", code=1
            ) from None
        where = os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise CommandError(
            "no Kubernetes cluster credentials found (not in a pod with a service account, no "
            f"kubeconfig at {where}): give --kubeconfig FILE, or {without}",
            code=1,
        ) from None


def cmd_run(args: argparse.Namespace, pm: Any) -> int:
    from polyingress.core.runtime.controller import Controller
    from polyingress.core.runtime.health import HealthServer

    kube: Any = None
    source: Any = None
    if args.manifests is not None:
        store, source = _load_store(args)
        for _path, err in sorted(source.file_errors.items()):
            log.error("%s", err)
        for _path, warnings in sorted(source.file_warnings.items()):
            for warning in warnings:
                log.warning("%s", warning)
    else:
        store = ObjectStore()
        kube = _kube_runtime(args)
    settings = _settings(args, pm)
    try:
        settings.workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"--workdir {settings.workdir}: {exc.strerror or exc}") from None
    controller = Controller(settings, pm, store, debounce=args.debounce_ms / 1000)
    report = controller.health if kube is None else kube.wrap_health(controller.health)
    try:
        health = HealthServer(args.health_bind, args.health_port, report)
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {args.health_bind} port {args.health_port} (--health-bind, "
            f"--health-port): {exc.strerror or exc}"
        ) from None
    try:
        dashboard = _dashboard(args, pm, controller, report) if args.dashboard else None
    except CommandError:
        health.server.server_close()
        raise
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    health.start()
    log.info("health on http://%s:%d (/healthz /readyz /metrics)", args.health_bind, health.port)
    if dashboard is not None:
        dashboard.start()
        log.info("dashboard on %s", _url(args.dashboard_bind, dashboard.port))
    try:
        if kube is not None:
            try:
                kube.start(store, controller)  # lists every kind first: the first model is whole
            except Exception as exc:
                log.debug("reading the cluster failed", exc_info=True)
                raise CommandError(f"cannot read the cluster: {_one_line(exc)}", code=1) from None
        try:
            controller.start()
        except Exception as exc:
            log.debug("the backend did not start", exc_info=True)
            raise CommandError(
                f"the {args.backend} backend did not start: {_one_line(exc)}", code=1
            ) from None
        # The objects of the first model live as long as the process: move them out of the
        # cyclic GC's reach, so that a full collection over a 10,000-Ingress world cannot stall
        # an apply for hundreds of milliseconds.
        gc.collect()
        gc.freeze()
        if source is not None:
            source.start()
        log.info("ready")
        while not stop.wait(0.5):
            pass
    finally:
        if kube is not None:
            kube.stop()
        if source is not None:
            source.stop()
        controller.stop()
        health.stop()
        if dashboard is not None:
            dashboard.stop()
    return 0


def _dashboard(args: argparse.Namespace, pm: Any, controller: Any, report: Any) -> Any:
    """The dashboard server of ``run --dashboard``, reading the controller at each request."""
    from polyingress.core.pipeline.model import RouteModel
    from polyingress.core.runtime.dashboard import DashboardServer, DashboardState

    info = pm.hook.polyingress_backend_info()

    def state() -> DashboardState:
        status = controller.status()
        return DashboardState(
            model=controller.last_good or RouteModel(),
            result=controller.last_result,
            history=controller.history(),
            info=info,
            health=report(),
            last_error=status.last_error,
            failing=status.failing,
            http_port=_public_port(args, "http", 80),
            https_port=_public_port(args, "https", 443),
        )

    try:
        return DashboardServer(args.dashboard_bind, args.dashboard_port, state)
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {args.dashboard_bind} port {args.dashboard_port} "
            f"(--dashboard-bind, --dashboard-port): {exc.strerror or exc}"
        ) from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def cmd_demo(args: argparse.Namespace) -> int:
    from polyingress.core.runtime.demo import run_demo

    return run_demo(args)


# -- parser -----------------------------------------------------------------------------------


def _preparse_backend(argv: list[str]) -> str | None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend")
    known, _rest = pre.parse_known_args(argv)
    backend: str | None = known.backend
    return backend


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(
        prog="polyingress",
        description="Kubernetes ingress controller: one core, many proxies.",
    )
    parser.add_argument("--version", action="version", version=f"polyingress {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pm = None
    backend = _preparse_backend(argv)
    plugins: list[tuple[str, Any]] = []
    if backend is not None:
        _p, obj = load_backend(backend)
        plugins.append((backend, obj))
    elif argv and argv[0] in discover():
        _p, obj = load_backend(argv[0])
        plugins.append((argv[0], obj))
    pm = plugin_manager(*plugins)

    # Short usage lines: a mistake is then the usage line and one error line (-h lists all).
    run = sub.add_parser(
        "run",
        help="run the controller and the proxy (Kubernetes API unless --manifests is given)",
        usage="polyingress run --backend NAME [--manifests DIR] [options]",
    )
    run.add_argument("--backend", required=True, metavar="NAME")
    _add_run_options(run)
    _add_dashboard_options(run)
    _add_source_options(run)
    add_kube_options(run)
    run.set_defaults(func=lambda a: cmd_run(a, pm))

    render = sub.add_parser(
        "render",
        help="print the configuration the backend would apply",
        usage="polyingress render --backend NAME --manifests DIR [--output DIR] [options]",
    )
    render.add_argument("--backend", required=True, metavar="NAME")
    render.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="write the files `run` would write into --workdir (private keys included, mode "
        "0600) below DIR instead of printing them",
    )
    _add_run_options(render)
    _add_source_options(render)
    render.set_defaults(func=lambda a: cmd_render(a, pm))

    if backend is not None:
        pm.hook.polyingress_add_options(parser=run)
        pm.hook.polyingress_add_options(parser=render)

    validate = sub.add_parser(
        "validate",
        help="print every problem found; non-zero if any",
        usage="polyingress validate --manifests DIR [options]",
    )
    _add_source_options(validate)
    validate.set_defaults(func=cmd_validate, backend=None)

    status = sub.add_parser(
        "status",
        help="print the Gateway API status the controller would write, as YAML",
        usage="polyingress status --manifests DIR [--backend NAME] [options]",
    )
    status.add_argument(
        "--backend",
        metavar="NAME",
        help="judge the routes as this backend would serve them (its Gateway API features); "
        "without it: as a backend serving every feature",
    )
    status.add_argument(
        "--publish-status-address",
        type=address_list,
        default=(),
        metavar="ADDR[,ADDR]",
        help="the Gateways' status.addresses (as run's --publish-status-address writes them)",
    )
    _add_source_options(status)
    status.set_defaults(func=lambda a: cmd_status(a, pm))

    migrate = sub.add_parser(
        "migrate",
        help="report which ingress-nginx annotations each backend honours; non-zero if any "
        "would behave otherwise",
        usage="polyingress migrate [--manifests DIR] [--backend NAME ...] [options]",
        description="For every Ingress (whatever its class), every nginx.ingress.kubernetes.io/"
        " and --annotations-prefix annotation on every backend: honoured (ingress-nginx's "
        "documented behaviour), partial (with the difference), unsupported (why, and what the "
        "Ingress gets instead) or invalid. Reads --manifests DIR, else the cluster (as run "
        "does). Exit 1 when anything is not honoured exactly.",
    )
    migrate.add_argument(
        "--backend",
        action="append",
        metavar="NAME",
        help="judge for this backend (repeatable; default: every installed backend)",
    )
    migrate.add_argument("--manifests", type=Path, metavar="DIR")
    migrate.add_argument(
        "--annotations-prefix", type=_prefix, default="polyingress.io", metavar="PREFIX"
    )
    migrate.add_argument(
        "--http-port",
        type=port_number,
        default=80,
        metavar="P",
        help="the port clients reach HTTP on (redirects name it; default 80)",
    )
    migrate.add_argument(
        "--https-port",
        type=port_number,
        default=443,
        metavar="Q",
        help="the port clients reach HTTPS on (default 443)",
    )
    g = migrate.add_argument_group("kubernetes (used when --manifests is not given)")
    g.add_argument("--kubeconfig", metavar="FILE")
    g.add_argument("--watch-namespace", metavar="NS")
    g.add_argument("--initial-sync-timeout", type=float, default=120.0, metavar="S")
    migrate.set_defaults(func=cmd_migrate, debounce_ms=50, update_status=False)

    plugins_cmd = sub.add_parser("plugins", help="list the installed backend plugins")
    plugins_cmd.set_defaults(func=cmd_plugins)

    demo = sub.add_parser(
        "demo",
        help="run an example end to end (cafe)",
        usage="polyingress demo cafe [--backend NAME] [options]",
    )
    demo.add_argument("example", choices=["cafe"])
    demo.add_argument("--backend", default="nginx", metavar="NAME")
    demo.add_argument("--http-port", type=port_number, default=8080)
    demo.add_argument("--https-port", type=port_number, default=8443)
    demo.add_argument("--workdir", type=Path, default=Path("workdir/demo"))
    demo.add_argument("--health-port", type=port_number, default=10254)
    demo.add_argument(
        "--dashboard",
        action="store_true",
        help="serve the read-only dashboard on 127.0.0.1:--dashboard-port and print its address",
    )
    demo.add_argument("--dashboard-port", type=port_number, default=DASHBOARD_PORT)
    demo.add_argument(
        "--exit-after", type=float, default=None, help="stop after N seconds (for CI)"
    )
    demo.set_defaults(func=cmd_demo)

    if backend is None and plugins:
        pm.hook.polyingress_add_commands(subparsers=sub)
    return parser, pm


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, _pm = build_parser(argv)
    except PluginError as exc:
        print(f"polyingress: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(getattr(args, "log_level", "info")).upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except CommandError as exc:
        print(f"polyingress: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        # The reader went away (`polyingress render ... | head`): not an error of ours. Point
        # stdout at /dev/null so that the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())

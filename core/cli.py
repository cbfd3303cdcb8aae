"""The ``polyingress`` command line.

Flags are named as ingress-nginx names them where the concept is the same; they are a public
interface (users script them): rename nothing.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from polyingress.core.annotations import validate_prefix
from polyingress.core.api import RunSettings
from polyingress.core.argtypes import namespaced_name, non_negative_int, port_number
from polyingress.core.builder import DEFAULT_CONTROLLER_CLASS, BuildOptions, build_model
from polyingress.core.plugins import PluginError, discover, load_backend, plugin_manager
from polyingress.core.sources.kubernetes import add_kube_options
from polyingress.core.store import ObjectStore

__all__ = ["main"]

log = logging.getLogger("polyingress")


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
    g.add_argument("--bind", default="0.0.0.0", metavar="ADDR")
    g.add_argument("--http-port", type=port_number, default=8080, metavar="P")
    g.add_argument("--https-port", type=port_number, default=8443, metavar="Q")
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


def _build_options(args: argparse.Namespace) -> BuildOptions:
    return BuildOptions(
        controller_class=args.controller_class,
        watch_ingress_without_class=args.watch_ingress_without_class,
        default_backend_service=args.default_backend_service,
        configmap=args.configmap,
        annotations_prefix=args.annotations_prefix,
    )


def _settings(args: argparse.Namespace) -> RunSettings:
    return RunSettings(
        backend=args.backend,
        bind=getattr(args, "bind", "0.0.0.0"),
        http_port=getattr(args, "http_port", 8080),
        https_port=getattr(args, "https_port", 8443),
        workdir=Path(getattr(args, "workdir", Path("workdir"))).resolve(),
        health_port=getattr(args, "health_port", 10254),
        build=_build_options(args),
        options=args,
    )


def _load_store(args: argparse.Namespace) -> tuple[ObjectStore, Any]:
    from polyingress.core.sources.manifests import ManifestSource

    if args.manifests is None:
        raise SystemExit(
            "polyingress: --manifests DIR is required (`run` without it reads the Kubernetes API)"
        )
    store = ObjectStore()
    source = ManifestSource(
        args.manifests, store, debounce_ms=max(1, getattr(args, "debounce_ms", 50) // 2)
    )
    source.load()
    for _path, err in sorted(source.file_errors.items()):
        log.error("%s", err)
    return store, source


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
    result = build_model(store.snapshot(), _build_options(args))
    failed = False
    for _path, err in sorted(source.file_errors.items()):
        print(f"error: {err}")
        failed = True
    for p in result.problems:
        print(f"{p.severity.value}: {p}")
        failed = failed or p.severity.value == "error"
    routes = sum(len(v.routes) for v in result.model.vhosts)
    print(
        f"{len(result.served)} Ingresses served, {len(result.rejected)} rejected, "
        f"{len(result.ignored)} of other classes; {len(result.model.vhosts)} hosts, "
        f"{routes} routes, {len(result.model.backends)} backends"
    )
    return 1 if failed else 0


def cmd_render(args: argparse.Namespace, pm: Any) -> int:
    store, _source = _load_store(args)
    result = build_model(store.snapshot(), _build_options(args))
    for p in result.problems:
        print(f"{p.severity.value}: {p}", file=sys.stderr)
    rendered = pm.hook.polyingress_render(settings=_settings(args), model=result.model)
    if rendered is None:
        print(f"backend {args.backend!r} cannot render", file=sys.stderr)
        return 2
    sys.stdout.write(rendered.text())
    return 0


def cmd_run(args: argparse.Namespace, pm: Any) -> int:
    from polyingress.core.controller import Controller
    from polyingress.core.health import HealthServer

    kube: Any = None
    source: Any = None
    if args.manifests is not None:
        store, source = _load_store(args)
    else:
        from polyingress.core.sources.kubernetes import KubeRuntime

        store = ObjectStore()
        kube = KubeRuntime.from_args(args)
    settings = _settings(args)
    settings.workdir.mkdir(parents=True, exist_ok=True)
    controller = Controller(settings, pm, store, debounce=args.debounce_ms / 1000)
    report = controller.health if kube is None else kube.wrap_health(controller.health)
    health = HealthServer(args.health_bind, args.health_port, report)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    health.start()
    log.info("health on http://%s:%d (/healthz /readyz /metrics)", args.health_bind, health.port)
    try:
        if kube is not None:
            kube.start(store, controller)  # lists every kind first: the first model is complete
        controller.start()
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
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from polyingress.core.demo import run_demo

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

    run = sub.add_parser(
        "run",
        help="run the controller and the proxy (Kubernetes API unless --manifests is given)",
    )
    run.add_argument("--backend", required=True, metavar="NAME")
    _add_run_options(run)
    _add_source_options(run)
    add_kube_options(run)
    run.set_defaults(func=lambda a: cmd_run(a, pm))

    render = sub.add_parser("render", help="print the configuration the backend would apply")
    render.add_argument("--backend", required=True, metavar="NAME")
    _add_run_options(render)
    _add_source_options(render)
    render.set_defaults(func=lambda a: cmd_render(a, pm))

    if backend is not None:
        pm.hook.polyingress_add_options(parser=run)
        pm.hook.polyingress_add_options(parser=render)

    validate = sub.add_parser("validate", help="print every problem found; non-zero if any")
    _add_source_options(validate)
    validate.set_defaults(func=cmd_validate, backend=None)

    plugins_cmd = sub.add_parser("plugins", help="list the installed backend plugins")
    plugins_cmd.set_defaults(func=cmd_plugins)

    demo = sub.add_parser("demo", help="run an example end to end (cafe)")
    demo.add_argument("example", choices=["cafe"])
    demo.add_argument("--backend", default="nginx", metavar="NAME")
    demo.add_argument("--http-port", type=port_number, default=8080)
    demo.add_argument("--https-port", type=port_number, default=8443)
    demo.add_argument("--workdir", type=Path, default=Path("workdir/demo"))
    demo.add_argument("--health-port", type=port_number, default=10254)
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
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

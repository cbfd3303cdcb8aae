"""An example backend. Only ``polyingress.core`` is imported.

Its proxy is a small Python reverse proxy in the controller's process (``proxy.py``) that
answers every request as the core's ``RouteModel.answer`` says; each model is also written as
JSON to ``<workdir>/routes.json``. It passes the shared conformance cases
(``pytest -p polyingress.core.testing --polyingress-backend example``).

A backend is a class with five methods (start, apply, supervise, health, stop: the
``ProxyBackend`` protocol), its render function, and one ``backend_plugin`` call that provides
every hook. The entry point names the ``hooks`` object (see pyproject.toml).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from polyingress.core import (
    ApplyResult,
    BackendInfo,
    HealthReport,
    ModelDiff,
    ReloadReason,
    RenderedConfig,
    RenderedFile,
    RouteModel,
    RunSettings,
    backend_plugin,
    write_atomic,
)

from .proxy import Proxy


def render_json(model: RouteModel, indent: int = 2) -> str:
    data = {
        "hash": model.model_hash,
        "default_backend": model.default_backend,
        "vhosts": [
            {
                "host": v.host,
                "tls": v.tls.certificate if v.tls else None,
                "routes": [[r.path, r.path_type.value, r.backend] for r in v.routes],
            }
            for v in model.vhosts
        ],
        "backends": {b.name: [e.hostport for e in b.ready_endpoints] for b in model.backends},
    }
    return json.dumps(data, indent=indent, sort_keys=True) + "\n"


def _indent(settings: RunSettings) -> int:
    return int(getattr(settings.options, "example_indent", 2))


class ExampleBackend:
    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.target: Path = settings.workdir / "routes.json"
        self.proxy = Proxy(
            settings.bind,
            settings.http_port,
            settings.https_port,
            settings.workdir / "certs",
            redirect_https_port=settings.public_https_port,
        )

    def start(self, model: RouteModel) -> ApplyResult:
        self.settings.workdir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.target, render_json(model, _indent(self.settings)))
        self.proxy.serve(model)
        self.proxy.start()
        return ApplyResult(reasons=(ReloadReason.START,))

    def apply(self, model: RouteModel, previous: RouteModel, diff: ModelDiff) -> ApplyResult:
        write_atomic(self.target, render_json(model, _indent(self.settings)))
        with (self.settings.workdir / "applied.log").open("a") as log:
            log.write(diff.summary() + "\n")
        self.proxy.serve(model)
        # Swapping the model is the whole apply: nothing reloads. A backend whose proxy reloads
        # returns reloaded=True with ReloadReason members (diff_reasons(diff) gives the diff's)
        # and free text in detail: the reasons label a metric, the detail is logged.
        return ApplyResult(reloaded=False, runtime_changes=1, detail=diff.summary())

    def supervise(self, model: RouteModel) -> str | None:
        repaired = []
        if not self.target.exists():
            write_atomic(self.target, render_json(model, _indent(self.settings)))
            repaired.append("routes.json was missing; rewritten")
        if not self.proxy.running:
            self.proxy.stop()
            self.proxy.serve(model)
            self.proxy.start()
            repaired.append("the proxy's listeners had stopped; restarted")
        return "; ".join(repaired) or None

    def health(self) -> HealthReport:
        running = self.proxy.running
        return HealthReport(live=True, ready=running, detail="serving" if running else "stopped")

    def stop(self) -> None:
        self.proxy.stop()


def info() -> BackendInfo:
    return BackendInfo(
        name="example",
        version="0.1.0",
        description="example third-party backend: a Python reverse proxy driven by "
        "RouteModel.answer (and routes.json)",
        features=("in-process proxy", "model swap without reload", "file output"),
    )


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--example-indent", type=int, default=2, help="JSON indentation")


def render(settings: RunSettings, model: RouteModel) -> RenderedConfig:
    # Nothing secret: ``written`` is what is shown, as ``run`` writes it.
    text = render_json(model, _indent(settings))
    return RenderedConfig(
        files=(("routes.json", text),), written=(RenderedFile(name="routes.json", text=text),)
    )


hooks = backend_plugin(info=info, create=ExampleBackend, render=render, add_options=add_options)

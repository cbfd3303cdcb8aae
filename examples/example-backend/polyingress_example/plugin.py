"""An example backend: the proxy is a JSON file. Only ``polyingress.core`` is imported."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
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
    hookimpl,
    write_atomic,
)


@dataclass
class ExampleBackend:
    settings: RunSettings
    started: bool = False

    @property
    def target(self) -> Path:
        return self.settings.workdir / "routes.json"


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


@hookimpl
def polyingress_add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--example-indent", type=int, default=2, help="JSON indentation")


@hookimpl
def polyingress_backend_info() -> BackendInfo:
    return BackendInfo(
        name="example",
        version="0.1.0",
        description="example third-party backend (writes routes.json)",
        features=("file output",),
    )


@hookimpl
def polyingress_create_backend(settings: RunSettings) -> ExampleBackend:
    return ExampleBackend(settings)


def _indent(settings: RunSettings) -> int:
    return int(getattr(settings.options, "example_indent", 2))


@hookimpl
def polyingress_start(backend: ExampleBackend, model: RouteModel) -> ApplyResult:
    write_atomic(backend.target, render_json(model, _indent(backend.settings)))
    backend.started = True
    return ApplyResult(reloaded=False, reasons=(ReloadReason.START,))


@hookimpl
def polyingress_apply(
    backend: ExampleBackend, model: RouteModel, previous: RouteModel, diff: ModelDiff
) -> ApplyResult:
    write_atomic(backend.target, render_json(model, _indent(backend.settings)))
    with (backend.settings.workdir / "applied.log").open("a") as log:
        log.write(diff.summary() + "\n")
    # Writing the file is the whole apply: nothing reloads. A backend whose proxy reloads
    # returns reloaded=True with ReloadReason members (diff_reasons(diff) gives the diff's)
    # and free text in detail: the reasons label a metric, the detail is logged.
    return ApplyResult(reloaded=False, runtime_changes=1, detail=diff.summary())


@hookimpl
def polyingress_health(backend: ExampleBackend) -> HealthReport:
    return HealthReport(live=True, ready=backend.started and backend.target.exists())


@hookimpl
def polyingress_stop(backend: ExampleBackend) -> None:
    backend.started = False


@hookimpl
def polyingress_render(settings: RunSettings, model: RouteModel) -> RenderedConfig:
    # Nothing secret: ``written`` is what is shown, as ``run`` writes it.
    text = render_json(model, _indent(settings))
    return RenderedConfig(
        files=(("routes.json", text),), written=(RenderedFile(name="routes.json", text=text),)
    )

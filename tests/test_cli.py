"""The command line: validate and render output, exit codes, flag errors, mistakes."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import REPO, Controller, HelloFleet, backend_param, free_port, running, write_manifests

from polyingress.core.runtime.plugins import discover


def polyingress(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polyingress.core.runtime.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_validate_cafe_example_is_clean() -> None:
    out = polyingress("validate", "--manifests", "examples/cafe")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("1 hosts, 2 routes, 2 backends")


def test_validate_reports_host_path_and_port_precisely(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples" / "cafe", tmp_path / "m")
    write_manifests(
        tmp_path / "m",
        "bad.yaml",
        [
            CLASS,
            ingress("bad-host", rule("Cafe.Example.com", path("/", "s"))),
            ingress("bad-path", rule("a.example.com", path("/tea;evil", "s"))),
            ingress("bad-port", rule("b.example.com", path("/", "s", port=99999))),
        ],
    )
    out = polyingress("validate", "--manifests", str(tmp_path / "m"))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any(
        line.startswith(
            "error: Ingress default/bad-host: spec.rules[0].host: host 'Cafe.Example.com'"
        )
        for line in lines
    ), lines
    assert any(
        "error: Ingress default/bad-path: spec.rules[0].http.paths[0].path: path '/tea;evil' "
        "contains character ';'" in line
        for line in lines
    ), lines
    assert any(
        "error: Ingress default/bad-port: "
        "spec.rules[0].http.paths[0].backend.service.port.number: port number 99999 is out of "
        "range 1-65535" in line
        for line in lines
    ), lines
    assert "1 Ingresses served, 3 rejected" in out.stdout


def test_validate_output_is_stable(tmp_path: Path) -> None:
    assert (
        polyingress("validate", "--manifests", "examples/cafe").stdout
        == polyingress("validate", "--manifests", "examples/cafe").stdout
    )


def test_validate_reports_unparseable_file(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("kind: [\n")
    out = polyingress("validate", "--manifests", str(tmp_path))
    assert out.returncode == 1
    assert "broken.yaml: not valid YAML" in out.stdout


def test_bad_flag_values_are_rejected() -> None:
    out = polyingress("validate", "--manifests", "examples/cafe", "--default-backend-service", "x")
    assert out.returncode == 2
    assert "must be NAMESPACE/NAME" in out.stderr


@pytest.mark.parametrize(
    ("backend", "flag", "value", "message"),
    [
        ("nginx", "--http-port", "70000", "out of range 0-65535"),
        ("nginx", "--debounce-ms", "-5", "must be >= 0"),
        ("nginx", "--lease-duration", "0", "must be > 0"),
        ("nginx", "--nginx-status-port", "x", "is not a whole number"),
        ("nginx", "--nginx-reload-timeout", "-1", "must be > 0"),
        ("haproxy", "--haproxy-spare-backends", "-1", "must be >= 0"),
        ("haproxy", "--haproxy-drain-timeout", "soon", "is not a number"),
        ("traefik", "--traefik-https-redirect-port", "65536", "out of range 0-65535"),
        ("nginx", "--dashboard-port", "65536", "out of range 0-65535"),
        ("caddy", "--dashboard-bind", "localhost", "is not an IP address"),
    ],
)
def test_bad_numbers_are_usage_errors_naming_the_flag(
    backend: str, flag: str, value: str, message: str
) -> None:
    out = polyingress(
        "run", "--backend", backend, "--manifests", "examples/cafe", f"{flag}={value}"
    )
    assert out.returncode == 2, out.stderr
    assert flag in out.stderr and message in out.stderr, out.stderr


# -- every command-line mistake: one line, a non-zero exit, no traceback -----------------------

SCRIPT = Path(sys.executable).with_name("polyingress")  # the installed console script


def console(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), f"{SCRIPT}: the console script is not installed"
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout
    )


def assert_one_line_error(out: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    lines = out.stderr.splitlines()
    # argparse: a short usage (a plugin's may wrap onto a second line), then one error line.
    usage = [line for line in lines[:-1] if line.startswith(("usage: ", " "))]
    assert usage == lines[:-1] and len(usage) <= 2, lines
    assert lines and text in lines[-1], lines


def no_cluster_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "KUBERNETES_"))}
    return {**env, "HOME": str(home)}


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "file").write_text("not a directory\n")
    (tmp_path / "notyaml").mkdir()
    (tmp_path / "notyaml" / "broken.yaml").write_text("kind: Service\nmetadata: {name: [x\n")
    return {
        "missing": str(tmp_path / "missing"),
        "file": str(tmp_path / "file"),
        "notyaml": str(tmp_path / "notyaml"),
        # the built-in three, and what else is installed (scripts/setup.sh adds contrib/caddy)
        "backends": ", ".join(sorted({"haproxy", "nginx", "traefik", *discover()})),
    }


MISTAKES = [
    ("no-command", [], 2, "the following arguments are required: COMMAND"),
    ("unknown-command", ["serve"], 2, "invalid choice: 'serve'"),
    ("run-without-backend", ["run"], 2, "the following arguments are required: --backend"),
    (
        "run-unknown-backend",
        ["run", "--backend", "nope", "--manifests", "examples/cafe"],
        2,
        "unknown backend 'nope'; installed backends: {backends}",
    ),
    (
        "run-without-cluster",
        ["run", "--backend", "nginx"],
        1,
        "no Kubernetes cluster credentials found",
    ),
    (
        "run-kubeconfig-missing",
        ["run", "--backend", "nginx", "--kubeconfig", "{missing}"],
        1,
        "--kubeconfig {missing}: cannot load it",
    ),
    (
        "run-kubeconfig-not-one",
        ["run", "--backend", "haproxy", "--kubeconfig", "{file}"],
        1,
        "--kubeconfig {file}: cannot load it (not a kubeconfig file)",
    ),
    (
        "run-manifests-missing",
        ["run", "--backend", "nginx", "--manifests", "{missing}"],
        2,
        "--manifests {missing}: no such directory",
    ),
    (
        "run-bind-not-an-ip",
        ["run", "--backend", "nginx", "--manifests", "examples/cafe", "--bind", "localhost"],
        2,
        "argument --bind: 'localhost' is not an IP address",
    ),
    (
        "run-workdir-under-a-file",
        ["run", "--backend", "haproxy", "--manifests", "examples/cafe", "--workdir", "{file}/w"],
        2,
        "--workdir {file}/w: Not a directory",
    ),
    ("render-without-backend", ["render"], 2, "required: --backend"),
    ("render-without-manifests", ["render", "--backend", "haproxy"], 2, "render needs --manifests"),
    (
        "render-manifests-missing",
        ["render", "--backend", "traefik", "--manifests", "{missing}"],
        2,
        "--manifests {missing}: no such directory",
    ),
    (
        "render-file-not-yaml",
        ["render", "--backend", "haproxy", "--manifests", "{notyaml}"],
        1,
        "{notyaml}/broken.yaml: not valid YAML: line 3, column 1: ",
    ),
    (
        "render-output-under-a-file",
        ["render", "--backend", "haproxy", "--manifests", "examples/cafe", "--output", "{file}/o"],
        1,
        "--output {file}/o: Not a directory",
    ),
    ("validate-without-manifests", ["validate"], 2, "validate needs --manifests DIR"),
    (
        "validate-manifests-missing",
        ["validate", "--manifests", "{missing}"],
        2,
        "--manifests {missing}: no such directory",
    ),
    (
        "validate-manifests-is-a-file",
        ["validate", "--manifests", "{file}"],
        2,
        "--manifests {file}: not a directory",
    ),
    ("validate-bad-flag", ["validate", "--strict"], 2, "unrecognized arguments: --strict"),
    ("plugins-bad-flag", ["plugins", "--all"], 2, "unrecognized arguments: --all"),
    ("demo-unknown-example", ["demo", "shop"], 2, "invalid choice: 'shop'"),
    ("demo-unknown-backend", ["demo", "cafe", "--backend", "nope"], 2, "unknown backend 'nope'"),
    ("traefik-without-command", ["traefik"], 2, "the following arguments are required: COMMAND"),
    (
        "traefik-static-config-bind",
        ["traefik", "static-config", "--bind", "any"],
        2,
        "argument --bind: 'any' is not an IP address",
    ),
]


@pytest.mark.parametrize(
    ("args", "code", "text"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_every_mistake_is_one_line_and_a_nonzero_exit(
    tmp_path: Path, places: dict[str, str], args: list[str], code: int, text: str
) -> None:
    out = console(*(a.format(**places) for a in args), env=no_cluster_env(tmp_path))
    assert_one_line_error(out, code, text.format(**places))


def test_run_without_cluster_says_manifests_run_without_one(tmp_path: Path) -> None:
    out = console("run", "--backend", "nginx", env=no_cluster_env(tmp_path))
    assert_one_line_error(out, 1, "use --manifests DIR to run without a cluster")


@pytest.mark.parametrize(
    ("backend", "listener", "flags"),
    [
        ("haproxy", "health", ("--health-port", "{port}")),
        ("nginx", "dashboard", ("--health-port", "0", "--dashboard", "--dashboard-port", "{port}")),
    ],
    ids=["health", "dashboard"],
)
def test_a_listener_port_in_use_is_one_line(
    tmp_path: Path, backend: str, listener: str, flags: tuple[str, ...]
) -> None:
    """A port already taken is one line naming the address, the port and the flags."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = [f.format(port=port) for f in flags]
        out = console(
            "run", "--backend", backend, "--manifests", "examples/cafe",
            "--workdir", str(tmp_path / "w"), *args,
        )  # fmt: skip
    assert_one_line_error(
        out, 2, f"cannot listen on 127.0.0.1 port {port} (--{listener}-bind, --{listener}-port): "
    )


def test_version_comes_from_the_installed_distribution() -> None:
    out = console("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"polyingress {importlib.metadata.version('polyingress')}\n"


def test_validate_reports_unreadable_files_on_stdout_only(places: dict[str, str]) -> None:
    out = console("validate", "--manifests", places["notyaml"])
    assert out.returncode == 1
    assert out.stderr == ""  # once, as a finding; not again as a log line
    assert out.stdout.splitlines()[0] == (
        f"error: {places['notyaml']}/broken.yaml: not valid YAML: line 3, column 1: "
        "did not find expected ',' or ']' (while parsing a flow sequence)"
    )


# -- legacy Ingresses and messages without Python noise ----------------------------------------

LEGACY = REPO / "tests" / "fixtures" / "legacy"


def _tutorial_world(directory: Path, fixture: str) -> Path:
    directory.mkdir()
    for name in ("cafe.yaml", "cafe-secret.yaml", "ingress-class.yaml"):
        shutil.copy(REPO / "examples" / "cafe" / name, directory / name)
    shutil.copy(LEGACY / fixture, directory / fixture)
    return directory / fixture


@pytest.mark.parametrize(
    "fixture",
    ["cafe-ingress-extensions-v1beta1.yaml", "cafe-ingress-networking-v1beta1.yaml"],
)
def test_validate_reads_the_tutorials_legacy_cafe_ingress(tmp_path: Path, fixture: str) -> None:
    path = _tutorial_world(tmp_path / "m", fixture)
    out = console("validate", "--manifests", str(tmp_path / "m"), "--watch-ingress-without-class")
    assert out.returncode == 0, out.stdout + out.stderr
    version = yaml.safe_load(path.read_text())["apiVersion"]
    assert out.stdout.startswith(
        f"warning: {path}: Ingress default/cafe-ingress is {version}, which Kubernetes removed "
        "in 1.22; read as networking.k8s.io/v1"
    ), out.stdout
    assert "            pathType: ImplementationSpecific\n" in out.stdout  # the v1 form
    assert "None" not in out.stdout + out.stderr
    assert out.stdout.splitlines()[-1] == (
        "1 Ingresses served, 0 rejected, 0 of other classes, 0 without a class; "
        "1 hosts, 2 routes, 2 backends"
    )


def _secret_without_type() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "untyped"}, "data": {}}


NO_NONE = [
    (
        "pathtype-missing",
        [ingress("a", rule("a.example.com", {"path": "/", "backend": path("/")["backend"]}))],
        "Ingress default/a: spec.rules[0].http.paths[0].pathType: pathType is missing; it must "
        "be one of Exact, Prefix, ImplementationSpecific",
    ),
    (
        "path-missing",
        [ingress("b", rule("b.example.com", path(None)))],
        "Ingress default/b: spec.rules[0].http.paths[0].path: path is missing (required for "
        "Prefix)",
    ),
    (
        "service-name-missing",
        [
            ingress(
                "c",
                rule(
                    "c.example.com",
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"port": {}}}},
                ),
            )
        ],
        "spec.rules[0].http.paths[0].backend.service.name: service name is missing",
    ),
    (
        "backend-missing",
        [ingress("d", rule("d.example.com", {"path": "/", "pathType": "Exact"}))],
        "Ingress default/d: spec.rules[0].http.paths[0].backend: backend is missing",
    ),
    (
        "secret-type-missing",
        [
            _secret_without_type(),
            ingress(
                "e",
                rule("e.example.com", path("/")),
                tls=[{"hosts": ["e.example.com"], "secretName": "untyped"}],
            ),
        ],
        "Secret default/untyped for host e.example.com: type is missing, expected "
        "'kubernetes.io/tls'",
    ),
]


@pytest.mark.parametrize(
    ("objects", "message"), [c[1:] for c in NO_NONE], ids=[c[0] for c in NO_NONE]
)
def test_a_missing_field_is_called_missing_never_none(
    tmp_path: Path, objects: list[dict[str, Any]], message: str
) -> None:
    write_manifests(tmp_path, "m.yaml", [CLASS, *objects])
    out = console("validate", "--manifests", str(tmp_path))
    assert message in out.stdout, out.stdout
    assert "None" not in out.stdout + out.stderr


# -- Ingresses that name no class ---------------------------------------------------------------

DEFAULT_CLASS = {
    **CLASS,
    "metadata": {
        "name": "polyingress",
        "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
    },
}


def _class_world(directory: Path, ingress_class: dict[str, Any] = CLASS) -> None:
    write_manifests(
        directory,
        "m.yaml",
        [
            ingress_class,
            ingress("ours", rule("ours.example.com", path("/"))),
            ingress("plain", rule("plain.example.com", path("/")), cls=None),
            ingress("theirs", rule("theirs.example.com", path("/")), cls="other"),
        ],
    )


def test_validate_says_why_a_classless_ingress_is_not_served(tmp_path: Path) -> None:
    _class_world(tmp_path)
    out = console("validate", "--manifests", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    warnings = [line for line in out.stdout.splitlines() if "not served" in line]
    assert warnings == [
        "warning: Ingress default/plain: not served: it names no IngressClass (no "
        "spec.ingressClassName, no kubernetes.io/ingress.class annotation) and no IngressClass "
        "of controller polyingress.io/controller is the default; to serve it, set "
        "spec.ingressClassName: polyingress, or run with --watch-ingress-without-class"
    ]
    assert out.stdout.splitlines()[-1].startswith(
        "1 Ingresses served, 0 rejected, 1 of other classes, 1 without a class; 1 hosts"
    )


@pytest.mark.parametrize(
    ("flags", "ingress_class"),
    [(["--watch-ingress-without-class"], CLASS), ([], DEFAULT_CLASS)],
    ids=["watch-ingress-without-class", "default-ingress-class"],
)
def test_a_classless_ingress_is_served_when_run_would_serve_it(
    tmp_path: Path, flags: list[str], ingress_class: dict[str, Any]
) -> None:
    _class_world(tmp_path, ingress_class)
    out = console("validate", "--manifests", str(tmp_path), *flags)
    assert "not served" not in out.stdout
    assert out.stdout.splitlines()[-1].startswith(
        "2 Ingresses served, 0 rejected, 1 of other classes, 0 without a class; 2 hosts"
    )


def test_classless_advice_names_the_controller_class_when_no_class_is_ours(
    tmp_path: Path,
) -> None:
    _class_world(tmp_path)
    out = console("validate", "--manifests", str(tmp_path), "--controller-class", "example.com/x")
    assert (
        "to serve it, create an IngressClass with spec.controller: example.com/x and name it in "
        "spec.ingressClassName, or run with --watch-ingress-without-class" in out.stdout
    )
    assert out.stdout.splitlines()[-1].startswith(
        "0 Ingresses served, 0 rejected, 2 of other classes, 1 without a class;"
    )


# -- render --output: the files run writes ------------------------------------------------------

BACKENDS = ["nginx", "haproxy", "traefik"]
# With the third-party Caddy backend (contrib/caddy), where the test does not count files.
LIVE_BACKENDS = [*BACKENDS, "caddy"]

# Values each process makes anew, so a render and a run can never agree on them: the self-signed
# fallback certificate (its bytes, and its fingerprint in Traefik's file names), nginx's channel
# token, the port of its 503 responder and the config digest (a hash of the text, token
# included), and Traefik's readiness probe path.
PER_PROCESS = [
    (re.compile(r"polyingress-fallback\.[0-9a-f]{16}\."), "polyingress-fallback.FP."),
    (re.compile(r'token = "[^"]*"'), 'token = "TOKEN"'),
    (re.compile(r'return 200 "[0-9a-f]{20}";'), 'return 200 "DIGEST";'),
    (re.compile(r"Path\(`/[0-9a-f]{20}`\)"), "Path(`/PROBE`)"),
    # Caddy's document holds the fallback certificate and key inline.
    (
        re.compile(r'\{"certificate":"[^"]*","key":"[^"]*","tags":\["polyingress-fallback"\]\}'),
        "FALLBACK",
    ),
]
UNAVAILABLE = re.compile(r'unavailable = "127\.0\.0\.1:(\d+)"')
RUNTIME_FILES = (".pid", ".log", ".sock")  # written by the proxy, not by the backend


def _normalized(text: str) -> str:
    for pattern, replacement in PER_PROCESS:
        text = pattern.sub(replacement, text)
    unavailable = UNAVAILABLE.search(text)
    if unavailable is not None:
        text = text.replace(f"127.0.0.1:{unavailable.group(1)}", "127.0.0.1:PORT")
    return text


def _tree(root: Path) -> dict[str, tuple[str, int]]:
    """Normalized relative name -> (normalized text, mode) of the regular files below root."""
    files = {}
    for f in sorted(root.rglob("*")):
        if not f.is_file() or f.name.endswith(RUNTIME_FILES):
            continue
        name = _normalized(f.relative_to(root).as_posix())
        text = f.read_text()
        if "polyingress-fallback" in name:
            # Made anew by each process: only its kind can be compared.
            text = "PRIVATE KEY" if "PRIVATE KEY" in text else "CERTIFICATE"
        files[name] = (_normalized(text), f.stat().st_mode & 0o777)
    return files


@pytest.mark.live
@pytest.mark.parametrize("backend", [backend_param(b) for b in LIVE_BACKENDS])
def test_render_output_writes_the_files_run_writes(tmp_path: Path, backend: str) -> None:
    ctl = Controller(backend, REPO / "examples" / "cafe", tmp_path / "run")
    flags = ["--nginx-status-port", str(free_port())] if backend == "nginx" else []
    ctl.extra = flags
    with running(ctl):
        ran = _tree(tmp_path / "run")
    out = console(
        "render",
        "--backend",
        backend,
        "--manifests",
        str(REPO / "examples" / "cafe"),
        "--bind",
        "127.0.0.1",
        "--http-port",
        str(ctl.http_port),
        "--https-port",
        str(ctl.https_port),
        "--workdir",
        str(tmp_path / "run"),
        *flags,
        "--output",
        str(tmp_path / "out"),
    )
    assert out.returncode == 0, out.stderr
    rendered = _tree(tmp_path / "out")
    assert sorted(rendered) == sorted(ran)
    for name in ran:
        assert rendered[name] == ran[name], name
    keys = [n for n, (text, _mode) in rendered.items() if "PRIVATE KEY" in text]
    assert keys and all(rendered[n][1] == 0o600 for n in keys)


@pytest.mark.parametrize("backend", BACKENDS)
def test_render_output_has_the_keys_the_listing_hides(tmp_path: Path, backend: str) -> None:
    cafe = ["--manifests", "examples/cafe", "--workdir", str(tmp_path / "w")]
    listing = console("render", "--backend", backend, *cafe)
    assert listing.returncode == 0, listing.stderr
    assert "PRIVATE KEY" not in listing.stdout
    out = console("render", "--backend", backend, *cafe, "--output", str(tmp_path / "new" / "o"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    root = tmp_path / "new" / "o"
    written = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
    # The names of the listing; nginx in Lua mode also writes the endpoint seed, which the
    # listing never showed.
    shown = re.findall(r"^# ---- (\S+) ----$", listing.stdout, re.MULTILINE)
    extra = {_normalized(n) for n in written} - {_normalized(n) for n in shown}
    assert {_normalized(n) for n in shown} <= {_normalized(n) for n in written}
    assert extra <= {"channel/endpoints.json"}, extra
    cafe_key = [
        p for n, p in written.items() if "cafe-secret" in n and "PRIVATE KEY" in p.read_text()
    ]
    assert cafe_key, sorted(written)
    for name, p in written.items():
        mode = p.stat().st_mode & 0o777
        assert mode == 0o600 if "PRIVATE KEY" in p.read_text() else mode in (0o600, 0o644), name


# -- the tutorial's legacy Ingress, served -------------------------------------------------------


@pytest.mark.live
@pytest.mark.parametrize("backend", [backend_param(b) for b in LIVE_BACKENDS])
def test_run_serves_the_tutorials_legacy_cafe_ingress(tmp_path: Path, backend: str) -> None:
    fleet = HelloFleet([("tea-1", "127.0.0.61"), ("coffee-1", "127.0.0.62")])
    try:
        manifests = tmp_path / "m"
        shutil.copy(
            LEGACY / "cafe-ingress-extensions-v1beta1.yaml",
            write_manifests(
                manifests,
                "services.yaml",
                [
                    service("tea-svc"),
                    slice_(
                        "tea-svc", [("127.0.0.61", True)], [{"name": "http", "port": fleet.port}]
                    ),
                    service("coffee-svc"),
                    slice_(
                        "coffee-svc", [("127.0.0.62", True)], [{"name": "http", "port": fleet.port}]
                    ),
                ],
            ).with_name("cafe-ingress.yaml"),
        )
        ctl = Controller(
            backend, manifests, tmp_path / "work", extra=["--watch-ingress-without-class"]
        )
        with running(ctl):
            for request_path, server in [("/tea", "tea-1"), ("/coffee/beans", "coffee-1")]:
                resp = ctl.get("cafe.example.com", request_path, scheme="https")
                assert (resp.status, resp.server_name) == (200, server), request_path
            assert ctl.get("cafe.example.com", "/water", scheme="https").status == 404
        assert "Ingress default/cafe-ingress is extensions/v1beta1" in ctl.log()
    finally:
        fleet.stop()

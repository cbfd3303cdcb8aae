"""The Caddy document, without Caddy: what reaches it is JSON-encoded and literal, the admin API
is a UNIX socket only, no certificate automation, private keys never shown, the path patterns
match what the core's routes match. (The live tests prove the same through the real Caddy.)"""

from __future__ import annotations

import argparse
import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from caddykit import CLASS, NS, ingress, service, tls_secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448
from polyingress_caddy.plugin import CaddyBackend, render_config
from polyingress_caddy.render import (
    HTTP_SERVER,
    HTTPS_SERVER,
    KEY_PLACEHOLDER,
    CaddyConfig,
    RenderSettings,
    caddy_can_load,
    host_names,
    literal,
    path_pattern,
    render,
)

from polyingress.core import (
    BuildOptions,
    ObjectRef,
    ObjectStore,
    PathType,
    Route,
    RouteModel,
    RunSettings,
    VirtualHost,
    build_model,
    fallback_certificate,
    self_signed,
)

SETTINGS = RenderSettings(admin_socket="/w/caddy-admin.sock", storage_dir="/w/caddy-data")
REF = ObjectRef(kind="Ingress", namespace=NS, name="x")


def model(objects: list[dict[str, Any]]) -> RouteModel:
    store = ObjectStore()
    store.replace_many(upserts=objects, deletes=())
    return build_model(store.snapshot(), BuildOptions()).model


def world() -> list[dict[str, Any]]:
    return [
        CLASS,
        *service("svc-a", ["127.0.3.1"], 8080),
        *service("svc-b", ["127.0.3.2"], 8080),
        ingress(
            "a",
            "a.example.com",
            [("/", "Prefix", "svc-a"), ("/a*b", "Exact", "svc-b"), ("/x(y)", "Prefix", "svc-b")],
            tls=[(["a.example.com"], "a-tls")],
        ),
        tls_secret("a-tls", "a.example.com", ("a.example.com",)),
        ingress("w", "*.w.example.com", [("/w", "Prefix", "svc-b")]),
    ]


def rendered(objects: list[dict[str, Any]] | None = None) -> CaddyConfig:
    return render(model(world() if objects is None else objects), SETTINGS, fallback_certificate())


def test_literal_escapes_every_character_but_letters_digits_and_slash() -> None:
    assert literal("/a*b") == r"/a\*b"
    assert literal("/x.y+z(1)") == r"/x\.y\+z\(1\)"
    assert literal("/A-z_0~9!&,=:@") == r"/A\-z\_0\~9\!\&\,\=\:\@"
    for bad in ("/a b", "/é", "/a\nb", "/a\x00"):
        with pytest.raises(ValueError, match="cannot be placed"):
            literal(bad)


PATHS = ["/", "/a", "/a*b", "/aXb", "/a*b/", "/a*b/c", "/a*bc", "/A*B", "/x(y)", "/x(y)/z",
         "/xy", "/x%28y%29", "/foo", "/foo/", "/foo/bar", "/foobar", "/a%2Ab"]  # fmt: skip


@pytest.mark.parametrize("rule", ["/", "/a*b", "/x(y)", "/foo", "/foo/bar", "/a"])
@pytest.mark.parametrize("path_type", [PathType.EXACT, PathType.PREFIX])
def test_path_patterns_match_what_the_core_route_matches(rule: str, path_type: PathType) -> None:
    """RE2 and Python's re agree on these patterns (anchors, escaped punctuation, classes)."""
    route = Route(path=rule, path_type=path_type, backend="b", source=REF)
    pattern = path_pattern(route)
    for path in PATHS:
        for query in ("", "?q=1"):
            matched = pattern is None or re.search(pattern, path + query) is not None
            assert matched == route.matches(path), (rule, path_type, path + query)


def test_hosts_are_checked_and_matched_with_a_trailing_dot_too() -> None:
    assert host_names(VirtualHost(host="a.example.com", routes=())) == [
        "a.example.com",
        "a.example.com.",
    ]
    assert host_names(VirtualHost(host="*.w.example.com", routes=())) == [
        "*.w.example.com",
        "*.w.example.com.",
    ]
    for bad in ("{env.HOME}", "a b.com", "*.", "A.example.com"):
        with pytest.raises(ValueError):
            host_names(VirtualHost(host=bad, routes=()))


def test_admin_api_is_a_unix_socket_and_nothing_automates_certificates() -> None:
    config = rendered()
    doc = json.loads(config.text)
    assert doc["admin"] == {"listen": "unix//w/caddy-admin.sock", "config": {"persist": False}}
    assert set(doc["apps"]) == {"http", "tls"}  # no pki (local CA), nothing else
    assert "automation" not in doc["apps"]["tls"]
    assert "issuers" not in config.text and "acme" not in config.text
    servers = doc["apps"]["http"]["servers"]
    assert set(servers) == {HTTP_SERVER, HTTPS_SERVER}
    for server in servers.values():
        assert server["automatic_https"] == {"disable": True}
        assert "h3" not in server["protocols"]  # no UDP listener
    assert "tls_connection_policies" not in servers[HTTP_SERVER]


def test_private_keys_are_only_in_the_loaded_text() -> None:
    config = rendered()
    shown = json.loads(config.shown)
    loaded = json.loads(config.text)
    pems = loaded["apps"]["tls"]["certificates"]["load_pem"]
    assert len(pems) == 2  # the Secret's and the fallback
    assert all("PRIVATE KEY" in p["key"] for p in pems)
    assert all(
        p["key"] == KEY_PLACEHOLDER for p in shown["apps"]["tls"]["certificates"]["load_pem"]
    )
    assert "PRIVATE KEY" not in config.shown
    loaded["apps"]["tls"]["certificates"]["load_pem"] = []
    shown["apps"]["tls"]["certificates"]["load_pem"] = []
    assert loaded == shown  # nothing else differs


def test_equal_models_give_byte_identical_documents() -> None:
    objects = world()
    fallback = fallback_certificate()
    first = render(model(objects), SETTINGS, fallback)
    again = render(model(list(reversed(objects))), SETTINGS, fallback)
    assert first.text == again.text and first.revision == again.revision


def test_every_sni_name_gets_the_certificate_of_the_host_it_selects() -> None:
    m = model(world())
    doc = json.loads(render(m, SETTINGS, fallback_certificate()).text)
    pems = doc["apps"]["tls"]["certificates"]["load_pem"]
    tag_of = {p["certificate"]: p["tags"][0] for p in pems}
    policies = doc["apps"]["http"]["servers"][HTTPS_SERVER]["tls_connection_policies"]
    a_cert = m.certificates[0]
    own, fallback = tag_of[a_cert.cert_pem], tag_of[fallback_certificate().cert_pem]
    assert policies == [
        {"match": {"sni": ["a.example.com"]}, "certificate_selection": {"any_tag": [own]}},
        {"match": {"sni": ["*.w.example.com"]}, "certificate_selection": {"any_tag": [fallback]}},
        {"certificate_selection": {"any_tag": [fallback]}},
    ]


def test_a_key_caddy_cannot_use_is_left_out_and_its_host_gets_the_fallback() -> None:
    key = ed448.Ed448PrivateKey.generate()
    assert not caddy_can_load(_with_key(key))
    assert caddy_can_load(self_signed("ok.example.com", ("ok.example.com",)))
    objects = world()
    secret = next(o for o in objects if o["kind"] == "Secret")
    secret["data"] = _ed448_secret_data()
    config = rendered(objects)
    assert [c.source.name for c in config.left_out] == ["a-tls"]
    doc = json.loads(config.text)
    assert len(doc["apps"]["tls"]["certificates"]["load_pem"]) == 1  # the fallback only
    policies = doc["apps"]["http"]["servers"][HTTPS_SERVER]["tls_connection_policies"]
    assert len({json.dumps(p["certificate_selection"]) for p in policies}) == 1


def _with_key(key: ed448.Ed448PrivateKey) -> Any:
    import dataclasses

    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return dataclasses.replace(self_signed("x.example.com"), key_pem=pem)


def _ed448_secret_data() -> dict[str, str]:
    import datetime as dt

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    key = ed448.Ed448PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example.com")]), False)
        .sign(key, None)
    )
    crt = cert.public_bytes(serialization.Encoding.PEM)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(pem).decode()}


def test_render_output_is_what_run_writes_with_the_key_file_private(tmp_path: Path) -> None:
    settings = RunSettings(backend="caddy", workdir=tmp_path / "work", options=argparse.Namespace())
    out = render_config(settings, model(world()))
    assert [name for name, _text in out.files] == ["caddy-bootstrap.json", "private/caddy.json"]
    written = {f.name: f for f in out.written}
    document = written["private/caddy.json"]
    assert document.mode == 0o600 and "PRIVATE KEY" in document.text
    assert "PRIVATE KEY" not in dict(out.files)["private/caddy.json"]
    bootstrap = json.loads(written["caddy-bootstrap.json"].text)
    assert set(bootstrap) == {"admin", "logging", "storage"}  # nothing served before /load


def test_a_workdir_too_deep_for_a_unix_socket_puts_it_in_a_private_temporary_directory(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    backend = CaddyBackend(RunSettings(backend="caddy", workdir=deep))
    assert backend.layout.socket_dir != backend.layout.workdir
    assert len(str(backend.layout.admin_socket)) < 108
    near = CaddyBackend(RunSettings(backend="caddy", workdir=tmp_path / "w"))
    assert near.layout.admin_socket == (tmp_path / "w" / "caddy-admin.sock")


def test_the_plugin_imports_only_polyingress_public_api() -> None:
    """An outsider's plugin: ``polyingress.core`` (its top level) and, in the tests, the
    conformance kit ``polyingress.testing``; never a built-in plugin or a core internal."""
    import ast

    here = Path(__file__).resolve().parent
    allowed = {"plugin": {"polyingress.core"}, "tests": {"polyingress.core", "polyingress.testing"}}
    files = [("plugin", p) for p in (here.parent / "polyingress_caddy").glob("*.py")]
    files += [("tests", p) for p in here.glob("*.py")]
    assert len(files) > 5
    for kind, path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                if name == "polyingress" or name.startswith("polyingress."):
                    top = ".".join(name.split(".")[:2])
                    assert top in allowed[kind], f"{path.name} imports {name}"
                    if kind == "plugin":
                        assert name == "polyingress.core", f"{path.name} imports {name}"

"""The manifest-directory source: parsing, defaults, live changes, broken files."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from livekit import wait_until

from polyingress.core import ObjectStore
from polyingress.core.sources import manifests
from polyingress.core.sources.manifests import ManifestError, ManifestSource, load_objects

SVC = """
apiVersion: v1
kind: Service
metadata: {name: %s}
spec: {ports: [{port: 80}]}
"""


def test_multi_document_list_and_default_namespace(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(
        SVC % "one"
        + "---\n"
        + "apiVersion: v1\nkind: List\nitems:\n"
        + "- {apiVersion: v1, kind: Service, metadata: {name: two, namespace: ns}, spec: {}}\n"
        + "- {apiVersion: v1, kind: Pod, metadata: {name: ignored}}\n"
        + "---\n"
    )
    objs = load_objects(f)
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs] == [
        ("default", "one"),
        ("ns", "two"),
    ]


def test_json_files_are_read(tmp_path: Path) -> None:
    f = tmp_path / "a.json"
    f.write_text(json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j"}}))
    assert load_objects(f)[0]["metadata"]["name"] == "j"


def test_parse_error_names_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("kind: [unclosed\n")
    with pytest.raises(ManifestError, match=r"bad\.yaml: not valid YAML"):
        load_objects(f)


def test_broken_file_keeps_last_objects(tmp_path: Path) -> None:
    store = ObjectStore()
    src = ManifestSource(tmp_path, store)
    (tmp_path / "svc.yaml").write_text(SVC % "kept")
    src.load()
    (tmp_path / "svc.yaml").write_text("kind: Service\nmetadata: {name: [broken\n")
    src.load()
    assert store.keys("Service") == [("default", "kept")]
    assert "svc.yaml" in next(iter(src.file_errors.values()))


def test_files_added_edited_removed_while_watching(tmp_path: Path) -> None:
    store = ObjectStore()
    src = ManifestSource(tmp_path, store, debounce_ms=10)
    src.load()
    src.start()
    try:
        sub = tmp_path / "sub"
        sub.mkdir()
        (sub / "a.yml").write_text(SVC % "a")
        wait_until(lambda: store.keys("Service") == [("default", "a")])
        (sub / "a.yml").write_text(SVC % "b")
        wait_until(lambda: store.keys("Service") == [("default", "b")])
        (sub / "a.yml").unlink()
        wait_until(lambda: store.keys("Service") == [])
    finally:
        src.stop()


def test_unchanged_reload_does_not_bump_generation(tmp_path: Path) -> None:
    store = ObjectStore()
    (tmp_path / "a.yaml").write_text(SVC % "a")
    src = ManifestSource(tmp_path, store)
    assert src.load() is True
    gen = store.generation
    assert src.load() is False
    assert store.generation == gen


def test_arming_the_watch_rereads_only_files_changed_since_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the first load and the watch being armed, files may change unseen: those (and
    only those) are read again. Re-reading every file took seconds at 10,000 Ingresses and
    delayed the first change made after the controller became ready."""
    store = ObjectStore()
    for name in ("a", "b", "c", "gone"):
        (tmp_path / f"{name}.yaml").write_text(SVC % name)
        old = time.time() - 60  # older than any timestamp granularity: surely unchanged
        os.utime(tmp_path / f"{name}.yaml", (old, old))
    src = ManifestSource(tmp_path, store, debounce_ms=10)
    src.load()
    # Changed before the watch is armed: edited (new inode, as an atomic rename makes it),
    # added, removed.
    (tmp_path / ".b.tmp").write_text(SVC % "b2")
    os.replace(tmp_path / ".b.tmp", tmp_path / "b.yaml")
    (tmp_path / "new.yaml").write_text(SVC % "new")
    (tmp_path / "gone.yaml").unlink()
    parsed: list[str] = []
    real = manifests.load_objects

    def spy(path: Path, warnings: list[str] | None = None) -> list[dict[str, Any]]:
        parsed.append(path.name)
        return real(path, warnings)

    monkeypatch.setattr(manifests, "load_objects", spy)
    src.start()
    try:
        wait_until(
            lambda: (
                store.keys("Service")
                == [("default", "a"), ("default", "b2"), ("default", "c"), ("default", "new")]
            )
        )
        assert sorted(set(parsed)) == ["b.yaml", "new.yaml"]
        # A later edit is read as before (and only that file).
        parsed.clear()
        (tmp_path / "c.yaml").write_text(SVC % "c2")
        wait_until(lambda: ("default", "c2") in store.keys("Service"))
        assert set(parsed) == {"c.yaml"}
    finally:
        src.stop()


# -- legacy Ingress versions ----------------------------------------------------------------

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
CAFE_V1_PATHS = [
    {
        "path": "/tea",
        "pathType": "ImplementationSpecific",
        "backend": {"service": {"name": "tea-svc", "port": {"number": 80}}},
    },
    {
        "path": "/coffee",
        "pathType": "ImplementationSpecific",
        "backend": {"service": {"name": "coffee-svc", "port": {"number": 80}}},
    },
]


@pytest.mark.parametrize(
    ("fixture", "version"),
    [
        ("cafe-ingress-extensions-v1beta1.yaml", "extensions/v1beta1"),
        ("cafe-ingress-networking-v1beta1.yaml", "networking.k8s.io/v1beta1"),
    ],
    ids=["extensions-v1beta1", "networking-v1beta1"],
)
def test_tutorial_cafe_ingress_is_read_as_the_api_server_converted_it(
    fixture: str, version: str
) -> None:
    warnings: list[str] = []
    [obj] = load_objects(LEGACY / fixture, warnings)
    assert obj["apiVersion"] == "networking.k8s.io/v1"
    assert obj["spec"]["rules"] == [{"host": "cafe.example.com", "http": {"paths": CAFE_V1_PATHS}}]
    assert obj["spec"]["tls"] == [{"hosts": ["cafe.example.com"], "secretName": "cafe-secret"}]
    assert "ingressClassName" not in obj["spec"]  # it names no class, as in the tutorial
    [warning] = warnings
    first, *snippet = warning.splitlines()
    assert first.startswith(f"{LEGACY / fixture}: Ingress default/cafe-ingress is {version}")
    # The v1 form, as YAML the user can paste.
    assert yaml.safe_load("\n".join(snippet))["spec"]["rules"][0]["http"]["paths"] == (
        CAFE_V1_PATHS
    )
    assert "None" not in warning


def _legacy(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "extensions/v1beta1",
        "kind": "Ingress",
        "metadata": {"name": "old", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
        "spec": spec,
    }


def _one_path(**fields: Any) -> dict[str, Any]:
    return {"rules": [{"http": {"paths": [fields]}}]}


@pytest.mark.parametrize(
    ("spec", "converted"),
    [
        (
            _one_path(path="/a", backend={"serviceName": "s", "servicePort": "http"}),
            _one_path(
                path="/a",
                pathType="ImplementationSpecific",
                backend={"service": {"name": "s", "port": {"name": "http"}}},
            ),
        ),
        (
            _one_path(path="/a", pathType="Exact", backend={"serviceName": "s", "servicePort": 8}),
            _one_path(
                path="/a",
                pathType="Exact",
                backend={"service": {"name": "s", "port": {"number": 8}}},
            ),
        ),
        (
            {"backend": {"serviceName": "d", "servicePort": 80}},
            {"defaultBackend": {"service": {"name": "d", "port": {"number": 80}}}},
        ),
        (
            _one_path(backend={"resource": {"kind": "Bucket", "name": "b"}}),
            _one_path(
                pathType="ImplementationSpecific",
                backend={"resource": {"kind": "Bucket", "name": "b"}},
            ),
        ),
        (
            _one_path(path="/a", backend={"serviceName": "s"}),
            _one_path(
                path="/a", pathType="ImplementationSpecific", backend={"service": {"name": "s"}}
            ),
        ),
    ],
    ids=["string-port-is-a-name", "pathtype-kept", "spec-backend", "resource", "no-port"],
)
def test_legacy_fields_are_converted(
    tmp_path: Path, spec: dict[str, Any], converted: dict[str, Any]
) -> None:
    f = tmp_path / "old.yaml"
    f.write_text(yaml.safe_dump(_legacy(spec)))
    [obj] = load_objects(f)
    assert obj["spec"] == converted
    # The class annotation is left as it is: the class decision reads it as for v1.
    assert obj["metadata"]["annotations"] == {"kubernetes.io/ingress.class": "nginx"}


def test_v1_ingress_is_not_converted(tmp_path: Path) -> None:
    f = tmp_path / "new.yaml"
    v1 = {**_legacy(_one_path(path="/a")), "apiVersion": "networking.k8s.io/v1"}
    f.write_text(yaml.safe_dump(v1))
    warnings: list[str] = []
    assert load_objects(f, warnings)[0]["spec"] == v1["spec"]  # no pathType added
    assert warnings == []


def test_conversion_warning_is_logged_when_a_file_changes_while_watching(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ObjectStore()
    src = ManifestSource(tmp_path, store, debounce_ms=10)
    src.load()
    src.start()
    try:
        shutil.copy(LEGACY / "cafe-ingress-extensions-v1beta1.yaml", tmp_path / "cafe.yaml")
        wait_until(lambda: store.keys("Ingress") == [("default", "cafe-ingress")])
    finally:
        src.stop()
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [m for m in logged if "Ingress default/cafe-ingress is extensions/v1beta1" in m]
    assert src.file_warnings.keys() == {tmp_path / "cafe.yaml"}


def test_yaml_errors_are_one_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yml"
    f.write_text("kind: Service\nmetadata: {name: [x\n")
    with pytest.raises(ManifestError) as err:
        load_objects(f)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"{f}: not valid YAML: line 3, column 1: ")


def test_a_document_that_is_not_an_object_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "notes.yaml"
    f.write_text("just some text, not a manifest\n")
    warnings: list[str] = []
    assert load_objects(f, warnings) == []
    assert warnings == [f"{f}: the file is not a Kubernetes object (no kind); ignored"]

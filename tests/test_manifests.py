"""The manifest-directory source: parsing, defaults, live changes, broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from livekit import wait_until

from polyingress.core import ObjectStore
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

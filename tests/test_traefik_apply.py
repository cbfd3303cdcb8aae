"""plugins/traefik/apply.py: atomic replacement, secrets before and after, skipping unchanged."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from traefik_oracle import FALLBACK

from polyingress.core import (
    Backend,
    Certificate,
    Endpoint,
    ObjectRef,
    PathType,
    Route,
    RouteModel,
    TLSBinding,
    VirtualHost,
)
from polyingress.plugins.traefik import apply as apply_module
from polyingress.plugins.traefik.apply import Layout, write_config
from polyingress.plugins.traefik.render import RenderSettings, TraefikConfig, render

REF = ObjectRef(kind="Ingress", namespace="ns", name="ing")


def cert(name: str, body: str) -> Certificate:
    return Certificate(
        name=name,
        source=ObjectRef(kind="Secret", namespace="ns", name=name),
        cert_pem=f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n",
        key_pem=f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n",
    )


def model(
    endpoints: int = 1, port: int = 8080, certificate: Certificate | None = None
) -> RouteModel:
    tls = None
    if certificate is not None:
        tls = TLSBinding(certificate=certificate.name, source=REF)
    return RouteModel(
        vhosts=(
            VirtualHost(
                host="a.example.com",
                routes=(
                    Route(path="/", path_type=PathType.PREFIX, backend="ns__s__80", source=REF),
                ),
                tls=tls,
            ),
        ),
        backends=(
            Backend(
                name="ns__s__80",
                namespace="ns",
                service="s",
                port="80",
                endpoints=tuple(
                    Endpoint(address=f"10.0.{i // 256}.{i % 256}", port=port)
                    for i in range(endpoints)
                ),
            ),
        ),
        certificates=(certificate,) if certificate is not None else (),
    )


def rendered_for(layout: Layout, m: RouteModel) -> TraefikConfig:
    return render(m, RenderSettings(cert_dir=str(layout.cert_dir)), FALLBACK)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "work")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_puts_config_probe_and_secrets_in_place(layout: Layout) -> None:
    rendered = rendered_for(layout, model(certificate=cert("ns__tls", "A")))
    result = write_config(layout, rendered)
    assert result.config_written
    assert layout.config_path.read_text() == rendered.text
    # One file, the probe included: Traefik builds each change once.
    assert [p.name for p in layout.dynamic_dir.iterdir()] == [layout.config_path.name]
    assert sorted(result.files_written) == sorted(f.name for f in rendered.files)
    assert mode(layout.cert_dir) == 0o700
    for f in rendered.files:
        path = layout.cert_dir / f.name
        assert path.read_text() == f.data
        assert mode(path) == 0o600, f.name
    tls = yaml.safe_load(layout.config_path.read_text())["tls"]
    assert Path(tls["certificates"][0]["keyFile"]).exists()


def test_unchanged_configuration_is_not_rewritten(layout: Layout) -> None:
    rendered = rendered_for(layout, model())
    write_config(layout, rendered)
    before = layout.config_path.stat()
    again = write_config(layout, rendered_for(layout, model()))
    after = layout.config_path.stat()
    assert not again.config_written
    assert again.files_written == () and again.files_removed == ()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_secrets_written_before_and_removed_after_the_config(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = rendered_for(layout, model(certificate=cert("ns__tls", "OLD")))
    write_config(layout, old)
    new = rendered_for(layout, model(certificate=cert("ns__tls", "NEW")))
    old_only = {f.name for f in old.files} - {f.name for f in new.files}
    assert len(old_only) == 2  # the renewed certificate and key got new names

    seen: list[tuple[Path, set[str]]] = []
    real = apply_module._write_if_changed

    def spy(path: Path, text: str) -> bool:
        seen.append((path, {p.name for p in layout.cert_dir.iterdir()}))
        return real(path, text)

    monkeypatch.setattr(apply_module, "_write_if_changed", spy)
    result = write_config(layout, new)
    config_path, present = seen[0]
    assert config_path == layout.config_path
    assert {f.name for f in new.files} <= present, "new secrets exist before the config"
    assert old_only <= present, "old secrets still exist while the old config is live"
    assert sorted(result.files_removed) == sorted(old_only)
    assert {p.name for p in layout.cert_dir.iterdir()} == {f.name for f in new.files}


def test_certificate_files_go_when_no_config_names_them(layout: Layout) -> None:
    write_config(layout, rendered_for(layout, model(certificate=cert("ns__tls", "A"))))
    result = write_config(layout, rendered_for(layout, model()))
    assert len(result.files_removed) == 2
    assert sorted(p.name.split(".")[0] for p in layout.cert_dir.iterdir()) == [
        "polyingress-fallback",
        "polyingress-fallback",
    ]


def test_temp_file_is_staged_in_the_parent_of_the_watched_directory(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves: list[tuple[Path, Path]] = []
    real = os.replace

    def spy(src: Any, dst: Any) -> None:
        moves.append((Path(src), Path(dst)))
        real(src, dst)

    monkeypatch.setattr(apply_module.os, "replace", spy)
    write_config(layout, rendered_for(layout, model()))
    config_moves = [(s, d) for s, d in moves if d.parent == layout.dynamic_dir]
    assert [d for _s, d in config_moves] == [layout.config_path]
    assert all(s.parent == layout.workdir for s, _d in config_moves)
    assert not [p for p in layout.workdir.iterdir() if p.name.endswith(".tmp")]


def test_failed_replace_keeps_the_live_file_and_leaves_no_temp(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = rendered_for(layout, model())
    write_config(layout, first)

    def broken(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(apply_module.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_config(layout, rendered_for(layout, model(endpoints=2)))
    assert layout.config_path.read_text() == first.text
    assert not [p for p in layout.workdir.iterdir() if p.name.endswith(".tmp")]


def test_reader_never_sees_a_partial_document(layout: Layout) -> None:
    versions = [
        rendered_for(layout, model(endpoints=1 + i % 40, port=1000 + i)) for i in range(1000)
    ]
    valid = {v.text.encode() for v in versions}
    write_config(layout, versions[0])
    stop = threading.Event()
    reads: list[int] = [0]
    bad: list[bytes] = []

    def reader() -> None:
        while not stop.is_set():
            data = layout.config_path.read_bytes()
            reads[0] += 1
            if data not in valid:
                bad.append(data)
            elif reads[0] % 50 == 0:
                assert "http" in yaml.safe_load(data)
            time.sleep(0.0002)  # let the writer run: a spinning reader would starve it

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in versions[1:]:
            write_config(layout, version)
    finally:
        stop.set()
        thread.join()
    assert not bad, f"{len(bad)} partial or unknown documents read"
    assert reads[0] >= 100, "the reader did not run alongside the writes"
    assert layout.config_path.read_text() == versions[-1].text


def test_the_probe_file_of_an_earlier_release_is_removed(layout: Layout) -> None:
    """Its router has the name of the probe router now in the document: Traefik must never see
    both (it refuses a name defined twice)."""
    layout.dynamic_dir.mkdir(parents=True)
    layout.legacy_probe_path.write_text("http: {routers: {polyingress-probe: {}}}\n")
    rendered = rendered_for(layout, model())
    write_config(layout, rendered)
    assert [p.name for p in layout.dynamic_dir.iterdir()] == [layout.config_path.name]
    assert "polyingress-probe" in yaml.safe_load(layout.config_path.read_text())["http"]["routers"]

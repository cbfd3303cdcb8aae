"""``polyingress migrate``: per Ingress and backend, which ingress-nginx annotations are honoured,
partial or unsupported (tests/data/real-world-ingresses: Ingresses as clusters write them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_emulator import KubeEmulator

from polyingress.core.runtime.migrate import (
    IngressReport,
    changes_behaviour,
    migration_report,
    render_report,
)

ROOT = Path(__file__).parent.parent
REAL = ROOT / "tests" / "data" / "real-world-ingresses"
N = "nginx.ingress.kubernetes.io/"
GATEWAY_ALL = None  # a backend serving every Gateway API feature
CORE_ONLY = frozenset({"HTTPRoute"})
BARE = frozenset[str]()


def objects(*files: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in files or tuple(p.name for p in sorted(REAL.glob("*.yaml"))):
        out += [o for o in yaml.safe_load_all((REAL / f).read_text()) if o]
    return out


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polyingress.core.runtime.cli", "migrate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def report() -> dict[str, IngressReport]:
    from polyingress.core.pipeline.store import ObjectStore
    from polyingress.core.sources.manifests import ManifestSource

    store = ObjectStore()
    ManifestSource(REAL, store).load()  # converts the legacy extensions/v1beta1 Ingress
    snap = store.snapshot()
    objs = [dict(o) for kind in snap.objects for o in snap.of(kind).values()]
    backends = {"all": GATEWAY_ALL, "core": CORE_ONLY, "bare": BARE}
    return {r.ref.name: r for r in migration_report(objs, backends)}


def cells(r: IngressReport, key: str) -> list[str]:
    (line,) = [line for line in r.lines if line.key == N + key]
    return [c.status for c in line.cells]


def test_cafe_has_nothing_to_migrate() -> None:
    out = migrate("--manifests", str(ROOT / "examples" / "cafe"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Ingress default/cafe-ingress (class polyingress)" in out.stdout
    assert "no annotations of ingress-nginx or polyingress" in out.stdout


def test_real_world_directory_reports_every_ingress_and_exits_1() -> None:
    out = migrate("--manifests", str(REAL), "--backend", "nginx", "--backend", "traefik")
    assert out.returncode == 1, out.stderr
    names = {line.split()[1] for line in out.stdout.splitlines() if line.startswith("Ingress ")}
    assert names == {
        "api/public-api",
        "api/public-grpc",
        "api/versioned-api",
        "argocd/argocd-server",
        "data/notebooks",
        "default/legacy-app",
        "ops/admin",
        "shop/shop-api",
        "shop/shop-web",
        "shop/shop-web-canary",
        "web/campaign",
        "web/docs",
        "web/old-brand",
        "web/site",
    }
    assert "annotation verdicts over 2 backends (nginx, traefik)" in out.stdout


def test_the_prefix_idiom_with_every_feature_and_without(report: dict[str, IngressReport]) -> None:
    r = report["shop-api"]
    assert r.ingress_class == "nginx"
    assert cells(r, "rewrite-target") == ["partial", "unsupported", "unsupported"]
    assert cells(r, "use-regex") == ["partial"] * 3
    assert cells(r, "x-forwarded-prefix") == ["honoured", "honoured", "unsupported"]
    assert cells(r, "proxy-body-size") == ["partial", "unsupported", "unsupported"]
    assert r.outcomes == ("served", "paths answer 500", "rejected")


def test_canary_pair(report: dict[str, IngressReport]) -> None:
    canary = report["shop-web-canary"]
    assert cells(canary, "canary-weight") == ["honoured", "honoured", "unsupported"]
    assert canary.outcomes == ("served", "served", "rejected")  # a canary is never 500
    main = report["shop-web"]
    assert cells(main, "proxy-read-timeout") == ["partial", "unsupported", "unsupported"]
    assert cells(main, "proxy-send-timeout") == ["partial", "unsupported", "unsupported"]


def test_fail_closed_and_invalid(report: dict[str, IngressReport]) -> None:
    admin = report["admin"]
    # Access lists and basic authentication are served where the backend declares them; a
    # backend serving Gateway API rows without them answers 500, one without rows rejects.
    assert admin.outcomes == ("served", "paths answer 500", "rejected")
    assert cells(admin, "whitelist-source-range") == ["honoured", "unsupported", "unsupported"]
    (line,) = [x for x in admin.lines if x.key == N + "auth-type"]
    assert [c.status for c in line.cells] == ["honoured", "unsupported", "unsupported"]
    assert "the Ingress is rejected" in line.cells[2].note
    regex = report["versioned-api"]
    assert cells(regex, "use-regex") == ["invalid"] * 3
    assert any("a character class ('[')" in n for n in regex.notes)
    legacy = report["legacy-app"]
    (snippet,) = [x for x in legacy.lines if x.key == N + "configuration-snippet"]
    assert snippet.cells[0].status == "unsupported" and "never supported" in snippet.cells[0].note
    assert "\\x0a" in snippet.value  # shown on one line, control characters escaped


def test_honoured_everywhere(report: dict[str, IngressReport]) -> None:
    site = report["site"]
    assert cells(site, "server-alias") == ["honoured"] * 3
    assert cells(site, "ssl-redirect") == ["honoured"] * 3  # "false": exactly ingress-nginx's
    assert site.outcomes == ("served",) * 3
    assert not changes_behaviour([site])
    assert changes_behaviour([report["shop-api"]])


def test_exit_0_when_nothing_changes(tmp_path: Path) -> None:
    site = [o for o in objects("redirects.yaml") if o["metadata"]["name"] == "site"]
    (tmp_path / "site.yaml").write_text(yaml.safe_dump_all(site))
    out = migrate("--manifests", str(tmp_path))
    assert out.returncode == 0, out.stdout
    assert "server-alias" in out.stdout


def test_a_hostile_value_is_shown_escaped() -> None:
    ing = objects("admin.yaml")[0]
    ing["metadata"]["annotations"][N + "auth-realm"] = "\x1b[2J\x1b[Hgotcha"
    (r,) = migration_report([ing], {"b": BARE})
    text = render_report([r], ["b"])
    assert "\x1b" not in text and "\\x1b[2J" in text
    (line,) = [x for x in r.lines if x.key == N + "auth-realm"]
    assert line.cells[0].status == "invalid"


def test_from_the_cluster_as_from_manifests(kube: KubeEmulator, tmp_path: Path) -> None:
    files = ("shop-api.yaml", "shop-web.yaml", "admin.yaml", "redirects.yaml")
    for obj in objects(*files):
        kube.put(obj)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kube.kubeconfig())
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for f in files:
        shutil.copy(REAL / f, manifests / f)
    from_cluster = migrate("--kubeconfig", str(kubeconfig), "--backend", "nginx")
    from_files = migrate("--manifests", str(manifests), "--backend", "nginx")
    assert from_cluster.returncode == from_files.returncode == 1, from_cluster.stderr
    assert from_cluster.stdout == from_files.stdout
    assert "Ingress shop/shop-web-canary (class nginx)" in from_cluster.stdout


def test_a_missing_cluster_is_one_line(tmp_path: Path) -> None:
    out = migrate("--kubeconfig", str(tmp_path / "nope"))
    assert out.returncode == 1
    assert out.stderr.startswith("polyingress: --kubeconfig") and out.stderr.count("\n") == 1

"""auth-type: basic in Kubernetes mode: the Secret an Ingress names is read through the watch,
and a change of it is served without a restart (`polyingress run --kubeconfig` against the kmock
emulator over real HTTP, nginx in front of a real hello server)."""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from kube_emulator import KubeEmulator
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import needs, wait_until

from polyingress.testing.live import Controller, HelloFleet

pytestmark = pytest.mark.live


def htpasswd_secret(name: str, user: str, password: str) -> dict[str, Any]:
    """An Opaque Secret with the key ``auth``: one htpasswd line, bcrypt (cost 4: quick)."""
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    line = f"{user}:{digest}\n"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "type": "Opaque",
        "data": {"auth": base64.b64encode(line.encode()).decode()},
    }


def authorization(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@needs("nginx")
def test_basic_auth_secret_is_watched_and_served_without_restart(
    kube: KubeEmulator, tmp_path: Path
) -> None:
    """401 without credentials (with the realm), 200 with the Secret's; the Secret edited: the
    old password refused and the new one admitted; deleted: 503, as ingress-nginx answers for a
    missing auth Secret; created again: admitted again; the controller never restarts."""
    fleet = HelloFleet([("default/web", "127.0.94.1")])
    kube.put(CLASS)
    kube.put(service("web", ports=[{"name": "http", "port": 80, "targetPort": fleet.port}]))
    kube.put(slice_("web", [("127.0.94.1", True)], ports=[{"name": "http", "port": fleet.port}]))
    kube.put(htpasswd_secret("users", "ada", "first"))
    kube.put(
        ingress(
            "web",
            rule("auth.example.com", path("/", "web")),
            annotations={
                "nginx.ingress.kubernetes.io/auth-type": "basic",
                "nginx.ingress.kubernetes.io/auth-secret": "users",
                "nginx.ingress.kubernetes.io/auth-realm": "team only",
            },
        )
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kube.kubeconfig())
    # nginx's workers (nobody, when run as root) read the htpasswd file under the workdir:
    # /tmp/polyingress-kube-auth-*/work, its parents searchable by others (tmp_path is not).
    top = Path(tempfile.mkdtemp(prefix="polyingress-kube-auth-"))
    top.chmod(0o711)
    controller = Controller(
        "nginx",
        None,
        top / "work",
        extra=["--kubeconfig", str(kubeconfig), "--election-namespace", "polyingress"],
    )

    def status(headers: dict[str, str] | None = None) -> int:
        return controller.get("auth.example.com", "/", headers=headers or {}).status

    try:
        controller.start()
        try:
            wait_until(lambda: status(authorization("ada", "first")) == 200)
        except AssertionError:  # say what it answered and why (the controller's log)
            raise AssertionError(
                f"{status(authorization('ada', 'first'))}\n{controller.log(tail=3000)}"
            ) from None
        plain = controller.get("auth.example.com", "/")
        assert plain.status == 401
        assert plain.headers.get("www-authenticate") == 'Basic realm="team only"'
        assert status(authorization("ada", "wrong")) == 401
        assert (
            controller.get(
                "auth.example.com", "/", headers=authorization("ada", "first")
            ).server_name
            == "default/web"
        )

        kube.put(htpasswd_secret("users", "ada", "second"))
        wait_until(lambda: status(authorization("ada", "second")) == 200)
        assert status(authorization("ada", "first")) == 401

        kube.delete("Secret", "default", "users")
        wait_until(lambda: status(authorization("ada", "second")) == 503)

        kube.put(htpasswd_secret("users", "grace", "third"))
        wait_until(lambda: status(authorization("grace", "third")) == 200)
        assert status(authorization("ada", "second")) == 401
        assert controller.proc is not None and controller.proc.poll() is None  # never restarted
    finally:
        controller.stop()
        fleet.stop()
        shutil.rmtree(top, ignore_errors=True)

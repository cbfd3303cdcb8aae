"""Live: the dashboard of a real ``polyingress run --dashboard`` serving the cafe example, in a
real browser (Debian's headless Chromium through chromedriver and selenium), on every backend.

One controller per backend (a module-scoped fixture) and one browser for the module. The test
looks at the page as a user does — the cafe host, both paths, their endpoints, the problem of a
broken Ingress, the search box answering /coffee with coffee-svc after typing into it — and
holds the search's answers against what the real proxy answers. A screenshot of each page is
saved under the test's temporary directory; its path is in every assertion message. The same
running controllers serve the check of the Grafana dashboard's queries against their /metrics
and of the page and JSON never showing Secret data.
"""

from __future__ import annotations

import base64
import re
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_queries import backend_of, load, metric_names, missing, queries
from livekit import (
    REPO,
    Controller,
    HelloFleet,
    backend_param,
    free_port,
    needs,
    processes_in_session,
    write_manifests,
)

from polyingress.core.runtime.demo import CAFE_BACKENDS

pytestmark = pytest.mark.live

CAFE = "cafe.example.com"
EXAMPLE = REPO / "examples" / "cafe"
BACKENDS = [backend_param(n) for n in ("nginx", "haproxy", "traefik", "caddy")]

# An Ingress with a relative path: rejected alone, named on the page with the field at fault.
BROKEN = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": "broken-ingress", "namespace": "default"},
    "spec": {
        "ingressClassName": "polyingress",
        "rules": [
            {
                "host": CAFE,
                "http": {
                    "paths": [
                        {
                            "path": "espresso",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "coffee-svc", "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ],
    },
}


@dataclass
class Cafe:
    backend: str
    controller: Controller
    fleet: HelloFleet
    dashboard: str  # the page's URL
    shots: Path
    https_redirect_port: int  # what the HTTPS redirect names (--https-redirect-port)

    def shot(self, driver: Any, name: str) -> Path:
        path = self.shots / f"{self.backend}-{name}.png"
        driver.save_screenshot(str(path))
        return path


def cafe_manifests(directory: Path, port: int) -> None:
    """examples/cafe as it is, but its EndpointSlices on the hello fleet's port; and the broken
    Ingress."""
    directory.mkdir(parents=True)
    for source in sorted(EXAMPLE.glob("*.yaml")):
        text = source.read_text()
        if source.name == "cafe.yaml":
            docs = list(yaml.safe_load_all(text))
            for doc in docs:
                if doc["kind"] == "EndpointSlice":
                    doc["ports"][0]["port"] = port
            text = yaml.safe_dump_all(docs, sort_keys=False)
        (directory / source.name).write_text(text)
    write_manifests(directory, "broken.yaml", [BROKEN])


@pytest.fixture(scope="module", params=BACKENDS)
def cafe(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cafe]:
    backend: str = request.param
    tmp = tmp_path_factory.mktemp(f"dashboard-{backend}")
    fleet = HelloFleet([(name, address) for name, address, _port in CAFE_BACKENDS])
    cafe_manifests(tmp / "manifests", fleet.port)
    port, redirect_port = free_port(), free_port()
    controller = Controller(
        backend,
        tmp / "manifests",
        tmp / "work",
        extra=[
            "--dashboard",
            "--dashboard-port",
            str(port),
            "--https-redirect-port",
            str(redirect_port),
        ],
    )
    try:
        controller.start()
    except BaseException:
        fleet.stop_at_once(wait=False)
        raise
    assert controller.proc is not None
    session = controller.proc.pid
    try:
        yield Cafe(backend, controller, fleet, f"http://127.0.0.1:{port}/", tmp, redirect_port)
    finally:
        controller.stop()
        fleet.stop_at_once(wait=False)
    assert processes_in_session(session) == [], "processes left behind"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module (Debian's chromium and chromium-driver)."""
    from selenium import webdriver

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium is not None and chromedriver is not None  # needs("chromium") checked it
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=chromedriver)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def search(driver: Any, url: str) -> str:
    """Type ``url`` into the search box and submit it, as a user does; the answer's text."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    before = driver.find_element(By.TAG_NAME, "html")
    box = driver.find_element(By.ID, "search-url")
    box.clear()
    box.send_keys(url)
    driver.find_element(By.ID, "search-submit").click()

    # The answer is a new page: wait until the old one is gone, then read the new one's. While
    # Chromium is still replacing the document, a node found a moment ago may no longer belong
    # to it (a WebDriverException, seen once on a loaded machine): read again until the page
    # holds still.
    def gone(_d: Any) -> bool:
        # staleness_of, except that Chromium may also answer "Node with given id does not belong
        # to the document" (a plain WebDriverException) for a node of the replaced page.
        try:
            before.is_enabled()
        except WebDriverException:
            return True
        return False

    WebDriverWait(driver, 15).until(gone)

    def read(d: Any) -> tuple[str, str] | None:
        try:
            text = d.find_element(By.ID, "answer").text
            typed = d.find_element(By.ID, "search-url").get_attribute("value")
        except WebDriverException:
            return None
        return str(text), str(typed)

    text, typed = WebDriverWait(driver, 15).until(read)
    assert typed == url
    return text


@needs("chromium")
def test_a_user_sees_where_the_cafe_requests_go(cafe: Cafe, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(cafe.dashboard)
    shot = cafe.shot(browser, "page")
    where = f"(screenshot: {shot})"
    hosts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "section.host h3")]
    assert any(h.startswith(CAFE) for h in hosts), f"{hosts} {where}"
    rows = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "section.host tr.route")]
    port = cafe.fleet.port

    def row(path: str) -> str:
        found = [r for r in rows if r.startswith((f"Prefix {path}\n", f"Prefix {path} "))]
        assert len(found) == 1, f"one row for {path} in {rows} {where}"
        return found[0]

    coffee, tea = row("/coffee"), row("/tea")
    for text, service, addresses in (
        (coffee, "coffee-svc", ("127.0.0.11", "127.0.0.12")),
        (tea, "tea-svc", ("127.0.0.21", "127.0.0.22", "127.0.0.23")),
    ):
        assert "Ingress default/cafe-ingress" in text, f"{text!r} {where}"
        assert f"default/{service}:80" in text, f"{text!r} {where}"
        for address in addresses:
            assert f"{address}:{port} ready" in text, f"{text!r} {where}"
    tls = browser.find_element(By.CSS_SELECTOR, "section.host p.tls").text
    assert "CN=cafe.example.com, from Secret default/cafe-secret" in tls, f"{tls!r} {where}"
    problems = browser.find_element(By.ID, "problems").text
    assert "Ingress default/broken-ingress" in problems, f"{problems!r} {where}"
    assert "spec.rules[0].http.paths[0].path" in problems, f"{problems!r} {where}"
    assert "must be absolute" in problems, f"{problems!r} {where}"
    name = browser.find_element(By.ID, "backend-name").text
    assert name.startswith(f"backend {cafe.backend}"), f"{name!r} {where}"
    applies = browser.find_element(By.ID, "applies").text
    assert "started" in applies, f"{applies!r} {where}"

    # The search, typed as a user types it; and the real proxy answers the same.
    answer = search(browser, f"https://{CAFE}/coffee")
    shot = cafe.shot(browser, "search-coffee")
    assert "→ proxied to default/coffee-svc:80" in answer, f"{answer!r} (screenshot: {shot})"
    assert "Prefix /coffee of Ingress default/cafe-ingress wins" in answer, f"{answer!r} {shot}"
    served = cafe.controller.get(CAFE, "/coffee", scheme="https")
    assert (served.server_name or "").startswith("coffee-"), served

    answer = search(browser, f"http://{CAFE}/tea")
    shot = cafe.shot(browser, "search-redirect")
    location = f"https://{CAFE}:{cafe.https_redirect_port}/tea"
    # The dashboard's search names the port the proxy's redirect names (--https-redirect-port).
    assert f"→ 301 redirect to {location}" in answer, f"{answer!r} (screenshot: {shot})"
    redirect = cafe.controller.get(CAFE, "/tea")
    assert (redirect.status, redirect.headers["location"]) == (301, location)

    answer = search(browser, f"https://{CAFE}/milk")
    shot = cafe.shot(browser, "search-404")
    assert "→ 404 Not Found" in answer, f"{answer!r} (screenshot: {shot})"
    assert cafe.controller.get(CAFE, "/milk", scheme="https").status == 404


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


def test_no_secret_data_reaches_the_page_or_the_json(cafe: Cafe) -> None:
    secret = yaml.safe_load((EXAMPLE / "cafe-secret.yaml").read_text())
    data = secret["data"]
    pem_lines = [
        line
        for value in data.values()
        for line in base64.b64decode(value).decode().splitlines()
        if line and not line.startswith("-----")
    ]
    for url in (
        cafe.dashboard,
        cafe.dashboard + "dashboard.json",
        cafe.dashboard + f"?url=https://{CAFE}/coffee",
        cafe.dashboard + f"dashboard.json?url=https://{CAFE}/coffee",
    ):
        text = _fetch(url)
        assert CAFE in text, url  # the page is the cafe's
        assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text, url
        assert not [v for v in data.values() if v in text], url
        assert not [line for line in pem_lines if line in text], url


def test_every_grafana_query_names_a_metric_this_backend_exports(cafe: Cafe) -> None:
    names = set().union(*(metric_names(q) for q in queries(load())))
    text = cafe.controller.metrics()
    assert missing(text, cafe.backend, names) == [], text
    # Not vacuous: the core's metrics are checked on every backend, HAProxy's on HAProxy.
    checked = {n for n in names if backend_of(n) in (None, cafe.backend)}
    assert {"polyingress_syncs_total", "polyingress_source_degraded"} <= checked
    if cafe.backend == "haproxy":
        assert "polyingress_haproxy_spare_backends" in checked
    assert re.search(r"^polyingress_syncs_total\{result=\"applied\"\} [1-9]", text, re.M), text

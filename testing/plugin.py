"""The conformance kit as a pytest plugin: ``pytest -p polyingress.testing``.

Options:

``--polyingress-backend NAME``
    Run the conformance suite (:mod:`polyingress.testing.conformance`) against backend NAME,
    as installed (``polyingress plugins`` lists it), in addition to the tests pytest collects.
``--polyingress-run-arg ARG``
    An extra argument for ``polyingress run`` (repeatable), e.g. the backend's own flags.
``--polyingress-gateway-report FILE``
    Write upstream's ConformanceReport (profile GATEWAY-HTTP, :mod:`polyingress.testing.
    gateway_report`) of the Gateway API cases that ran, for each backend they ran on: to FILE,
    with ``{backend}`` in FILE replaced by the backend's name (needed when several ran).
    ``--polyingress-report-url URL`` and ``--polyingress-report-contact C`` (repeatable) fill
    the report's implementation block (default: the package's metadata).

Fixtures: ``polyingress_backend`` (the name; override it, parametrized, to run several),
``polyingress_run_args``, ``live_world`` (a :class:`~polyingress.testing.conformance.
LiveWorld`: hello backends, the routing world in a manifest directory and a running
``polyingress run``, one per test module and backend), ``gateway_world`` (a
:class:`~polyingress.testing.gateway_live.GatewayWorld`: the Gateway API conformance cases,
loaded one at a time into a running ``polyingress run``) and ``annotation_world`` (an
:class:`~polyingress.testing.annotation_live.AnnotationWorld`: the ingress-nginx annotation
cases, likewise).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from . import annotation_live, conformance, gateway_live, gateway_report

__all__ = [
    "annotation_world",
    "gateway_world",
    "live_world",
    "polyingress_backend",
    "polyingress_run_args",
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
]

# (backend, case name) -> outcome of each Gateway API case that ran in this session.
_GATEWAY_OUTCOMES = pytest.StashKey[dict[tuple[str, str], str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("polyingress", "polyingress conformance kit")
    group.addoption(
        "--polyingress-backend",
        metavar="NAME",
        default=None,
        help="run the polyingress conformance suite against this installed backend",
    )
    group.addoption(
        "--polyingress-run-arg",
        metavar="ARG",
        action="append",
        default=[],
        help="an extra argument for 'polyingress run' (repeatable)",
    )
    group.addoption(
        "--polyingress-gateway-report",
        metavar="FILE",
        default=None,
        help="write the upstream ConformanceReport of the Gateway API cases run, per backend "
        "('{backend}' in FILE is replaced by the backend's name)",
    )
    group.addoption(
        "--polyingress-report-url",
        metavar="URL",
        default="",
        help="the implementation URL in the ConformanceReport",
    )
    group.addoption(
        "--polyingress-report-contact",
        metavar="CONTACT",
        action="append",
        default=[],
        help="a contact in the ConformanceReport (repeatable; for a GitHub handle write "
        "--polyingress-report-contact=@name: pytest reads an argument starting with @ as a file)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "live: runs a real proxy and sends real HTTP through it")
    config.stash[_GATEWAY_OUTCOMES] = {}
    if config.getoption("polyingress_backend"):
        for module in (conformance, gateway_live, annotation_live):
            suite = str(Path(module.__file__ or ""))
            if suite not in config.args:
                config.args.append(suite)


@pytest.fixture(scope="session")
def polyingress_backend(request: pytest.FixtureRequest) -> str:
    name = request.config.getoption("polyingress_backend")
    if not name:
        pytest.skip("no backend named: pass --polyingress-backend NAME")
    return str(name)


@pytest.fixture(scope="session")
def polyingress_run_args(request: pytest.FixtureRequest) -> list[str]:
    return list(request.config.getoption("polyingress_run_arg"))


@pytest.fixture(scope="module")
def live_world(
    polyingress_backend: str,
    polyingress_run_args: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[conformance.LiveWorld]:
    world = conformance.LiveWorld(
        polyingress_backend,
        tmp_path_factory.mktemp(f"live-{polyingress_backend}"),
        extra=polyingress_run_args,
    )
    yield world
    world.stop()


@pytest.fixture(scope="module")
def gateway_world(
    polyingress_backend: str,
    polyingress_run_args: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[gateway_live.GatewayWorld]:
    world = gateway_live.GatewayWorld(
        polyingress_backend,
        tmp_path_factory.mktemp(f"gateway-{polyingress_backend}"),
        extra=polyingress_run_args,
    )
    yield world
    world.stop()


@pytest.fixture(scope="module")
def annotation_world(
    polyingress_backend: str,
    polyingress_run_args: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[annotation_live.AnnotationWorld]:
    world = annotation_live.AnnotationWorld(
        polyingress_backend,
        tmp_path_factory.mktemp(f"annotations-{polyingress_backend}"),
        extra=polyingress_run_args,
    )
    yield world
    world.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Record the outcome of each Gateway API case (``test_gateway_conformance``) by backend:
    failed when any phase failed, skipped when it was skipped, passed when its call passed."""
    report = yield
    params = getattr(getattr(item, "callspec", None), "params", {})
    case = params.get("case")
    if getattr(item, "originalname", None) != "test_gateway_conformance" or case is None:
        return report
    backend = params.get("polyingress_backend") or _fixture_backend(item)
    backend = backend or item.config.getoption("polyingress_backend")
    if not backend:  # its setup failed before the backend was known: nothing to record
        return report
    outcomes = item.config.stash.get(_GATEWAY_OUTCOMES, {})
    key = (str(backend), str(case))
    if report.failed:
        outcomes[key] = gateway_report.Outcome.FAILED
    elif report.skipped and outcomes.get(key) != gateway_report.Outcome.FAILED:
        outcomes[key] = gateway_report.Outcome.SKIPPED
    elif report.when == "call" and report.passed:
        outcomes[key] = gateway_report.Outcome.PASSED
    return report


def _fixture_backend(item: pytest.Item) -> str | None:
    """The backend a test module's own ``polyingress_backend`` fixture named (a third-party
    distribution's tests override it instead of passing ``--polyingress-backend``)."""
    funcargs = getattr(item, "funcargs", None) or {}
    world = funcargs.get("gateway_world")
    name = getattr(world, "backend", None) or funcargs.get("polyingress_backend")
    return str(name) if name else None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the ConformanceReport of each backend the Gateway API cases ran on."""
    target = session.config.getoption("polyingress_gateway_report")
    outcomes = session.config.stash.get(_GATEWAY_OUTCOMES, {})
    if not target or not outcomes:
        return
    backends = sorted({backend for backend, _case in outcomes})
    if len(backends) > 1 and "{backend}" not in target:
        raise pytest.UsageError(
            f"the Gateway API cases ran on {', '.join(backends)}: put {{backend}} in "
            "--polyingress-gateway-report"
        )
    impl = gateway_report.implementation(
        session.config.getoption("polyingress_report_url"),
        session.config.getoption("polyingress_report_contact"),
    )
    for backend in backends:
        report = gateway_report.conformance_report(
            {case: result for (b, case), result in outcomes.items() if b == backend},
            gateway_live.backend_features(backend),
            impl=impl,
        )
        path = Path(target.replace("{backend}", backend))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(gateway_report.report_yaml(report))

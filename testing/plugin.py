"""The conformance kit as a pytest plugin: ``pytest -p polyingress.testing``.

Options:

``--polyingress-backend NAME``
    Run the conformance suite (:mod:`polyingress.testing.conformance`) against backend NAME,
    as installed (``polyingress plugins`` lists it), in addition to the tests pytest collects.
``--polyingress-run-arg ARG``
    An extra argument for ``polyingress run`` (repeatable), e.g. the backend's own flags.

Fixtures: ``polyingress_backend`` (the name; override it, parametrized, to run several),
``polyingress_run_args``, ``live_world`` (a :class:`~polyingress.testing.conformance.
LiveWorld`: hello backends, the routing world in a manifest directory and a running
``polyingress run``, one per test module and backend) and ``gateway_world`` (a
:class:`~polyingress.testing.gateway_live.GatewayWorld`: the Gateway API conformance cases,
loaded one at a time into a running ``polyingress run``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import conformance, gateway_live

__all__ = [
    "gateway_world",
    "live_world",
    "polyingress_backend",
    "polyingress_run_args",
    "pytest_addoption",
    "pytest_configure",
]


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "live: runs a real proxy and sends real HTTP through it")
    if config.getoption("polyingress_backend"):
        for module in (conformance, gateway_live):
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

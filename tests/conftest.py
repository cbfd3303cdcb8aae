from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from polyingress.core import BuildOptions, BuildResult, ObjectStore, build_model

if TYPE_CHECKING:
    from kube_emulator import KubeEmulator

UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"

# The conformance kit's options and fixtures (live_world, polyingress_backend): the built-in
# backends' live tests use it as a third party's would.
pytest_plugins = ["polyingress.testing"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """The live-test rule of livekit.needs: skip without the proxy, fail under CI=true."""
    from livekit import require

    for mark in item.iter_markers("needs_proxy"):
        require(*mark.args)


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    """The Kubernetes API emulator (kmock, real HTTP), empty, for one test."""
    from kube_emulator import running_emulator

    with running_emulator() as emu:
        yield emu


def build(objects: list[dict[str, Any]], **opts: Any) -> BuildResult:
    store = ObjectStore()
    store.replace_many(upserts=objects, deletes=())
    return build_model(store.snapshot(), BuildOptions(**opts))


@pytest.fixture
def builder() -> Any:
    return build

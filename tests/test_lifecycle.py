"""Process lifecycle of real plugin processes: start, calls, crashes, kill, host death.

The plugin is tests/plugins/helper.py in one of its modes; see that file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import tether
from _lifecycle import is_zombie, pid_gone, pid_reaped, wait_until
from conftest import HOST_THEN_DIE, MakeClient, helper_cmd
from plugins.helper import CRASH_LINE, FLOOD_PREFIX, HANDSHAKE, Echo

PLUGIN_LOGGER = "tether.plugin.helper"


def started(make_client: MakeClient, mode: str = "healthy", **kwargs: object) -> tether.Client:
    client = make_client(mode, **kwargs)
    client.start()
    return client


def socket_path(client: tether.Client) -> str:
    rc = client.reattach_config
    assert rc is not None
    assert rc.network == "unix"
    return rc.address


# --- a healthy plugin -------------------------------------------------------------------------


def test_healthy_plugin_answers(make_client: MakeClient) -> None:
    client = started(make_client)
    echo = client.dispense("echo", Echo)
    assert echo.echo("hi") == "hi"
    assert echo.add(2, 40) == 42
    assert echo.pid() == client.pid
    assert client.negotiated_version == 1
    assert client.protocol == "tether"
    assert not client.exited
    assert client.returncode is None
    client.ping()


def test_context_manager_kills(make_client: MakeClient) -> None:
    with make_client() as client:
        pid = client.pid
        assert pid is not None
        assert client.dispense("echo", Echo).echo("x") == "x"
    assert client.exited
    assert client.returncode == 0
    assert pid_reaped(pid)


@pytest.mark.timeout(20)
def test_graceful_kill(make_client: MakeClient) -> None:
    client = started(make_client, kill_timeout=5.0)
    pid = client.pid
    assert pid is not None
    directory = os.path.dirname(socket_path(client))
    assert os.path.isdir(directory)
    began = time.monotonic()
    client.kill()
    elapsed = time.monotonic() - began
    # Behaviour, not speed: the plugin left on the shutdown message, no SIGKILL after 5 s.
    assert elapsed < 1.5
    assert client.returncode == 0
    assert client.exited
    assert pid_reaped(pid)
    assert not os.path.exists(directory)


@pytest.mark.timeout(20)
def test_kill_of_plugin_that_ignores_shutdown(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=PLUGIN_LOGGER)
    client = started(make_client, "ignore_shutdown", kill_timeout=0.5)
    pid = client.pid
    assert pid is not None
    directory = os.path.dirname(socket_path(client))
    began = time.monotonic()
    client.kill()
    elapsed = time.monotonic() - began
    assert 0.4 <= elapsed < 4.0
    assert client.returncode == -signal.SIGKILL
    assert pid_reaped(pid)
    assert not os.path.exists(directory)
    messages = [r.getMessage() for r in caplog.records if r.name == PLUGIN_LOGGER]
    assert any("plugin failed to exit gracefully" in m for m in messages), messages


def test_kill_is_idempotent_and_final(make_client: MakeClient) -> None:
    client = started(make_client)
    echo = client.dispense("echo", Echo)
    client.kill()
    client.kill()
    assert client.returncode == 0
    with pytest.raises(tether.ConnectionClosedError):
        echo.echo("after kill")
    with pytest.raises(tether.ConnectionClosedError):
        client.ping()
    with pytest.raises(tether.TetherError):
        client.dispense("echo", Echo)
    with pytest.raises(tether.TetherError, match="killed"):
        client.start()


def test_kill_before_start(make_client: MakeClient) -> None:
    client = make_client()
    client.kill()
    assert client.pid is None
    with pytest.raises(tether.TetherError):
        client.start()


@pytest.mark.timeout(20)
def test_kill_from_another_thread_during_calls(make_client: MakeClient) -> None:
    client = started(make_client, kill_timeout=5.0)
    echo = client.dispense("echo", Echo)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(echo.sleep, 10.0) for _ in range(4)]
        assert wait_until(lambda: echo.active_sleeps() == 4, 5.0)
        client.kill()
        for future in futures:
            with pytest.raises(tether.ConnectionClosedError):
                future.result(timeout=5.0)
    assert client.exited


# --- sockets ----------------------------------------------------------------------------------


def test_socket_dir_is_private(make_client: MakeClient) -> None:
    client = started(make_client)
    path = socket_path(client)
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0
    assert len(os.fsencode(path)) < 108


def test_socket_path_fits_with_a_long_tmpdir(
    make_client: MakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path
    while len(str(deep)) < 150:
        deep = deep / "a-rather-long-directory-name"
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() caches its answer
    assert tempfile.gettempdir() == str(deep)
    client = started(make_client)
    path = socket_path(client)
    assert len(os.fsencode(path)) < 108
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert client.dispense("echo", Echo).echo("short enough") == "short enough"
    client.kill()
    assert not os.path.exists(os.path.dirname(path))


# --- crashes ----------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_crash_fails_every_call_in_flight(make_client: MakeClient) -> None:
    client = started(make_client)
    echo = client.dispense("echo", Echo)
    with ThreadPoolExecutor(9) as pool:
        sleepers = [pool.submit(echo.sleep, 10.0) for _ in range(8)]
        assert wait_until(lambda: echo.active_sleeps() == 8, 5.0)
        began = time.monotonic()
        crasher = pool.submit(echo.crash, "kill")
        errors: list[BaseException] = []
        futures: list[Future[Any]] = [*sleepers, crasher]
        for future in futures:
            exc = future.exception(timeout=8.0)
            assert exc is not None
            errors.append(exc)
        elapsed = time.monotonic() - began
    assert elapsed < 8.0
    for exc in errors:
        assert isinstance(exc, tether.PluginCrashedError), repr(exc)
        assert exc.returncode == -signal.SIGKILL
        assert exc.signal == signal.SIGKILL
        assert exc.plugin == "helper"
        assert any(CRASH_LINE in line for line in exc.stderr_tail), exc.stderr_tail
        assert "SIGKILL" in str(exc)
    # Later calls fail at once, and say why.
    began = time.monotonic()
    with pytest.raises(tether.PluginCrashedError):
        echo.echo("anyone there?")
    with pytest.raises(tether.ConnectionClosedError):
        client.dispense("echo", Echo)
    assert time.monotonic() - began < 1.0
    assert client.exited
    assert client.returncode == -signal.SIGKILL


@pytest.mark.timeout(20)
def test_crash_by_exit_code(make_client: MakeClient) -> None:
    client = started(make_client)
    echo = client.dispense("echo", Echo)
    with pytest.raises(tether.PluginCrashedError) as info:
        echo.crash("exit")
    assert info.value.returncode == 3
    assert info.value.signal is None
    assert "exited with code 3" in str(info.value)
    assert any(CRASH_LINE in line for line in info.value.stderr_tail)
    with pytest.raises(tether.ConnectionClosedError):
        echo.add(1, 1)
    client.kill()  # still fine after a crash
    assert client.returncode == 3


@pytest.mark.timeout(20)
def test_crash_while_idle_is_reported_on_next_call(make_client: MakeClient) -> None:
    client = started(make_client)
    echo = client.dispense("echo", Echo)
    pid = client.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: client.exited, 5.0)
    began = time.monotonic()
    with pytest.raises(tether.ConnectionClosedError) as info:
        echo.echo("hello?")
    assert time.monotonic() - began < 3.0
    assert isinstance(info.value, tether.PluginCrashedError)
    assert info.value.signal == signal.SIGKILL


# --- timeouts ---------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_call_timeout_cancels_in_the_plugin(make_client: MakeClient) -> None:
    client = started(make_client)
    echo = client.dispense("echo", Echo)
    began = time.monotonic()
    with pytest.raises(tether.CallTimeoutError), tether.timeout(0.3):
        echo.sleep(10.0)
    assert time.monotonic() - began < 3.0
    assert wait_until(lambda: echo.active_sleeps() == 0, 5.0)
    assert echo.echo("still here") == "still here"


# --- stdio and logs ---------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_stdout_after_handshake_is_logged(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=PLUGIN_LOGGER)
    client = started(make_client)
    echo = client.dispense("echo", Echo)
    echo.print_stdout("a line on stdout|with a pipe")
    echo.print_stdout("1|1|unix|/tmp/evil|tether|")

    def logged() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.name == PLUGIN_LOGGER and r.getMessage() == "1|1|unix|/tmp/evil|tether|"
        ]

    assert wait_until(lambda: bool(logged()), 5.0)
    assert logged()[0].levelno == logging.INFO
    assert any(r.getMessage() == "a line on stdout|with a pipe" for r in caplog.records)
    assert echo.add(1, 2) == 3
    assert socket_path(client) != "/tmp/evil"


@pytest.mark.timeout(20)
def test_plugin_logging_reaches_host_logger(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=PLUGIN_LOGGER)
    client = started(make_client)
    echo = client.dispense("echo", Echo)
    echo.log("warning", "careful now")
    echo.log("debug", "fine detail")

    def find(text: str) -> logging.LogRecord | None:
        for r in caplog.records:
            if r.name == PLUGIN_LOGGER and r.getMessage().startswith(text):
                return r
        return None

    assert wait_until(lambda: find("careful now") is not None, 5.0)
    assert wait_until(lambda: find("fine detail") is not None, 5.0)
    warning, debug = find("careful now"), find("fine detail")
    assert warning is not None
    assert debug is not None
    assert warning.levelno == logging.WARNING
    assert debug.levelno == logging.DEBUG


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle() holds the handler's own lock around emit().
        if record.getMessage().startswith("flood "):
            self.count += 1


@pytest.fixture
def flood_counter(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Counter]:
    logger = logging.getLogger(PLUGIN_LOGGER)
    counter = _Counter()
    monkeypatch.setattr(logger, "propagate", False)  # keep 20k records out of pytest's capture
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(counter)
    yield counter
    logger.removeHandler(counter)
    logger.setLevel(old_level)


@pytest.mark.timeout(60)
def test_stderr_flood_does_not_block(make_client: MakeClient, flood_counter: _Counter) -> None:
    assert FLOOD_PREFIX.startswith("[INFO] ")
    client = started(make_client)
    echo = client.dispense("echo", Echo)
    lines = echo.flood(20)
    assert lines == 20 * 1024
    calls = 0
    while not echo.flood_done():
        assert echo.add(calls, 1) == calls + 1
        assert echo.echo("x" * 1000) == "x" * 1000
        calls += 1
        assert calls < 100_000, "the plugin's stderr writer never finished"
    assert wait_until(lambda: flood_counter.count == lines, 30.0), (flood_counter.count, lines)
    assert echo.echo("after the flood") == "after the flood"


# --- reattach ---------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_reattach(make_client: MakeClient) -> None:
    first = started(make_client)
    config = first.reattach_config
    assert config is not None
    assert config.pid == first.pid
    second = tether.Client(reattach=config, handshake=HANDSHAKE, name="second", kill_timeout=5.0)
    try:
        second.start()
        assert second.pid == first.pid
        assert second.negotiated_version == 1
        echo = second.dispense("echo", Echo)
        assert echo.pid() == first.pid
        assert echo.add(20, 22) == 42
        assert first.dispense("echo", Echo).echo("both") == "both"
        # B's kill stops the plugin; A is the parent, and sees it exit cleanly.
        killer = threading.Thread(target=second.kill)
        killer.start()
        assert wait_until(lambda: first.exited, 5.0)
        killer.join(10.0)
        assert not killer.is_alive()
        assert first.returncode == 0
        with pytest.raises(tether.ConnectionClosedError):
            echo.echo("gone")
    finally:
        second.kill()


def test_reattach_to_dead_pid() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(proc.stdout)
    config = tether.ReattachConfig("tether", 1, "unix", "/tmp/tether-nothing/plugin0", dead)
    client = tether.Client(reattach=config, handshake=HANDSHAKE)
    with pytest.raises(tether.HandshakeError, match=str(dead)):
        client.start()
    client.kill()


def test_reattach_with_checksum_is_a_config_error() -> None:
    config = tether.ReattachConfig("tether", 1, "unix", "/tmp/x", os.getpid())
    with pytest.raises(tether.ConfigError):
        tether.Client(reattach=config, handshake=HANDSHAKE, checksum="sha256:" + "0" * 64)


# --- TCP with AutoMTLS ------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_tcp_with_auto_mtls(make_client: MakeClient) -> None:
    client = started(make_client, transport="tcp", auto_mtls=True)
    echo = client.dispense("echo", Echo)
    assert echo.echo("over tls") == "over tls"
    assert echo.add(1, 2) == 3
    assert client.reattach_config is None  # AutoMTLS clients cannot be reattached to
    client.kill()
    assert client.returncode == 0


def test_tcp_requires_auto_mtls() -> None:
    with pytest.raises(tether.ConfigError):
        tether.Client(helper_cmd("healthy"), handshake=HANDSHAKE, transport="tcp")


# --- the host dies ----------------------------------------------------------------------------


@pytest.fixture
def host_process() -> Iterator[list[subprocess.Popen[str]]]:
    """Hosts started by a test; killed (SIGKILL) and reaped at teardown."""
    hosts: list[subprocess.Popen[str]] = []
    yield hosts
    for host in hosts:
        if host.poll() is None:
            host.kill()
        host.wait()
        if host.stdout is not None:
            host.stdout.close()


def start_host(
    hosts: list[subprocess.Popen[str]], mode: str, tmpdir: Path | None = None
) -> tuple[subprocess.Popen[str], list[int]]:
    env = None if tmpdir is None else {**os.environ, "TMPDIR": str(tmpdir)}
    host = subprocess.Popen(
        [sys.executable, HOST_THEN_DIE, mode],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    hosts.append(host)
    assert host.stdout is not None
    line = host.stdout.readline()
    pids = [int(p) for p in line.split()]
    assert len(pids) == 3, line
    for pid in pids:
        assert not pid_gone(pid)
    return host, pids


def all_gone(pids: list[int]) -> bool:
    return all(pid_gone(pid) for pid in pids)


@pytest.fixture
def plugin_pids() -> Iterator[list[int]]:
    """Plugin pids of dead hosts; any still running at teardown is SIGKILLed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not pid_gone(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.timeout(30)
def test_plugins_die_with_sigkilled_host(
    host_process: list[subprocess.Popen[str]], plugin_pids: list[int], tmp_path: Path
) -> None:
    host, pids = start_host(host_process, "wait", tmp_path)
    plugin_pids.extend(pids)
    assert len(list(tmp_path.glob("tether-*"))) == 3  # one socket directory per plugin
    host.kill()
    host.wait()
    assert wait_until(lambda: all_gone(pids), 2.0), [
        (pid, "zombie" if is_zombie(pid) else "running") for pid in pids if not pid_gone(pid)
    ]
    # The host could not remove its plugins' socket directories: each plugin did.
    assert wait_until(lambda: not list(tmp_path.glob("tether-*")), 2.0)


@pytest.mark.timeout(30)
def test_plugins_die_with_sigtermed_host(
    host_process: list[subprocess.Popen[str]], plugin_pids: list[int]
) -> None:
    host, pids = start_host(host_process, "wait")
    plugin_pids.extend(pids)
    host.terminate()
    assert host.wait(10.0) == -signal.SIGTERM
    assert wait_until(lambda: all_gone(pids), 2.0)


@pytest.mark.timeout(30)
def test_plugins_die_when_host_exits_without_kill(
    host_process: list[subprocess.Popen[str]], plugin_pids: list[int]
) -> None:
    host, pids = start_host(host_process, "exit")
    plugin_pids.extend(pids)
    assert host.wait(10.0) == 0
    assert wait_until(lambda: all_gone(pids), 2.0)


# --- AsyncClient ------------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_async_client_lifecycle() -> None:
    client = tether.AsyncClient(helper_cmd("healthy"), handshake=HANDSHAKE, name="helper")
    try:
        async with client:
            # Typed Any: the async proxy's methods are coroutines, unlike the interface's hints.
            echo: Any = await client.dispense("echo", Echo)
            assert await echo.echo("async") == "async"
            assert await echo.add(1, 2) == 3
            await client.ping()
            pid = client.pid
            assert pid is not None
        assert client.returncode == 0
        assert pid_reaped(pid)
        await client.kill()  # idempotent
        with pytest.raises(tether.TetherError):
            await client.start()
    finally:
        await client.kill()


@pytest.mark.timeout(30)
async def test_async_crash_fails_pending_awaits() -> None:
    client = tether.AsyncClient(helper_cmd("healthy"), handshake=HANDSHAKE, name="helper")
    try:
        await client.start()
        echo: Any = await client.dispense("echo", Echo)
        sleepers = [asyncio.ensure_future(echo.sleep(10.0)) for _ in range(4)]
        deadline = time.monotonic() + 5.0
        while await echo.active_sleeps() != 4:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        began = time.monotonic()
        results = await asyncio.wait_for(
            asyncio.gather(*sleepers, echo.crash("kill"), return_exceptions=True), 8.0
        )
        assert time.monotonic() - began < 8.0
        for result in results:
            assert isinstance(result, tether.PluginCrashedError), repr(result)
            assert result.signal == signal.SIGKILL
            assert any(CRASH_LINE in line for line in result.stderr_tail)
        with pytest.raises(tether.ConnectionClosedError):
            await echo.echo("later")
    finally:
        await client.kill()

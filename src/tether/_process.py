"""A plugin process seen from the host: spawn, handshake line, log relay, kill, reap."""

from __future__ import annotations

import collections
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Final

from ._errors import PluginExitedError, StartTimeoutError, stderr_suffix
from ._hclog import StderrParser, relay

__all__ = ["PluginProcess"]

_TAIL_LINES: Final = 20
_EOF: Final = object()


class PluginProcess:
    """One spawned plugin: its pipes, its log relay threads and its exit status.

    stdout's first line is the handshake; later stdout lines are relayed to the log (and
    copied to `stdout_sink`), so nothing a plugin prints can disturb the protocol, which
    runs over its own socket. stderr lines are parsed as go-plugin's hclog output and
    relayed into `logger`; the last lines are kept for error messages.
    """

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None,
        logger: logging.Logger,
        stdout_sink: IO[str] | None = None,
        stderr_sink: IO[str] | None = None,
    ) -> None:
        self.cmd = list(cmd)
        self._env = dict(env)
        self._cwd = cwd
        self.logger = logger
        self._stdout_sink = stdout_sink
        self._stderr_sink = stderr_sink
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._lines: queue.Queue[object] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def start(self) -> None:
        try:
            self.popen = subprocess.Popen(
                self.cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
                cwd=self._cwd,
                close_fds=True,
            )
        except OSError as exc:
            raise PluginExitedError(
                f"cannot start plugin {self.cmd[0]!r} ({exc.strerror or exc})", None, ()
            ) from exc
        assert self.popen.stdout is not None
        assert self.popen.stderr is not None
        for target, stream, label in (
            (self._read_stdout, self.popen.stdout, "stdout"),
            (self._read_stderr, self.popen.stderr, "stderr"),
        ):
            thread = threading.Thread(
                target=target,
                args=(stream,),
                name=f"tether-{self.logger.name}-{label}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def read_handshake(self, timeout: float) -> str:
        """The first stdout line; fails if the plugin exits or stays silent too long."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise StartTimeoutError(
                f"timeout while waiting for plugin to start (waited {timeout:g} s for the "
                f"handshake line from {self.cmd[0]!r})" + stderr_suffix(self.stderr_tail())
            ) from None
        if line is _EOF:
            returncode = self.wait(2.0)
            if returncode is None:
                self.kill()
            raise PluginExitedError(
                "plugin exited before we could connect", self.returncode, self.stderr_tail()
            )
        assert isinstance(line, str)
        return line

    def _read_stdout(self, stream: IO[bytes]) -> None:
        first = True
        try:
            for raw in stream:
                line = raw.decode("utf-8", "replace")
                if first:
                    first = False
                    self._lines.put(line)
                    continue
                text = line.rstrip("\r\n")
                self.logger.info("%s", text, extra={"plugin_stream": "stdout"})
                if self._stdout_sink is not None:
                    self._stdout_sink.write(line)
        except (OSError, ValueError):
            pass
        finally:
            if first:
                self._lines.put(_EOF)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        parser = StderrParser()
        try:
            for raw in stream:
                line = raw.decode("utf-8", "replace")
                self._tail.append(line.rstrip("\r\n"))
                relay(parser.parse(line), self.logger)
                if self._stderr_sink is not None:
                    self._stderr_sink.write(line)
        except (OSError, ValueError):
            pass

    def stderr_tail(self, wait: float = 0.5) -> tuple[str, ...]:
        """The last stderr lines, after letting the relay catch up with an exited plugin."""
        if self.popen is not None and self.popen.poll() is not None:
            deadline = time.monotonic() + wait
            for thread in self._threads:
                thread.join(max(deadline - time.monotonic(), 0))
        return tuple(self._tail)

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def wait(self, timeout: float | None) -> int | None:
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL the plugin and reap it (safe to repeat)."""
        popen = self.popen
        if popen is None:
            return
        if popen.poll() is None:
            try:
                os.kill(popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        popen.wait()

    def close(self) -> None:
        """Reap, close pipes and stop relay threads; the process must have exited."""
        popen = self.popen
        if popen is None:
            return
        self.kill()
        if popen.stdin is not None:
            try:
                popen.stdin.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(1.0)
        for stream in (popen.stdout, popen.stderr):
            if stream is not None:
                stream.close()

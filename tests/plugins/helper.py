# mypy: disable-error-code="empty-body"
"""One helper plugin, many behaviours: go-plugin's `TestHelperProcess`, in Python.

Run as ``python helper.py MODE``; the tests start it through `tether.Client` (or directly) and
the mode decides whether it acts as a healthy plugin or breaks the handshake in one way. The
`Echo` interface is defined here and imported by the tests, so both sides share one class.

If ``TETHER_HELPER_PIDFILE`` is set, the process writes its pid there before anything else, so a
test can check what happened to a process whose start failed.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1,
    magic_cookie_key="TETHER_LIFECYCLE_COOKIE",
    magic_cookie_value="d5c1b0e2-lifecycle",
)
ENV_PIDFILE = "TETHER_HELPER_PIDFILE"
CRASH_LINE = "helper: about to die on purpose"
FLOOD_PREFIX = "[INFO] flood "
FLOOD_LINE_BYTES = 1024

log = logging.getLogger("helper")


class Echo(tether.Interface):
    def echo(self, text: str) -> str: ...
    def add(self, a: int, b: int) -> int: ...
    def sleep(self, seconds: float) -> bool: ...
    def active_sleeps(self) -> int: ...
    def crash(self, how: str) -> None: ...
    def print_stdout(self, text: str) -> None: ...
    def log(self, level: str, message: str) -> None: ...
    def tag(self) -> str: ...
    def pid(self) -> int: ...
    def flood(self, megabytes: int) -> int: ...
    def flood_done(self) -> bool: ...
    def getenv(self, name: str) -> str: ...


class EchoImpl(Echo):
    def __init__(self, tag: str = "v1") -> None:
        self._tag = tag
        self._active = 0
        self._lock = threading.Lock()
        self._flood_finished = threading.Event()

    def echo(self, text: str) -> str:
        return text

    def add(self, a: int, b: int) -> int:
        return a + b

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if the host cancelled the call first."""
        with self._lock:
            self._active += 1
        try:
            return tether.current_call().cancelled.wait(seconds)
        finally:
            with self._lock:
                self._active -= 1

    def active_sleeps(self) -> int:
        with self._lock:
            return self._active

    def crash(self, how: str) -> None:
        # A line on stderr right before dying: the host must report it with the crash.
        log.error(CRASH_LINE)
        for handler in logging.getLogger().handlers:
            handler.flush()
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)

    def print_stdout(self, text: str) -> None:
        print(text, flush=True)

    def log(self, level: str, message: str) -> None:
        log.log(logging.getLevelNamesMapping()[level.upper()], "%s", message)

    def tag(self) -> str:
        return self._tag

    def pid(self) -> int:
        return os.getpid()

    def getenv(self, name: str) -> str:
        return os.environ.get(name, "")

    def flood(self, megabytes: int) -> int:
        """Write `megabytes` MiB of plain log lines to stderr in the background."""
        lines = megabytes * 1024 * 1024 // FLOOD_LINE_BYTES
        threading.Thread(target=self._flood, args=(lines,), daemon=True).start()
        return lines

    def _flood(self, lines: int) -> None:
        batch = 64
        for start in range(0, lines, batch):
            chunk = []
            for n in range(start, min(start + batch, lines)):
                head = f"{FLOOD_PREFIX}{n:08d} "
                chunk.append(head + "x" * (FLOOD_LINE_BYTES - len(head) - 1) + "\n")
            data = "".join(chunk).encode()
            while data:
                data = data[os.write(2, data) :]
        self._flood_finished.set()

    def flood_done(self) -> bool:
        return self._flood_finished.is_set()


def _hang(seconds: float = 30.0) -> None:
    # Stay alive (a host that does not kill us is a bug the test must see), but not forever.
    time.sleep(seconds)


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(mode: str) -> None:
    pidfile = os.environ.get(ENV_PIDFILE)
    if pidfile:
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
    if mode == "healthy":
        tether.serve(HANDSHAKE, plugins={"echo": EchoImpl()})
    elif mode == "versioned":
        tether.serve(
            HANDSHAKE,
            versioned_plugins={2: {"echo": EchoImpl("v2")}, 3: {"echo": EchoImpl("v3")}},
        )
    elif mode == "ignore_shutdown":
        # serve() returns on the host's shutdown request, but this thread keeps the
        # interpreter alive: the host has to SIGKILL us.
        threading.Thread(target=time.sleep, args=(30.0,), daemon=False).start()
        tether.serve(HANDSHAKE, plugins={"echo": EchoImpl()})
    elif mode == "bad_core":
        _print_line("2|1|unix|/tmp/x|tether|")
        _hang()
    elif mode == "netrpc":
        _print_line("1|1|unix|/tmp/x|netrpc|")
        _hang()
    elif mode == "garbage":
        _print_line("hello this is not a handshake")
        _hang()
    elif mode == "silent":
        _hang()
    elif mode == "exit7":
        sys.stderr.write("helper: something went wrong early\n")
        sys.stderr.write("helper: giving up with exit code 7\n")
        sys.stderr.flush()
        sys.exit(7)
    else:
        sys.stderr.write(f"helper: unknown mode {mode!r}\n")
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1])

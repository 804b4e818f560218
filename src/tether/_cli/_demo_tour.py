"""`tether demo`: the manager at work on the built-in demo plugin, in a few seconds.

Everything it needs ships in the package (the plugin is `python -m tether._demo`), so it
works from a plain `pip install`.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from ._app import STATE, console, echo_json
from ._manage import status_table

__all__ = ["tour"]

_REPLACE_WAIT = 10.0  # seconds for the pool to replace a killed instance


def _config_text() -> str:
    from .._demo import DEMO_HANDSHAKE

    config = {
        "version": 1,
        "handshake": {
            "magic_cookie_key": DEMO_HANDSHAKE.magic_cookie_key,
            "magic_cookie_value": DEMO_HANDSHAKE.magic_cookie_value,
            "protocol_version": DEMO_HANDSHAKE.protocol_version,
        },
        "plugins": {
            "demo": {
                "command": [sys.executable, "-m", "tether._demo"],
                "instances": 2,
                "start_timeout": 20,
                "restart": {"mode": "always", "backoff_initial": 0.1, "backoff_max": 1.0},
                "health": {"interval": 1.0, "timeout": 2.0, "failures": 2},
                # The demo plugin must import tether exactly as this process does.
                "env_allow": ["PATH", "HOME", "LANG", "LC_*", "TMPDIR", "PYTHONPATH"],
                "env": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            }
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


def tour() -> int:
    from .._demo import DemoCalculator
    from .._errors import RemoteError
    from .._manager import PluginManager

    out = console()
    log: list[dict[str, Any]] = []

    def say(step: str, **facts: Any) -> None:
        log.append({"step": step, **facts})
        if not STATE.json:
            out.print(f"[bold cyan]>[/bold cyan] {step}")

    with tempfile.TemporaryDirectory(prefix="tether-demo-") as tmp:
        path = Path(tmp) / "tether.yaml"
        path.write_text(_config_text(), encoding="utf-8")
        say(f"wrote a configuration for the built-in demo plugin: {path}")
        with PluginManager.from_config(path) as manager:
            began = time.perf_counter()
            manager.start()
            say(
                "started plugin 'demo' (`python -m tether._demo`) as 2 processes",
                seconds=round(time.perf_counter() - began, 3),
            )
            calc = manager.dispense("demo", DemoCalculator)
            total = calc.add(2, 3)
            say(f"calc.add(2, 3) = {total}", result=total)
            pids = sorted({calc.pid() for _ in range(4)})
            say(f"4 calls of calc.pid() were answered by processes {pids}", pids=pids)
            try:
                calc.divide(1, 0)
            except RemoteError as exc:
                say(f"calc.divide(1, 0) raised in the plugin: {exc}", error=str(exc))
            statuses = [s.to_dict() for s in manager.status()]
            if not STATE.json:
                out.print(status_table(statuses, "status"))
            victim = next(i["pid"] for i in statuses[0]["instances"] if i.get("pid"))
            os.kill(victim, signal.SIGKILL)
            say(f"killed instance pid {victim} with SIGKILL", killed=victim)
            replaced = _wait_replaced(manager, victim)
            statuses = [s.to_dict() for s in manager.status()]
            if replaced:
                new = sorted(i["pid"] for i in statuses[0]["instances"] if i.get("pid"))
                say(f"the pool replaced it: instances now run as {new}", pids=new)
                answered = sorted({calc.pid() for _ in range(4)})
                say(f"calls go to the new instance too: answered by {answered}", pids=answered)
            else:
                say("the pool did not replace the instance in time", failed=True)
            if not STATE.json:
                out.print(status_table(statuses, "status"))
        say("stopped the manager: every plugin process is gone")
    if STATE.json:
        echo_json(log)
    return 0 if replaced else 1


def _wait_replaced(manager: Any, victim: int) -> bool:
    deadline = time.monotonic() + _REPLACE_WAIT
    while time.monotonic() < deadline:
        (status,) = manager.status()
        running = [
            i for i in status.instances if str(i.state) == "running" and i.pid not in (None, victim)
        ]
        if len(running) == len(status.instances):
            return True
        time.sleep(0.05)
    return False

"""The calculator run by the plugin manager from examples/plugin-config.yaml.

    python examples/calculator/managed_host.py

Starts the calculator as the configuration says (its `calculator:` block reaches the
plugin's `initialize`), scales it to three processes behind one proxy, kills one while calls
go on, watches the pool replace it, and stops everything.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # `examples.calculator` from a checkout

import tether  # noqa: E402
from examples.calculator.interface import ScientificCalculator  # noqa: E402

CONFIG = HERE.parent / "plugin-config.yaml"


def show(manager: tether.PluginManager) -> None:
    for status in manager.status():
        pids = ", ".join(str(i.pid) for i in status.instances if i.pid is not None)
        print(
            f"  {status.name} {status.version}: {status.state}, {len(status.instances)} "
            f"instance(s) [{pids}], {status.calls} calls, "
            f"{status.average_latency * 1e6:.0f} µs average, {status.restarts} restarts"
        )


def main() -> None:
    # Auto-scan is the CLI's business (`tether run`); this host starts what the file lists.
    manager = tether.PluginManager.from_config(CONFIG)
    lifecycle = [str(manager.state("calculator"))]
    manager.subscribe(lambda e: lifecycle.append(str(e.state)) if e.instance is None else None)
    with manager:
        manager.start()
        print("calculator lifecycle:", " → ".join(lifecycle))
        calc = manager.dispense("calculator", ScientificCalculator)
        print("2 + 3 =", calc.add(2, 3))
        print("sqrt(2) =", calc.sqrt(2), "(precision from the config's calculator: block)")
        print("configured angle unit:", calc.get_angle_unit().value)

        manager.scale("calculator", 3)
        print("scaled to 3 instances:")
        show(manager)

        # Calls keep going on the other instances while one is killed and replaced.
        stop = threading.Event()
        done = [0]
        failed: list[str] = []

        def caller() -> None:
            while not stop.is_set():
                try:
                    calc.multiply(6, 7)
                    done[0] += 1
                except tether.PluginCrashedError as exc:
                    failed.append(type(exc).__name__)

        worker = threading.Thread(target=caller)
        worker.start()
        victim = manager.status()[0].instances[0].pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        print(f"killed instance pid {victim} while calls were running")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            instances = manager.status()[0].instances
            pids = {i.pid for i in instances if str(i.state) == "running"}
            if len(pids) == 3 and victim not in pids:
                break
            time.sleep(0.05)
        stop.set()
        worker.join()
        print(
            f"{done[0]} calls succeeded meanwhile; {len(failed)} call(s) in flight on the "
            "killed instance raised PluginCrashedError"
        )
        print("after the replacement:")
        show(manager)
    print("stopped:", ", ".join(f"{s.name} {s.state}" for s in manager.status()))


if __name__ == "__main__":
    main()

"""The calculator demo: start the plugin, use it, break it, crash it, restart it.

Run from anywhere: `python examples/calculator/host.py` (add `-v` to see the plugin's logs,
relayed from its stderr into this process's `logging`). Exits non-zero if anything
behaves unexpectedly.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import tether

# Same import scheme as plugin.py: `interface` sits next to this script.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if TYPE_CHECKING:
    from examples.calculator.interface import (
        HANDSHAKE,
        PLUGIN_NAME,
        AddRequest,
        AngleUnit,
        CalculatorConfig,
        CalculatorError,
        Operation,
        ScientificCalculator,
    )
else:
    from interface import (
        HANDSHAKE,
        PLUGIN_NAME,
        AddRequest,
        AngleUnit,
        CalculatorConfig,
        CalculatorError,
        Operation,
        ScientificCalculator,
    )

PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugin.py")

# The tutorial's plugin-config.yaml: precision 15, max_value 1e100, radians, cache 1000.
CONFIG = CalculatorConfig(
    precision=15, max_value=1e100, angle_unit=AngleUnit.RADIANS, cache_size=1000
)


class DemoFailure(Exception):
    """Something did not behave as the demo expects."""


def section(title: str) -> None:
    print(f"\n== {title}")


def show(label: str, value: object) -> None:
    print(f"  {label:<32} {value}")


def expect(label: str, got: float, want: float) -> None:
    show(label, got)
    if not math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12):
        raise DemoFailure(f"{label}: expected {want}, got {got}")


def expect_error(label: str, error: type[Exception], call: Callable[[], Any]) -> Exception:
    try:
        result = call()
    except error as exc:
        # A RemoteError's str() starts with the remote type's full name; show just its message.
        text = exc.remote_message if isinstance(exc, tether.RemoteError) else str(exc)
        show(label, f"-> {type(exc).__name__}: {text}")
        return exc
    raise DemoFailure(f"{label}: expected {error.__name__}, got {result!r}")


def start(client: tether.Client) -> ScientificCalculator:
    client.start()
    calc = client.dispense(PLUGIN_NAME, ScientificCalculator)
    calc.initialize(CONFIG)
    print(f"started plugin pid {client.pid}, protocol version {client.negotiated_version}")
    return calc


def new_client() -> tether.Client:
    return tether.Client([sys.executable, PLUGIN], handshake=HANDSHAKE, name=PLUGIN_NAME)


def demo(calc: ScientificCalculator, client: tether.Client) -> None:
    section("arithmetic")
    expect("add(2, 3)", calc.add(2, 3), 5)
    expect("subtract(10, 4.5)", calc.subtract(10, 4.5), 5.5)
    expect("multiply(6, 7)", calc.multiply(6, 7), 42)
    expect("divide(22, 7)", calc.divide(22, 7), 22 / 7)
    expect("add(0.1, 0.2)  [15 digits]", calc.add(0.1, 0.2), 0.3)

    section("scientific (radians)")
    expect("sin(pi/6)", calc.sin(math.pi / 6), 0.5)
    expect("cos(pi/3)", calc.cos(math.pi / 3), 0.5)
    expect("tan(pi/4)", calc.tan(math.pi / 4), 1)
    expect("log(2, 1024)", calc.log(2, 1024), 10)
    expect("pow(2, 10)", calc.pow(2, 10), 1024)
    expect("sqrt(2)", calc.sqrt(2), math.sqrt(2))

    section("scientific (degrees)")
    calc.set_angle_unit(AngleUnit.DEGREES)
    show("get_angle_unit()", calc.get_angle_unit().value)
    expect("sin(30)", calc.sin(30), 0.5)
    expect("cos(60)", calc.cos(60), 0.5)
    expect("tan(45)", calc.tan(45), 1)
    calc.set_angle_unit(AngleUnit.RADIANS)

    section("batches (one round trip each)")
    requests = [AddRequest(1, 2), AddRequest(0.5, 0.25), AddRequest(math.nan, 1)]
    responses = calc.batch_add(requests)
    show("batch_add 1+2, .5+.25, nan+1", " | ".join(_outcome(r.result, r.error) for r in responses))
    ops = [Operation("multiply", 3, 4), Operation("divide", 1, 0), Operation("pow", 2, 0.5)]
    batch = calc.batch_calculate(ops)
    outcomes = map(_outcome, batch.results, batch.errors)
    show("batch_calculate 3*4, 1/0, 2**.5", " | ".join(outcomes))
    show("", f"{batch.succeeded} succeeded, {batch.failed} failed")
    if (batch.succeeded, batch.failed) != (2, 1) or responses[2].error is None:
        raise DemoFailure(f"unexpected batch results: {responses!r} {batch!r}")

    section("bad input")
    expect_error("divide(1, 0)", CalculatorError, lambda: calc.divide(1, 0))
    expect_error("sqrt(-1)", CalculatorError, lambda: calc.sqrt(-1))
    expect_error("multiply(1e101, 2)", CalculatorError, lambda: calc.multiply(1e101, 2))
    # Arguments are checked against the interface's type hints before they are sent.
    bad: Any = "2"
    expect_error("add('2', 3)", tether.ArgumentError, lambda: calc.add(bad, 3))

    section("status")
    status = calc.get_status()
    started = status.start_time.isoformat(timespec="seconds")
    show("state / uptime", f"{status.state.value}, up {status.uptime:.3f} s since {started}")
    show(
        "requests / average latency", f"{status.request_count}, {status.average_latency_ms:.3f} ms"
    )

    section("metadata")
    meta = calc.get_metadata()
    show(f"{meta.name} {meta.version}", meta.description)
    show("operations", ", ".join(meta.supported_operations))
    show("config", ", ".join(f"{k}={v}" for k, v in meta.config.items()))


def _outcome(result: float | None, error: str | None) -> str:
    return f"error: {error}" if error is not None else str(result)


def crash(calc: ScientificCalculator, client: tether.Client) -> None:
    section("plugin crash")
    pid = client.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    show(f"os.kill({pid}, SIGKILL)", "the plugin is gone")
    exc = expect_error("add(1, 1)", tether.PluginCrashedError, lambda: calc.add(1, 1))
    assert isinstance(exc, tether.PluginCrashedError)
    show("  exc.signal", exc.signal)
    if exc.signal != signal.SIGKILL:
        raise DemoFailure(f"expected the plugin to die of SIGKILL, got {exc.returncode}")


def run() -> None:
    print("tether calculator demo")
    with new_client() as client:
        calc = start(client)
        demo(calc, client)
        crash(calc, client)

    section("restart")
    with new_client() as client:
        calc = start(client)
        expect("add(1, 1)", calc.add(1, 1), 2)
        section("shutdown")
        calc.shutdown()
        show("state after shutdown()", calc.get_status().state.value)
        expect_error("add(1, 1)", CalculatorError, lambda: calc.add(1, 1))
    show("plugin process", f"exited with code {client.returncode}")
    if client.returncode != 0:
        raise DemoFailure(f"the plugin did not exit cleanly: {client.returncode}")
    print("\ndone")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show the plugin's logs")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        run()
    except (DemoFailure, tether.TetherError) as exc:
        sys.stdout.flush()
        print(f"\ndemo FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

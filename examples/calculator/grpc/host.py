"""A small Python host for the gRPC calculator plugin: what a Go host would do, in Python.

Run from anywhere: `python examples/calculator/grpc/host.py` (CALCULATOR_LOG_LEVEL=debug
shows the plugin's logs, relayed from its stderr). It starts plugin.py, initializes the
calculator, prints a few results, shows a business error arriving as a gRPC status, and
shuts the plugin down; it exits non-zero if anything fails.
"""

from __future__ import annotations

import logging
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "generated")]

# The repository-wide mypy run cannot import generated code (the Makefile's lint target
# checks this directory again with generated/ on MYPYPATH), hence the ignores below.
import calculator_pb2  # noqa: E402
import grpc  # noqa: E402
from shared import (  # noqa: E402
    HANDSHAKE,
    PLUGIN_NAME,
    CalculatorPlugin,
)

import tether  # noqa: E402

PLUGIN = os.path.join(HERE, "plugin.py")

# The tutorial's configuration: precision 15, max_value 1e100, radians, cache 1000.
CONFIG = calculator_pb2.Config(
    precision=15,
    max_value=1e100,
    angle_unit=calculator_pb2.ANGLE_UNIT_RADIANS,
    cache_size=1000,
)


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("CALCULATOR_LOG_LEVEL", "WARNING").upper(),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        with tether.Client(
            [sys.executable, PLUGIN], handshake=HANDSHAKE, name=PLUGIN_NAME
        ) as client:
            calc = client.dispense(PLUGIN_NAME, CalculatorPlugin)
            calc.Initialize(CONFIG, timeout=10)

            def show(label: str, result: calculator_pb2.Result) -> None:
                print(f"{label} = {result.value:g}")

            show("2 + 3", calc.Add(calculator_pb2.BinaryRequest(a=2, b=3)))
            show("10 - 4", calc.Subtract(calculator_pb2.BinaryRequest(a=10, b=4)))
            show("6 * 7", calc.Multiply(calculator_pb2.BinaryRequest(a=6, b=7)))
            show("1 / 4", calc.Divide(calculator_pb2.BinaryRequest(a=1, b=4)))
            show("sqrt(2)", calc.Sqrt(calculator_pb2.SqrtRequest(value=2)))
            show("2 ** 10", calc.Pow(calculator_pb2.PowRequest(base=2, exp=10)))

            calc.SetAngleUnit(
                calculator_pb2.AngleUnitMessage(unit=calculator_pb2.ANGLE_UNIT_DEGREES)
            )
            show("sin(30 deg)", calc.Sin(calculator_pb2.AngleRequest(angle=30)))

            batch = calc.BatchCalculate(
                calculator_pb2.BatchCalculateRequest(
                    operations=[
                        calculator_pb2.Operation(op="add", a=1, b=2),
                        calculator_pb2.Operation(op="divide", a=1, b=0),
                    ]
                )
            )
            for result in batch.results:
                outcome = result.WhichOneof("outcome")
                print("batch:", result.value if outcome == "value" else f"error: {result.error}")

            try:
                calc.Divide(calculator_pb2.BinaryRequest(a=1, b=0))
            except grpc.RpcError as exc:
                print(f"1 / 0 -> {exc.code().name}: {exc.details()}")
            else:
                print("1 / 0 did not fail", file=sys.stderr)
                return 1

            status = calc.GetStatus(calculator_pb2.Empty())
            state = calculator_pb2.PluginState.Name(status.state)
            print(f"status: {state}, {status.request_count} requests")
            calc.Shutdown(calculator_pb2.Empty())
    except (tether.TetherError, grpc.RpcError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The calculator plugin over go-plugin's gRPC protocol, so a Go host can drive it.

The business logic is the native example's `ScientificCalculatorImpl`
(examples/calculator/plugin.py); this file only adapts `calculator.Calculator` requests
(calculator.proto) to it and its `CalculatorError`s to gRPC statuses: FAILED_PRECONDITION
when the calculator's lifecycle state refuses the call (not initialized, shut down...),
INVALID_ARGUMENT for everything else (division by zero, bad input, overflow, bad config),
with the calculator's message as the status message.

The host starts it as `python3 examples/calculator/grpc/plugin.py`; run by hand it refuses
to start, because the host's magic cookie is missing from its environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

HERE = os.path.dirname(os.path.abspath(__file__))
# The native example's directory comes first: there `plugin` is its plugin.py (the
# business logic), not this file, and `interface` its contract.
sys.path[:0] = [os.path.dirname(HERE), HERE, os.path.join(HERE, "generated")]

# The repository-wide mypy run cannot import generated code (the Makefile's lint target
# checks this directory again with generated/ on MYPYPATH), hence the ignores below.

import calculator_pb2  # noqa: E402
import calculator_pb2_grpc  # noqa: E402
import grpc  # noqa: E402
from google.protobuf import timestamp_pb2  # noqa: E402
from shared import (  # noqa: E402
    HANDSHAKE,
    PLUGIN_NAME,
    CalculatorPlugin,
)

import tether  # noqa: E402

if TYPE_CHECKING:
    from examples.calculator.interface import (
        AddRequest,
        AngleUnit,
        CalculatorConfig,
        CalculatorError,
        Operation,
        PluginState,
    )
    from examples.calculator.plugin import ScientificCalculatorImpl
else:
    from interface import (
        AddRequest,
        AngleUnit,
        CalculatorConfig,
        CalculatorError,
        Operation,
        PluginState,
    )
    from plugin import ScientificCalculatorImpl

_READY = (PluginState.READY, PluginState.PROCESSING)
Context = grpc.ServicerContext


class CalculatorService(calculator_pb2_grpc.CalculatorServicer):
    """`calculator.Calculator` on top of the native example's implementation."""

    def __init__(self, impl: ScientificCalculatorImpl | None = None) -> None:
        self.impl = impl if impl is not None else ScientificCalculatorImpl()

    # ------------------------------------------------------------------ lifecycle

    def Initialize(self, request: calculator_pb2.Config, context: Context) -> calculator_pb2.Empty:
        try:
            unit = _angle_unit(request.angle_unit)
        except ValueError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        config = CalculatorConfig(
            precision=request.precision,
            max_value=request.max_value,
            angle_unit=unit,
            cache_size=request.cache_size,
        )
        before = self.impl.get_status().state
        try:
            self.impl.initialize(config)
        except CalculatorError as exc:
            # A bad config fails from UNINITIALIZED; any other state refuses to initialize.
            self._fail(context, exc, precondition=before is not PluginState.UNINITIALIZED)
        return calculator_pb2.Empty()

    def Shutdown(self, request: calculator_pb2.Empty, context: Context) -> calculator_pb2.Empty:
        try:
            self.impl.shutdown()
        except CalculatorError as exc:
            self._fail(context, exc, precondition=True)
        return calculator_pb2.Empty()

    # ------------------------------------------------------------------ status

    def GetStatus(self, request: calculator_pb2.Empty, context: Context) -> calculator_pb2.Status:
        status = self.impl.get_status()
        start_time = timestamp_pb2.Timestamp()
        start_time.FromDatetime(status.start_time)
        return calculator_pb2.Status(
            state="PLUGIN_STATE_" + status.state.name,
            message=status.message,
            start_time=start_time,
            uptime_seconds=status.uptime,
            request_count=status.request_count,
            average_latency_ms=status.average_latency_ms,
        )

    def GetMetadata(
        self, request: calculator_pb2.Empty, context: Context
    ) -> calculator_pb2.Metadata:
        meta = self.impl.get_metadata()
        return calculator_pb2.Metadata(
            name=meta.name,
            version=meta.version,
            description=meta.description,
            supported_operations=meta.supported_operations,
            config=meta.config,
        )

    # ------------------------------------------------------------------ arithmetic

    def Add(self, request: calculator_pb2.BinaryRequest, context: Context) -> calculator_pb2.Result:
        return self._result(context, self.impl.add, request.a, request.b)

    def Subtract(
        self, request: calculator_pb2.BinaryRequest, context: Context
    ) -> calculator_pb2.Result:
        return self._result(context, self.impl.subtract, request.a, request.b)

    def Multiply(
        self, request: calculator_pb2.BinaryRequest, context: Context
    ) -> calculator_pb2.Result:
        return self._result(context, self.impl.multiply, request.a, request.b)

    def Divide(
        self, request: calculator_pb2.BinaryRequest, context: Context
    ) -> calculator_pb2.Result:
        return self._result(context, self.impl.divide, request.a, request.b)

    # ------------------------------------------------------------------ batches

    def BatchAdd(
        self, request: calculator_pb2.BatchAddRequest, context: Context
    ) -> calculator_pb2.BatchAddResponse:
        try:
            responses = self.impl.batch_add([AddRequest(r.a, r.b) for r in request.requests])
        except CalculatorError as exc:
            self._fail(context, exc)
        return calculator_pb2.BatchAddResponse(
            responses=[
                calculator_pb2.AddResponse(result=r.result)
                if r.result is not None
                else calculator_pb2.AddResponse(error=r.error or "failed")
                for r in responses
            ]
        )

    def BatchCalculate(
        self, request: calculator_pb2.BatchCalculateRequest, context: Context
    ) -> calculator_pb2.BatchCalculateResponse:
        operations = [Operation(op.op, op.a, op.b) for op in request.operations]
        try:
            batch = self.impl.batch_calculate(operations)
        except CalculatorError as exc:
            self._fail(context, exc)
        return calculator_pb2.BatchCalculateResponse(
            results=[
                calculator_pb2.OperationResult(value=value)
                if value is not None
                else calculator_pb2.OperationResult(error=error or "failed")
                for value, error in zip(batch.results, batch.errors, strict=True)
            ],
            succeeded=batch.succeeded,
            failed=batch.failed,
            duration_ms=batch.duration_ms,
        )

    # ------------------------------------------------------------------ scientific

    def Sin(self, request: calculator_pb2.AngleRequest, context: Context) -> calculator_pb2.Result:
        return self._result(context, self.impl.sin, request.angle)

    def Cos(self, request: calculator_pb2.AngleRequest, context: Context) -> calculator_pb2.Result:
        return self._result(context, self.impl.cos, request.angle)

    def Tan(self, request: calculator_pb2.AngleRequest, context: Context) -> calculator_pb2.Result:
        return self._result(context, self.impl.tan, request.angle)

    def Log(self, request: calculator_pb2.LogRequest, context: Context) -> calculator_pb2.Result:
        return self._result(context, self.impl.log, request.base, request.value)

    def Pow(self, request: calculator_pb2.PowRequest, context: Context) -> calculator_pb2.Result:
        return self._result(context, self.impl.pow, request.base, request.exp)

    def Sqrt(self, request: calculator_pb2.SqrtRequest, context: Context) -> calculator_pb2.Result:
        return self._result(context, self.impl.sqrt, request.value)

    def SetAngleUnit(
        self, request: calculator_pb2.AngleUnitMessage, context: Context
    ) -> calculator_pb2.Empty:
        try:
            unit = _angle_unit(request.unit)
        except ValueError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            self.impl.set_angle_unit(unit)
        except CalculatorError as exc:
            self._fail(context, exc)
        return calculator_pb2.Empty()

    def GetAngleUnit(
        self, request: calculator_pb2.Empty, context: Context
    ) -> calculator_pb2.AngleUnitMessage:
        try:
            unit = self.impl.get_angle_unit()
        except CalculatorError as exc:
            self._fail(context, exc)
        return calculator_pb2.AngleUnitMessage(unit="ANGLE_UNIT_" + unit.name)

    # ------------------------------------------------------------------ errors

    def _result(
        self, context: Context, func: Callable[..., float], *args: float
    ) -> calculator_pb2.Result:
        try:
            return calculator_pb2.Result(value=func(*args))
        except CalculatorError as exc:
            self._fail(context, exc)

    def _fail(
        self, context: Context, exc: CalculatorError, *, precondition: bool | None = None
    ) -> NoReturn:
        """End the RPC with the status for `exc`. By default a failure is the caller's bad
        input, unless the calculator is not in a state to calculate at all."""
        if precondition is None:
            precondition = self.impl.get_status().state not in _READY
        code = (
            grpc.StatusCode.FAILED_PRECONDITION
            if precondition
            else grpc.StatusCode.INVALID_ARGUMENT
        )
        _abort(context, code, str(exc))


def _angle_unit(value: int) -> AngleUnit:
    try:
        name = calculator_pb2.AngleUnit.Name(value)
    except ValueError:
        raise ValueError(f"unknown angle unit {value}") from None
    return AngleUnit[name.removeprefix("ANGLE_UNIT_")]


def _abort(context: Context, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise AssertionError("unreachable: abort raises")


def main() -> None:
    tether.serve(HANDSHAKE, plugins={PLUGIN_NAME: CalculatorPlugin(CalculatorService())})


if __name__ == "__main__":
    main()

"""The calculator plugin: a `ScientificCalculator` served over tether.

The host starts this file as a child process (`python examples/calculator/plugin.py`); run
by hand it refuses to start, because the host's magic cookie is missing from its environment.
"""

from __future__ import annotations

import logging
import math
import operator
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import tether

# This file runs as a script, so `interface` is imported as a top-level module from the
# script's own directory (put first on sys.path explicitly, in case Python runs with -P).
# Type checkers see the files as the package `examples.calculator` and import it from there.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if TYPE_CHECKING:
    from examples.calculator.interface import (
        HANDSHAKE,
        PLUGIN_NAME,
        AddRequest,
        AddResponse,
        AngleUnit,
        BatchResult,
        CalculatorConfig,
        CalculatorError,
        Metadata,
        Operation,
        PluginState,
        ScientificCalculator,
        Status,
    )
else:
    from interface import (
        HANDSHAKE,
        PLUGIN_NAME,
        AddRequest,
        AddResponse,
        AngleUnit,
        BatchResult,
        CalculatorConfig,
        CalculatorError,
        Metadata,
        Operation,
        PluginState,
        ScientificCalculator,
        Status,
    )

log = logging.getLogger("calculator")

VERSION = "1.0.0"

# The lifecycle as a transition table; anything else is refused with a CalculatorError.
_TRANSITIONS: dict[PluginState, frozenset[PluginState]] = {
    PluginState.UNINITIALIZED: frozenset({PluginState.INITIALIZING, PluginState.SHUTTING_DOWN}),
    PluginState.INITIALIZING: frozenset({PluginState.READY, PluginState.ERROR}),
    PluginState.READY: frozenset({PluginState.PROCESSING, PluginState.SHUTTING_DOWN}),
    PluginState.PROCESSING: frozenset(
        {PluginState.READY, PluginState.ERROR, PluginState.SHUTTING_DOWN}
    ),
    PluginState.ERROR: frozenset({PluginState.SHUTTING_DOWN}),
    PluginState.SHUTTING_DOWN: frozenset(),
}


def _divide(a: float, b: float) -> float:
    if b == 0:
        raise CalculatorError("division by zero")
    return a / b


def _pow(base: float, exp: float) -> float:
    try:
        return math.pow(base, exp)
    except ValueError:  # math.pow raises ValueError for 0 ** -1 and (-8) ** 0.5
        if base == 0:
            raise CalculatorError("division by zero") from None
        raise CalculatorError(f"pow({base:g}, {exp:g}) is not a real number") from None


def _log(base: float, value: float) -> float:
    if base <= 0 or base == 1:
        raise CalculatorError(f"invalid logarithm base: {base:g} (must be > 0 and != 1)")
    if value <= 0:
        raise CalculatorError(f"logarithm of a non-positive value: {value:g}")
    return math.log(value, base)


def _sqrt(value: float) -> float:
    if value < 0:
        raise CalculatorError(f"square root of a negative value: {value:g}")
    return math.sqrt(value)


_BINARY: dict[str, Callable[[float, float], float]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": _divide,
    "pow": _pow,
}
_TRIG: dict[str, Callable[[float], float]] = {"sin": math.sin, "cos": math.cos, "tan": math.tan}

SUPPORTED_OPERATIONS = [
    "add",
    "subtract",
    "multiply",
    "divide",
    "batch_add",
    "batch_calculate",
    "sin",
    "cos",
    "tan",
    "log",
    "pow",
    "sqrt",
]


class ScientificCalculatorImpl(ScientificCalculator):
    """Serves both `Calculator` and `ScientificCalculator`; safe for concurrent calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = PluginState.UNINITIALIZED
        self._message = "waiting for initialize()"
        self._start_time = datetime.now(UTC)
        self._started = time.monotonic()
        self._config = CalculatorConfig()
        self._angle_unit = self._config.angle_unit
        self._in_flight = 0
        self._requests = 0
        self._busy_seconds = 0.0
        self._cache: OrderedDict[tuple[object, ...], float] = OrderedDict()

    # ------------------------------------------------------------------ lifecycle

    def initialize(self, config: CalculatorConfig) -> None:
        with self._lock:
            self._move(PluginState.INITIALIZING, "initializing", "initialize")
        log.info(
            "initializing calculator",
            extra={"precision": config.precision, "max_value": config.max_value},
        )
        problem = _config_problem(config)
        with self._lock:
            if problem is not None:
                self._move(PluginState.ERROR, f"invalid config: {problem}", "fail")
                log.error("initialization failed: %s", problem)
                raise CalculatorError(f"invalid config: {problem}")
            self._config = config
            self._angle_unit = config.angle_unit
            self._move(PluginState.READY, "ready", "finish initializing")
        log.info("calculator ready")

    def shutdown(self) -> None:
        with self._lock:
            self._move(PluginState.SHUTTING_DOWN, "shut down", "shut down")
            self._cache.clear()
        log.info("calculator shut down", extra={"requests": self._requests})

    # ------------------------------------------------------------------ status

    def get_status(self) -> Status:
        with self._lock:
            count, busy = self._requests, self._busy_seconds
            return Status(
                state=self._state,
                message=self._message,
                start_time=self._start_time,
                uptime=time.monotonic() - self._started,
                request_count=count,
                average_latency_ms=busy / count * 1000 if count else 0.0,
            )

    def get_metadata(self) -> Metadata:
        with self._lock:
            initialized = self._state not in (
                PluginState.UNINITIALIZED,
                PluginState.INITIALIZING,
            )
            cfg, unit = self._config, self._angle_unit
        config = (
            {
                "precision": str(cfg.precision),
                "max_value": repr(cfg.max_value),
                "angle_unit": unit.value,
                "cache_size": str(cfg.cache_size),
            }
            if initialized
            else {}
        )
        return Metadata(
            name=PLUGIN_NAME,
            version=VERSION,
            description="A scientific calculator plugin (the go-plugin tutorial, on tether)",
            supported_operations=list(SUPPORTED_OPERATIONS),
            config=config,
        )

    # ------------------------------------------------------------------ arithmetic

    def add(self, a: float, b: float) -> float:
        with self._request("add"):
            return self._calculate("add", a, b)

    def subtract(self, a: float, b: float) -> float:
        with self._request("subtract"):
            return self._calculate("subtract", a, b)

    def multiply(self, a: float, b: float) -> float:
        with self._request("multiply"):
            return self._calculate("multiply", a, b)

    def divide(self, a: float, b: float) -> float:
        with self._request("divide"):
            return self._calculate("divide", a, b)

    # ------------------------------------------------------------------ batches

    def batch_add(self, requests: list[AddRequest]) -> list[AddResponse]:
        with self._request("batch_add", size=len(requests)):
            responses: list[AddResponse] = []
            for req in requests:
                try:
                    responses.append(AddResponse(result=self._calculate("add", req.a, req.b)))
                except CalculatorError as exc:
                    responses.append(AddResponse(error=str(exc)))
            return responses

    def batch_calculate(self, operations: list[Operation]) -> BatchResult:
        start = time.perf_counter()
        with self._request("batch_calculate", size=len(operations)):
            results: list[float | None] = []
            errors: list[str | None] = []
            for op in operations:
                try:
                    if op.op not in _BINARY:
                        raise CalculatorError(f"unknown operation {op.op!r}")
                    results.append(self._calculate(op.op, op.a, op.b))
                    errors.append(None)
                except CalculatorError as exc:
                    results.append(None)
                    errors.append(str(exc))
            failed = sum(e is not None for e in errors)
            return BatchResult(
                results=results,
                errors=errors,
                succeeded=len(operations) - failed,
                failed=failed,
                duration_ms=(time.perf_counter() - start) * 1000,
            )

    # ------------------------------------------------------------------ scientific

    def sin(self, angle: float) -> float:
        with self._request("sin"):
            return self._trig("sin", angle)

    def cos(self, angle: float) -> float:
        with self._request("cos"):
            return self._trig("cos", angle)

    def tan(self, angle: float) -> float:
        with self._request("tan"):
            return self._trig("tan", angle)

    def log(self, base: float, value: float) -> float:
        with self._request("log"):
            return self._calculate("log", base, value, func=_log)

    def pow(self, base: float, exp: float) -> float:
        with self._request("pow"):
            return self._calculate("pow", base, exp)

    def sqrt(self, value: float) -> float:
        with self._request("sqrt"):
            return self._calculate("sqrt", value, func=_sqrt)

    def set_angle_unit(self, unit: AngleUnit) -> None:
        with self._lock:
            self._check_ready()
            self._angle_unit = unit
            self._cache.clear()
        log.info("angle unit set", extra={"unit": unit.value})

    def get_angle_unit(self) -> AngleUnit:
        with self._lock:
            self._check_ready()
            return self._angle_unit

    # ------------------------------------------------------------------ internals

    def _move(self, new: PluginState, message: str, action: str) -> None:
        """Change state (the lock is held), refusing transitions the lifecycle forbids."""
        if new not in _TRANSITIONS[self._state]:
            raise CalculatorError(f"cannot {action}: calculator is {self._state.value}")
        self._state = new
        self._message = message

    def _check_ready(self) -> None:
        state = self._state
        if state in (PluginState.READY, PluginState.PROCESSING):
            return
        if state in (PluginState.UNINITIALIZED, PluginState.INITIALIZING):
            raise CalculatorError("calculator not initialized")
        if state is PluginState.ERROR:
            raise CalculatorError(f"calculator is in error state: {self._message}")
        raise CalculatorError("calculator is shut down")

    @contextmanager
    def _request(self, method: str, **fields: object) -> Iterator[None]:
        """One business call: READY -> PROCESSING -> READY, counted and timed."""
        with self._lock:
            self._check_ready()
            self._in_flight += 1
            if self._state is PluginState.READY:
                self._move(PluginState.PROCESSING, "processing", method)
            count = self._requests = self._requests + 1
        log.debug("processing %s request", method, extra={"count": count, **fields})
        start = time.perf_counter()
        failure: BaseException | None = None
        try:
            yield
        except CalculatorError:
            raise  # the caller's bad input: the calculator itself is fine
        except Exception as exc:
            failure = exc
            log.exception("%s failed unexpectedly", method)
            raise
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._in_flight -= 1
                self._busy_seconds += elapsed
                if failure is not None and self._state is PluginState.PROCESSING:
                    self._move(PluginState.ERROR, f"{method} failed: {failure!r}", "fail")
                elif self._in_flight == 0 and self._state is PluginState.PROCESSING:
                    self._move(PluginState.READY, "ready", "finish")

    def _trig(self, name: str, angle: float) -> float:
        unit = self._angle_unit
        func = _TRIG[name]
        if unit is AngleUnit.DEGREES:
            return self._calculate(name, angle, func=lambda x: func(math.radians(x)), key=unit)
        return self._calculate(name, angle, func=func, key=unit)

    def _calculate(
        self,
        name: str,
        *args: float,
        func: Callable[..., float] | None = None,
        key: object = None,
    ) -> float:
        """Validate the inputs, compute (or recall) the result and round it."""
        cfg = self._config
        for x in args:
            if math.isnan(x):
                raise CalculatorError("invalid input: NaN not allowed")
            if abs(x) > cfg.max_value:
                raise CalculatorError(f"input value exceeds maximum: {cfg.max_value:g}")
        cache_key = (name, key, *args)
        with self._lock:
            cached = self._cache.get(cache_key)
            if cached is not None:
                self._cache.move_to_end(cache_key)
                return cached
        compute = func if func is not None else _BINARY[name]
        try:
            result = compute(*args)
        except OverflowError:
            raise CalculatorError("result overflow") from None
        if math.isinf(result):
            raise CalculatorError("result overflow")
        if math.isnan(result):
            raise CalculatorError("result is not a number")
        result = round(result, cfg.precision)
        if cfg.cache_size > 0:
            with self._lock:
                self._cache[cache_key] = result
                if len(self._cache) > cfg.cache_size:
                    self._cache.popitem(last=False)
        return result


def _config_problem(config: CalculatorConfig) -> str | None:
    if config.precision < 0:
        return f"precision must be >= 0, got {config.precision}"
    if not config.max_value > 0:  # also catches NaN
        return f"max_value must be > 0, got {config.max_value!r}"
    if config.cache_size < 0:
        return f"cache_size must be >= 0, got {config.cache_size}"
    return None


def main() -> None:
    tether.serve(HANDSHAKE, plugins={PLUGIN_NAME: ScientificCalculatorImpl()})


if __name__ == "__main__":
    main()

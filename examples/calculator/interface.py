# Interface methods are declarations with `...` bodies (tether never calls them), which
# mypy would otherwise report as missing return statements:
# mypy: disable-error-code="empty-body"
"""The calculator plugin's contract, imported by both the host and the plugin.

Everything that crosses the process boundary is declared here: the handshake, the data
types (plain dataclasses and enums), the error type and the two interfaces. tether reads
the type hints to validate arguments on the way out and results on the way back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

import tether

__all__ = [
    "HANDSHAKE",
    "PLUGIN_NAME",
    "AddRequest",
    "AddResponse",
    "AngleUnit",
    "BatchResult",
    "Calculator",
    "CalculatorConfig",
    "CalculatorError",
    "Metadata",
    "Operation",
    "PluginState",
    "ScientificCalculator",
    "Status",
]

# Host and plugin must agree on these; a plugin started by anything else refuses to run.
HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1,
    magic_cookie_key="CALCULATOR_PLUGIN",
    magic_cookie_value="6f3c9e1a58d24b7f8a0e2c4d71b5a9e3",
)

# The name the plugin serves its implementation under (one object serves both interfaces).
PLUGIN_NAME = "calculator"


class PluginState(enum.Enum):
    """The plugin's lifecycle.

    UNINITIALIZED -> INITIALIZING -> READY <-> PROCESSING; a failed initialization goes to
    ERROR; READY and ERROR (and UNINITIALIZED) go to SHUTTING_DOWN, which is final.
    """

    UNINITIALIZED = "uninitialized"
    INITIALIZING = "initializing"
    READY = "ready"
    PROCESSING = "processing"
    ERROR = "error"
    SHUTTING_DOWN = "shutting_down"


class AngleUnit(enum.Enum):
    RADIANS = "radians"
    DEGREES = "degrees"


@dataclass(frozen=True, slots=True)
class CalculatorConfig:
    """The tutorial's `calculator:` configuration block."""

    precision: int = 15  # decimal digits results are rounded to
    max_value: float = 1e100  # inputs with a larger magnitude are rejected
    angle_unit: AngleUnit = AngleUnit.RADIANS
    cache_size: int = 1000  # results remembered (least recently used first out); 0 = off


@dataclass(frozen=True, slots=True)
class Status:
    state: PluginState
    message: str
    start_time: datetime  # when the plugin process started (UTC)
    uptime: float  # seconds
    request_count: int
    average_latency_ms: float  # time spent in the plugin per request


@dataclass(frozen=True, slots=True)
class Metadata:
    name: str
    version: str
    description: str
    supported_operations: list[str]
    config: dict[str, str]


@dataclass(frozen=True, slots=True)
class AddRequest:
    a: float
    b: float


@dataclass(frozen=True, slots=True)
class AddResponse:
    result: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    op: str  # "add", "subtract", "multiply", "divide" or "pow"
    a: float
    b: float


@dataclass(frozen=True, slots=True)
class BatchResult:
    results: list[float | None] = field(default_factory=list)  # None where the op failed
    errors: list[str | None] = field(default_factory=list)  # None where the op succeeded
    succeeded: int = 0
    failed: int = 0
    duration_ms: float = 0.0


@tether.remote_exception
class CalculatorError(Exception):
    """A calculation or lifecycle error (bad input, overflow, not initialized...).

    Raised by the plugin; the host gets a `tether.RemoteError` that is also a
    CalculatorError, so `except CalculatorError:` works across the process boundary.
    """


class Calculator(tether.Interface):
    """The basic calculator: lifecycle, status and the four arithmetic operations."""

    # lifecycle
    def initialize(self, config: CalculatorConfig) -> None: ...
    def shutdown(self) -> None: ...

    # status
    def get_status(self) -> Status: ...
    def get_metadata(self) -> Metadata: ...

    # arithmetic
    def add(self, a: float, b: float) -> float: ...
    def subtract(self, a: float, b: float) -> float: ...
    def multiply(self, a: float, b: float) -> float: ...
    def divide(self, a: float, b: float) -> float: ...

    # batches: one round trip for many operations
    def batch_add(self, requests: list[AddRequest]) -> list[AddResponse]: ...
    def batch_calculate(self, operations: list[Operation]) -> BatchResult: ...


class ScientificCalculator(Calculator):
    """The tutorial's exercise 1: a calculator with scientific functions."""

    def sin(self, angle: float) -> float: ...
    def cos(self, angle: float) -> float: ...
    def tan(self, angle: float) -> float: ...
    def log(self, base: float, value: float) -> float: ...
    def pow(self, base: float, exp: float) -> float: ...
    def sqrt(self, value: float) -> float: ...

    # unit for sin/cos/tan
    def set_angle_unit(self, unit: AngleUnit) -> None: ...
    def get_angle_unit(self) -> AngleUnit: ...

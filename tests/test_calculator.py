"""The calculator example (examples/calculator), end to end against real plugin processes."""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import tether

# The example is a directory of scripts, importable as the package `examples.calculator`
# from the repository root (which pytest does not put on sys.path by itself).
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from examples.calculator.interface import (  # noqa: E402
    HANDSHAKE,
    PLUGIN_NAME,
    AddRequest,
    AddResponse,
    AngleUnit,
    BatchResult,
    Calculator,
    CalculatorConfig,
    CalculatorError,
    Operation,
    PluginState,
    ScientificCalculator,
)

EXAMPLE = ROOT / "examples" / "calculator"
PLUGIN_CMD = [sys.executable, str(EXAMPLE / "plugin.py")]
TUTORIAL_CONFIG = CalculatorConfig(
    precision=15, max_value=1e100, angle_unit=AngleUnit.RADIANS, cache_size=1000
)
NAN, INF = math.nan, math.inf

MakeCalc = Callable[..., tuple[tether.Client, ScientificCalculator]]


def new_client() -> tether.Client:
    return tether.Client(PLUGIN_CMD, handshake=HANDSHAKE, name=PLUGIN_NAME, call_timeout=10)


@pytest.fixture(scope="module")
def calc() -> Iterator[ScientificCalculator]:
    """A plugin initialized with the tutorial's config, shared by the stateless tests."""
    with new_client() as client:
        proxy = client.dispense(PLUGIN_NAME, ScientificCalculator)
        proxy.initialize(TUTORIAL_CONFIG)
        yield proxy


@pytest.fixture
def degrees(calc: ScientificCalculator) -> Iterator[ScientificCalculator]:
    """The shared calculator switched to degrees for one test."""
    calc.set_angle_unit(AngleUnit.DEGREES)
    try:
        yield calc
    finally:
        calc.set_angle_unit(AngleUnit.RADIANS)


@pytest.fixture
def make_calc() -> Iterator[MakeCalc]:
    """A fresh plugin of its own (not initialized unless a config is given); killed after."""
    clients: list[tether.Client] = []

    def make(config: CalculatorConfig | None = None) -> tuple[tether.Client, ScientificCalculator]:
        client = new_client()
        clients.append(client)
        proxy = client.dispense(PLUGIN_NAME, ScientificCalculator)
        if config is not None:
            proxy.initialize(config)
        return client, proxy

    yield make
    for client in clients:
        client.kill()


def remote_error(call: Callable[[], object]) -> tether.RemoteError:
    """The tether.RemoteError a call raises, checked to also be a CalculatorError."""
    with pytest.raises(tether.RemoteError) as info:
        call()
    exc = info.value
    assert isinstance(exc, CalculatorError)
    assert exc.type_name.endswith("CalculatorError")
    assert "Traceback" in exc.remote_traceback
    return exc


# --- lifecycle ---------------------------------------------------------------------------------


def test_lifecycle_states(make_calc: MakeCalc) -> None:
    _, calc = make_calc()
    status = calc.get_status()
    assert status.state is PluginState.UNINITIALIZED
    assert status.request_count == 0
    assert calc.get_metadata().config == {}
    assert remote_error(lambda: calc.add(1, 2)).remote_message == "calculator not initialized"
    for call in (lambda: calc.divide(1, 2), calc.get_angle_unit, lambda: calc.sin(0)):
        with pytest.raises(CalculatorError, match="calculator not initialized"):
            call()

    calc.initialize(TUTORIAL_CONFIG)
    assert calc.get_status().state is PluginState.READY
    assert calc.add(1, 2) == 3.0
    assert calc.get_status().state is PluginState.READY  # back from PROCESSING
    with pytest.raises(CalculatorError, match="cannot initialize: calculator is ready"):
        calc.initialize(TUTORIAL_CONFIG)

    calc.shutdown()
    status = calc.get_status()
    assert status.state is PluginState.SHUTTING_DOWN
    assert status.request_count == 1
    with pytest.raises(CalculatorError, match="calculator is shut down"):
        calc.add(1, 2)
    with pytest.raises(CalculatorError, match="cannot shut down"):
        calc.shutdown()
    with pytest.raises(CalculatorError, match="cannot initialize"):
        calc.initialize(TUTORIAL_CONFIG)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (CalculatorConfig(precision=-1), "precision must be >= 0"),
        (CalculatorConfig(max_value=0.0), "max_value must be > 0"),
        (CalculatorConfig(max_value=NAN), "max_value must be > 0"),
        (CalculatorConfig(cache_size=-5), "cache_size must be >= 0"),
    ],
)
def test_invalid_config_enters_error_state(
    make_calc: MakeCalc, config: CalculatorConfig, problem: str
) -> None:
    _, calc = make_calc()
    exc = remote_error(lambda: calc.initialize(config))
    assert exc.remote_message.startswith(f"invalid config: {problem}")
    status = calc.get_status()
    assert status.state is PluginState.ERROR
    assert problem in status.message
    with pytest.raises(CalculatorError, match="calculator is in error state: invalid config"):
        calc.add(1, 1)
    with pytest.raises(CalculatorError, match="cannot initialize: calculator is error"):
        calc.initialize(TUTORIAL_CONFIG)
    calc.shutdown()  # ERROR -> SHUTTING_DOWN is allowed
    assert calc.get_status().state is PluginState.SHUTTING_DOWN


def test_shutdown_before_initialize(make_calc: MakeCalc) -> None:
    client, calc = make_calc()
    calc.shutdown()
    assert calc.get_status().state is PluginState.SHUTTING_DOWN
    client.kill()
    assert client.returncode == 0


def test_base_interface_dispense() -> None:
    with new_client() as client:
        basic = client.dispense(PLUGIN_NAME, Calculator)
        basic.initialize(TUTORIAL_CONFIG)
        assert basic.multiply(6, 7) == 42.0
        assert not hasattr(basic, "sin")  # the proxy has only Calculator's methods
        # The same object also serves the scientific interface.
        assert client.dispense(PLUGIN_NAME, ScientificCalculator).sqrt(9) == 3.0


# --- arithmetic --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "a", "b", "expected"),
    [
        ("add", 2, 3, 5.0),
        ("add", -1.5, 1.5, 0.0),
        ("add", 0.1, 0.2, 0.3),  # 0.30000000000000004 rounded to 15 digits
        ("subtract", 10, 4.5, 5.5),
        ("subtract", 0.3, 0.1, 0.2),  # 0.19999999999999998
        ("multiply", 6, 7, 42.0),
        ("multiply", 1.1, 1.1, 1.21),  # 1.2100000000000002
        ("multiply", 1e100, 1e100, 1e200),
        ("divide", 1, 3, 0.333333333333333),
        ("divide", 22, 7, 3.142857142857143),
        ("divide", -9, 3, -3.0),
    ],
)
def test_arithmetic(
    calc: ScientificCalculator, method: str, a: float, b: float, expected: float
) -> None:
    result = getattr(calc, method)(a, b)
    assert type(result) is float
    assert result == expected


def test_precision_and_max_value_from_config(make_calc: MakeCalc) -> None:
    _, calc = make_calc(CalculatorConfig(precision=2, max_value=1.7e308, cache_size=0))
    assert calc.divide(2, 3) == 0.67
    assert calc.divide(10, 3) == 3.33
    assert calc.sqrt(2) == 1.41
    assert calc.add(1e300, 1e300) == 2e300  # allowed by this max_value
    assert calc.get_metadata().config["precision"] == "2"
    for call in (lambda: calc.multiply(1e308, 10), lambda: calc.add(1.6e308, 1.6e308)):
        assert remote_error(call).remote_message == "result overflow"


# --- business errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "args", "message"),
    [
        ("divide", (1, 0), "division by zero"),
        ("divide", (0, 0), "division by zero"),
        ("add", (NAN, 1), "invalid input: NaN not allowed"),
        ("subtract", (1, NAN), "invalid input: NaN not allowed"),
        ("sin", (NAN,), "invalid input: NaN not allowed"),
        ("multiply", (1e101, 1), "input value exceeds maximum: 1e+100"),
        ("add", (1, -2e100), "input value exceeds maximum: 1e+100"),
        ("add", (INF, 1), "input value exceeds maximum: 1e+100"),
        ("pow", (10, 400), "result overflow"),
        ("pow", (0, -1), "division by zero"),
        ("pow", (-8, 1 / 3), "pow(-8, 0.333333) is not a real number"),
        ("sqrt", (-4,), "square root of a negative value: -4"),
        ("log", (0, 10), "invalid logarithm base: 0 (must be > 0 and != 1)"),
        ("log", (1, 10), "invalid logarithm base: 1 (must be > 0 and != 1)"),
        ("log", (-2, 10), "invalid logarithm base: -2 (must be > 0 and != 1)"),
        ("log", (10, 0), "logarithm of a non-positive value: 0"),
        ("log", (10, -1), "logarithm of a non-positive value: -1"),
    ],
)
def test_business_errors(
    calc: ScientificCalculator, method: str, args: tuple[float, ...], message: str
) -> None:
    exc = remote_error(lambda: getattr(calc, method)(*args))
    assert exc.remote_message == message
    # The host can also catch it as the shared type alone.
    with pytest.raises(CalculatorError, match=re.escape(message)):
        getattr(calc, method)(*args)


def test_business_error_leaves_calculator_ready(calc: ScientificCalculator) -> None:
    with pytest.raises(CalculatorError):
        calc.divide(1, 0)
    assert calc.get_status().state is PluginState.READY
    assert calc.divide(1, 4) == 0.25


# --- argument errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda c: c.add("1", 2), "a"),
        (lambda c: c.add(1, None), "b"),
        (lambda c: c.divide(a=1, b="0"), "b"),
        (lambda c: c.sin("30"), "angle"),
        (lambda c: c.log(2, [8]), "value"),
        (lambda c: c.set_angle_unit("gradians"), "unit"),
        (lambda c: c.batch_add([AddRequest(1, 2), "oops"]), "requests"),
        (lambda c: c.batch_calculate([{"op": "add", "a": "1", "b": 2}]), "operations"),
        (lambda c: c.initialize({"precision": "high"}), "config"),
    ],
)
def test_argument_errors_name_the_parameter(
    calc: ScientificCalculator, call: Callable[[Any], object], parameter: str
) -> None:
    before = calc.get_status().request_count
    with pytest.raises(tether.ArgumentError) as info:
        call(calc)
    assert info.value.parameter == parameter
    assert f"argument {parameter!r}" in str(info.value)
    assert isinstance(info.value, TypeError)
    assert calc.get_status().request_count == before  # refused before anything was sent


def test_argument_count_errors(calc: ScientificCalculator) -> None:
    loose: Any = calc
    with pytest.raises(tether.ArgumentError, match=r"add\(\)"):
        loose.add(1)
    with pytest.raises(tether.ArgumentError):
        loose.sqrt(1, 2)


def test_argument_error_in_nested_field(calc: ScientificCalculator) -> None:
    loose: Any = calc
    with pytest.raises(tether.ArgumentError, match=r"at config\.precision"):
        loose.initialize({"precision": "high"})


# --- batches -----------------------------------------------------------------------------------


def test_batch_add_mixed(calc: ScientificCalculator) -> None:
    responses = calc.batch_add(
        [
            AddRequest(1, 2),
            AddRequest(NAN, 1),
            AddRequest(0.1, 0.2),
            AddRequest(1e101, 0),
            AddRequest(-4, 4),
        ]
    )
    assert responses == [
        AddResponse(result=3.0),
        AddResponse(error="invalid input: NaN not allowed"),
        AddResponse(result=0.3),
        AddResponse(error="input value exceeds maximum: 1e+100"),
        AddResponse(result=0.0),
    ]
    assert calc.batch_add([]) == []


def test_batch_calculate_mixed(calc: ScientificCalculator) -> None:
    batch = calc.batch_calculate(
        [
            Operation("add", 1, 2),
            Operation("divide", 1, 0),
            Operation("multiply", 2.5, 4),
            Operation("mod", 7, 3),
            Operation("pow", 2, 10),
            Operation("subtract", NAN, 1),
            Operation("divide", 1, 3),
        ]
    )
    assert batch.results == [3.0, None, 10.0, None, 1024.0, None, 0.333333333333333]
    assert batch.errors == [
        None,
        "division by zero",
        None,
        "unknown operation 'mod'",
        None,
        "invalid input: NaN not allowed",
        None,
    ]
    assert (batch.succeeded, batch.failed) == (4, 3)
    assert 0 <= batch.duration_ms < 1000
    empty = calc.batch_calculate([])
    assert empty == BatchResult(duration_ms=empty.duration_ms)


def test_batch_of_many(calc: ScientificCalculator) -> None:
    ops = [Operation("add", i, i) for i in range(2000)]
    batch = calc.batch_calculate(ops)
    assert batch.results == [float(2 * i) for i in range(2000)]
    assert batch.succeeded == 2000


# --- scientific --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "args", "expected"),
    [
        ("sin", (0,), 0.0),
        ("sin", (math.pi / 6,), 0.5),
        ("sin", (math.pi / 2,), 1.0),
        ("cos", (math.pi,), -1.0),
        ("cos", (math.pi / 3,), 0.5),
        ("tan", (math.pi / 4,), 1.0),
        ("sin", (30,), round(math.sin(30), 15)),
        ("log", (2, 1024), 10.0),
        ("log", (10, 1000), 3.0),
        ("log", (math.e, math.e), 1.0),
        ("log", (0.5, 8), -3.0),
        ("pow", (2, 10), 1024.0),
        ("pow", (2, -1), 0.5),
        ("pow", (9, 0.5), 3.0),
        ("sqrt", (16,), 4.0),
        ("sqrt", (0,), 0.0),
        ("sqrt", (2,), round(math.sqrt(2), 15)),
    ],
)
def test_scientific_radians(
    calc: ScientificCalculator, method: str, args: tuple[float, ...], expected: float
) -> None:
    assert calc.get_angle_unit() is AngleUnit.RADIANS
    assert getattr(calc, method)(*args) == expected


@pytest.mark.parametrize(
    ("method", "angle", "expected"),
    [
        ("sin", 30, 0.5),
        ("sin", 90, 1.0),
        ("sin", 180, 0.0),
        ("sin", -90, -1.0),
        ("cos", 60, 0.5),
        ("cos", 90, 0.0),
        ("cos", 180, -1.0),
        ("tan", 45, 1.0),
        ("tan", 0, 0.0),
    ],
)
def test_scientific_degrees(
    degrees: ScientificCalculator, method: str, angle: float, expected: float
) -> None:
    assert degrees.get_angle_unit() is AngleUnit.DEGREES
    assert getattr(degrees, method)(angle) == expected


def test_angle_unit_switch_is_not_cached(calc: ScientificCalculator) -> None:
    in_radians = calc.sin(30)
    assert in_radians == round(math.sin(30), 15)
    calc.set_angle_unit(AngleUnit.DEGREES)
    try:
        assert calc.sin(30) == 0.5
        assert calc.get_metadata().config["angle_unit"] == "degrees"
    finally:
        calc.set_angle_unit(AngleUnit.RADIANS)
    assert calc.sin(30) == in_radians
    assert calc.get_angle_unit() is AngleUnit.RADIANS


def test_angle_unit_from_config(make_calc: MakeCalc) -> None:
    _, calc = make_calc(CalculatorConfig(angle_unit=AngleUnit.DEGREES))
    assert calc.get_angle_unit() is AngleUnit.DEGREES
    assert calc.cos(60) == 0.5


# --- status and metadata -----------------------------------------------------------------------


def test_status_counters_and_latency(make_calc: MakeCalc) -> None:
    before = datetime.now(UTC)
    _, calc = make_calc(TUTORIAL_CONFIG)
    first = calc.get_status()
    assert first.state is PluginState.READY
    assert first.message == "ready"
    assert first.request_count == 0
    assert first.average_latency_ms == 0.0
    assert first.start_time.tzinfo is not None
    assert before - timedelta(seconds=5) <= first.start_time <= datetime.now(UTC)

    n = 25
    for i in range(n - 5):
        assert calc.add(i, 1) == i + 1
    for _ in range(3):
        with pytest.raises(CalculatorError):
            calc.divide(1, 0)  # failed requests count too
    calc.batch_add([AddRequest(1, 1)] * 10)  # a batch is one request
    calc.sqrt(4)
    calc.get_metadata()  # status and metadata queries are not requests
    calc.get_angle_unit()

    status = calc.get_status()
    assert status.request_count == n
    assert 0 < status.average_latency_ms < 100
    assert status.uptime > first.uptime > 0
    assert status.start_time == first.start_time


def test_metadata(calc: ScientificCalculator) -> None:
    meta = calc.get_metadata()
    assert meta.name == "calculator"
    assert meta.version == "1.0.0"
    assert meta.description
    assert meta.supported_operations == [
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
    assert meta.config == {
        "precision": "15",
        "max_value": "1e+100",
        "angle_unit": "radians",
        "cache_size": "1000",
    }
    assert float(meta.config["max_value"]) == 1e100


# --- async client ------------------------------------------------------------------------------


async def test_async_client_concurrent_calls() -> None:
    async with tether.AsyncClient(
        PLUGIN_CMD, handshake=HANDSHAKE, name=PLUGIN_NAME, call_timeout=10
    ) as client:
        # AsyncClient.dispense is typed as returning the interface, whose methods are sync;
        # its proxy's methods are coroutines, so the proxy is used untyped here.
        calc: Any = await client.dispense(PLUGIN_NAME, ScientificCalculator)
        await calc.initialize(TUTORIAL_CONFIG)
        results = await asyncio.gather(*(calc.add(i, 0.5) for i in range(50)))
        assert results == [i + 0.5 for i in range(50)]

        mixed = await asyncio.gather(
            calc.divide(1, 4),
            calc.divide(1, 0),
            calc.sin(math.pi / 2),
            calc.batch_calculate([Operation("multiply", 3, 3)]),
            return_exceptions=True,
        )
        assert mixed[0] == 0.25
        assert isinstance(mixed[1], CalculatorError)
        assert isinstance(mixed[1], tether.RemoteError)
        assert mixed[2] == 1.0
        assert isinstance(mixed[3], BatchResult)
        assert mixed[3].results == [9.0]

        status = await calc.get_status()
        assert status.request_count == 54
        assert status.state is PluginState.READY
        await calc.shutdown()


# --- crash -------------------------------------------------------------------------------------


def test_plugin_crash_is_reported(make_calc: MakeCalc) -> None:
    client, calc = make_calc(TUTORIAL_CONFIG)
    assert calc.add(1, 1) == 2.0
    pid = client.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(tether.PluginCrashedError) as info:
        calc.add(1, 1)
    assert time.monotonic() - started < 5
    exc = info.value
    assert exc.signal == 9
    assert exc.returncode == -9
    assert exc.plugin == PLUGIN_NAME
    assert "SIGKILL" in str(exc)
    assert isinstance(exc, tether.ConnectionClosedError)
    with pytest.raises(tether.ConnectionClosedError):
        calc.get_status()
    client.kill()  # still safe
    assert client.exited

    # A new plugin process starts from scratch.
    _, again = make_calc()
    assert again.get_status().state is PluginState.UNINITIALIZED


# --- the scripts -------------------------------------------------------------------------------


def test_plugin_refuses_to_run_by_hand(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != HANDSHAKE.magic_cookie_key}
    proc = subprocess.run(
        PLUGIN_CMD, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=20
    )
    assert proc.returncode == 1
    assert "This binary is a plugin" in proc.stderr
    assert proc.stdout == ""


def test_demo_host_script(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "host.py")],
        cwd=tmp_path,  # works from any directory
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for header in (
        "== arithmetic",
        "== scientific (radians)",
        "== scientific (degrees)",
        "== batches",
        "== bad input",
        "== status",
        "== metadata",
        "== plugin crash",
        "== restart",
        "== shutdown",
    ):
        assert header in out
    assert "CalculatorError: division by zero" in out
    assert "ArgumentError" in out
    assert "PluginCrashedError" in out
    assert "exited with code 0" in out
    assert out.rstrip().endswith("done")
    assert "Traceback" not in proc.stderr
    assert len(out.splitlines()) < 65


def test_managed_host_script(tmp_path: Path) -> None:
    """docs/MANAGER.md's example: the calculator from the YAML config, scaled, one instance
    killed under load and replaced."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "managed_host.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert (
        "calculator lifecycle: discovered → validating → starting → handshaking → connected "
        "→ running" in out
    )
    assert "2 + 3 = 5.0" in out
    assert "3 instance(s)" in out
    assert "1 restarts" in out
    assert out.rstrip().endswith("stopped: calculator stopped")
    assert "Traceback" not in proc.stderr

"""The gRPC examples (examples/counter, examples/calculator/grpc), Python host to Python plugin,
end to end against real plugin processes.

The examples are directories of scripts that import their generated code and their
`shared.py` by plain module name, so their modules are loaded here from their files under
unique names (two `shared.py` cannot both be imported as `shared` into one process). They are
typed `Any`: mypy cannot follow the examples' sys.path-based imports.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

import tether

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from examples.calculator.interface import HANDSHAKE as NATIVE_HANDSHAKE  # noqa: E402

COUNTER = ROOT / "examples" / "counter"
CALCULATOR_GRPC = ROOT / "examples" / "calculator" / "grpc"
COUNTER_PLUGIN = [sys.executable, str(COUNTER / "plugin.py")]
CALCULATOR_PLUGIN = [sys.executable, str(CALCULATOR_GRPC / "plugin.py")]
RUN_TIMEOUT = 20.0

_loaded: dict[Path, Any] = {}


def load(path: Path) -> Any:
    """Import the example module at `path` (once) under a name unique to its directory."""
    if path in _loaded:
        return _loaded[path]
    name = f"_grpc_examples_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _loaded[path] = module
    return module


def counter_shared() -> Any:
    return load(COUNTER / "shared.py")


def counter_pb2() -> Any:
    counter_shared()  # puts examples/counter/generated on sys.path
    return importlib.import_module("counter_pb2")


def add_helper_servicer() -> Any:
    """counter_pb2_grpc.AddHelperServicer, the base of a host's AddHelper."""
    counter_shared()
    return importlib.import_module("counter_pb2_grpc").AddHelperServicer


def calc_shared() -> Any:
    return load(CALCULATOR_GRPC / "shared.py")


def calc_pb2() -> Any:
    calc_shared()  # puts examples/calculator/grpc/generated on sys.path
    return importlib.import_module("calculator_pb2")


def script_env(**extra: str) -> dict[str, str]:
    """The environment for an example host run as a script: no leaked COUNTER_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COUNTER_", "PLUGIN_"))}
    env.pop("PYTHONUNBUFFERED", None)
    env.update(extra)
    return env


# --------------------------------------------------------------------------- counter


def counting_helper() -> Any:
    """A host-side AddHelper servicer that adds and records every call."""
    pb2 = counter_pb2()
    base = add_helper_servicer()

    class CountingAddHelper(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.calls: list[tuple[int, int]] = []

        def Sum(self, request: Any, context: grpc.ServicerContext) -> Any:
            with self.lock:
                self.calls.append((request.a, request.b))
            return pb2.SumResponse(r=request.a + request.b)

    return CountingAddHelper()


_ISOLATED = os.environ.get("TETHER_TEST_ISOLATED") == "1"


def isolated(test: Callable[..., None]) -> Callable[..., None]:
    """Run `test` alone in a fresh interpreter.

    go-plugin's kv and counter protos both declare package `proto` with the same message
    names, so their generated modules cannot share one process (protobuf's default
    descriptor pool refuses the second); the interop tests load kv's in this process.
    """
    if _ISOLATED:
        return test

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        nodeid = os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[0]
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", nodeid],
            cwd=ROOT,
            env={**os.environ, "TETHER_TEST_ISOLATED": "1"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

    return wrapper


@pytest.mark.parametrize("auto_mtls", [False, True], ids=["plain", "automtls"])
@isolated
def test_counter_adds_through_the_host_helper(tmp_path: Path, auto_mtls: bool) -> None:
    shared = counter_shared()
    helper = counting_helper()
    client = tether.Client(
        COUNTER_PLUGIN,
        handshake=shared.HANDSHAKE,
        name="counter",
        cwd=str(tmp_path),
        auto_mtls=auto_mtls,
    )
    with client:
        counter = client.dispense(shared.PLUGIN_NAME, shared.CounterPlugin)
        assert counter.get("hits") == 0  # nothing stored yet
        counter.put("hits", 5, helper)
        counter.put("hits", 7, helper)
        assert counter.get("hits") == 12
        counter.put("other", -3, helper)
        assert counter.get("other") == -3
    # Each Put called the host back once through the broker, with the stored value as `a`.
    assert helper.calls == [(0, 5), (5, 7), (0, -3)]
    # The Go counter plugin's file format (encoding/json of `data{Value: n}`).
    assert (tmp_path / "kv_hits").read_text() == '{"Value":12}'
    assert client.returncode == 0


@isolated
def test_counter_reads_files_written_by_the_go_plugin(tmp_path: Path) -> None:
    shared = counter_shared()
    helper = counting_helper()
    (tmp_path / "kv_n").write_text('{"Value":40}')
    with tether.Client(
        COUNTER_PLUGIN, handshake=shared.HANDSHAKE, name="counter", cwd=str(tmp_path)
    ) as client:
        counter = client.dispense(shared.PLUGIN_NAME, shared.CounterPlugin)
        assert counter.get("n") == 40
        counter.put("n", 2, helper)
        assert counter.get("n") == 42
        (tmp_path / "kv_bad").write_text("not json")
        with pytest.raises(grpc.RpcError) as info:
            counter.get("bad")
        assert info.value.code() == grpc.StatusCode.DATA_LOSS
    assert helper.calls == [(40, 2)]
    assert client.returncode == 0


@isolated
def test_counter_put_fails_when_the_host_helper_fails(tmp_path: Path) -> None:
    shared = counter_shared()
    base = add_helper_servicer()

    class BrokenHelper(base):  # type: ignore[misc, valid-type]
        def Sum(self, request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "no more sums")

    with tether.Client(
        COUNTER_PLUGIN, handshake=shared.HANDSHAKE, name="counter", cwd=str(tmp_path)
    ) as client:
        counter = client.dispense(shared.PLUGIN_NAME, shared.CounterPlugin)
        with pytest.raises(grpc.RpcError) as info:
            counter.put("hits", 1, BrokenHelper())
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "no more sums" in (info.value.details() or "")
        assert counter.get("hits") == 0  # nothing stored
    assert client.returncode == 0


def run_counter_host(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    env.setdefault("COUNTER_PLUGIN", f"{sys.executable} {COUNTER / 'plugin.py'}")
    return subprocess.run(
        [sys.executable, str(COUNTER / "host.py"), *args],
        cwd=cwd,
        env=script_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("auto_mtls", ["0", "1"], ids=["plain", "automtls"])
def test_counter_scripts(tmp_path: Path, auto_mtls: str) -> None:
    for value in ("5", "7"):
        put = run_counter_host(
            tmp_path, "put", "hits", value, COUNTER_AUTOMTLS=auto_mtls, COUNTER_LOG_LEVEL="info"
        )
        assert put.returncode == 0, put.stderr
        assert put.stdout == ""
        assert "SUM_CALLS=1" in put.stderr.splitlines()
        assert "failed to exit gracefully" not in put.stderr
    # The plugin's log line, relayed into the host's logging with its fields.
    assert "counter put @module=counter key=hits old=5 new=12" in put.stderr
    get = run_counter_host(tmp_path, "get", "hits", COUNTER_AUTOMTLS=auto_mtls)
    assert get.returncode == 0, get.stderr
    assert get.stdout == "12\n"
    assert "SUM_CALLS=0" in get.stderr.splitlines()


def test_counter_host_script_failures(tmp_path: Path) -> None:
    usage = run_counter_host(tmp_path, "put", "hits")
    assert usage.returncode == 2
    assert "usage:" in usage.stderr
    not_a_number = run_counter_host(tmp_path, "put", "hits", "seven")
    assert not_a_number.returncode == 2
    broken = run_counter_host(tmp_path, "get", "hits", COUNTER_PLUGIN="exit 3")
    assert broken.returncode == 1
    assert "error:" in broken.stderr


# --------------------------------------------------------------------------- calculator


def tutorial_config() -> Any:
    pb2 = calc_pb2()
    return pb2.Config(
        precision=15, max_value=1e100, angle_unit=pb2.ANGLE_UNIT_RADIANS, cache_size=1000
    )


@pytest.fixture(scope="module")
def calc() -> Iterator[Any]:
    """A gRPC calculator plugin initialized with the tutorial's config."""
    shared = calc_shared()
    client = tether.Client(CALCULATOR_PLUGIN, handshake=shared.HANDSHAKE, name="calculator")
    with client:
        stub = client.dispense(shared.PLUGIN_NAME, shared.CalculatorPlugin)
        stub.Initialize(tutorial_config(), timeout=10)
        yield stub
    assert client.returncode == 0


def value(reply: Any) -> float:
    result: float = reply.value
    return result


def test_calculator_handshake_is_the_native_one() -> None:
    assert calc_shared().HANDSHAKE == NATIVE_HANDSHAKE


def test_calculator_arithmetic(calc: Any) -> None:
    pb2 = calc_pb2()
    assert value(calc.Add(pb2.BinaryRequest(a=2, b=3))) == 5
    assert value(calc.Subtract(pb2.BinaryRequest(a=10, b=4.5))) == 5.5
    assert value(calc.Multiply(pb2.BinaryRequest(a=6, b=7))) == 42
    assert value(calc.Divide(pb2.BinaryRequest(a=1, b=4))) == 0.25
    assert value(calc.Add(pb2.BinaryRequest(a=0.1, b=0.2))) == round(0.1 + 0.2, 15)


@pytest.mark.parametrize(
    ("method", "request_args", "message"),
    [
        ("Divide", {"a": 1, "b": 0}, "division by zero"),
        ("Sqrt", {"value": -4}, "square root of a negative value: -4"),
        ("Log", {"base": 1, "value": 10}, "invalid logarithm base: 1 (must be > 0 and != 1)"),
        ("Add", {"a": math.nan, "b": 1}, "invalid input: NaN not allowed"),
        ("Pow", {"base": 10, "exp": 400}, "result overflow"),
    ],
)
def test_calculator_business_errors_are_invalid_argument(
    calc: Any, method: str, request_args: dict[str, float], message: str
) -> None:
    pb2 = calc_pb2()
    request_type = {
        "Divide": pb2.BinaryRequest,
        "Add": pb2.BinaryRequest,
        "Pow": pb2.PowRequest,
        "Sqrt": pb2.SqrtRequest,
        "Log": pb2.LogRequest,
    }[method]
    with pytest.raises(grpc.RpcError) as info:
        getattr(calc, method)(request_type(**request_args))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == message
    # The calculator is still fine afterwards.
    assert value(calc.Add(pb2.BinaryRequest(a=1, b=1))) == 2


def test_calculator_batches(calc: Any) -> None:
    pb2 = calc_pb2()
    added = calc.BatchAdd(
        pb2.BatchAddRequest(
            requests=[pb2.BinaryRequest(a=1, b=2), pb2.BinaryRequest(a=math.nan, b=1)]
        )
    )
    assert [r.WhichOneof("outcome") for r in added.responses] == ["result", "error"]
    assert added.responses[0].result == 3
    assert added.responses[1].error == "invalid input: NaN not allowed"

    batch = calc.BatchCalculate(
        pb2.BatchCalculateRequest(
            operations=[
                pb2.Operation(op="add", a=1, b=2),
                pb2.Operation(op="divide", a=1, b=0),
                pb2.Operation(op="pow", a=2, b=10),
                pb2.Operation(op="modulo", a=7, b=2),
            ]
        )
    )
    outcomes = [
        r.value if r.WhichOneof("outcome") == "value" else f"error: {r.error}"
        for r in batch.results
    ]
    assert outcomes == [3, "error: division by zero", 1024, "error: unknown operation 'modulo'"]
    assert (batch.succeeded, batch.failed) == (2, 2)
    assert batch.duration_ms >= 0


def test_calculator_scientific_in_degrees(calc: Any) -> None:
    pb2 = calc_pb2()
    assert calc.GetAngleUnit(pb2.Empty()).unit == pb2.ANGLE_UNIT_RADIANS
    calc.SetAngleUnit(pb2.AngleUnitMessage(unit=pb2.ANGLE_UNIT_DEGREES))
    try:
        assert calc.GetAngleUnit(pb2.Empty()).unit == pb2.ANGLE_UNIT_DEGREES
        assert value(calc.Sin(pb2.AngleRequest(angle=30))) == pytest.approx(0.5)
        assert value(calc.Cos(pb2.AngleRequest(angle=60))) == pytest.approx(0.5)
        assert value(calc.Tan(pb2.AngleRequest(angle=45))) == pytest.approx(1.0)
    finally:
        calc.SetAngleUnit(pb2.AngleUnitMessage(unit=pb2.ANGLE_UNIT_RADIANS))
    assert value(calc.Sin(pb2.AngleRequest(angle=math.pi / 2))) == pytest.approx(1.0)
    assert value(calc.Pow(pb2.PowRequest(base=2, exp=0.5))) == pytest.approx(math.sqrt(2))
    assert value(calc.Log(pb2.LogRequest(base=10, value=1000))) == pytest.approx(3)
    assert value(calc.Sqrt(pb2.SqrtRequest(value=81))) == 9
    with pytest.raises(grpc.RpcError) as info:
        calc.SetAngleUnit(pb2.AngleUnitMessage(unit=7))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "unknown angle unit 7"


def test_calculator_status_and_metadata(calc: Any) -> None:
    pb2 = calc_pb2()
    calc.Add(pb2.BinaryRequest(a=1, b=2))
    status = calc.GetStatus(pb2.Empty())
    assert status.state == pb2.PLUGIN_STATE_READY
    assert status.message == "ready"
    assert status.request_count >= 1
    assert status.uptime_seconds > 0
    assert status.start_time.seconds > 0
    meta = calc.GetMetadata(pb2.Empty())
    assert meta.name == "calculator"
    assert meta.version == "1.0.0"
    assert {"add", "divide", "sin", "sqrt", "batch_calculate"} <= set(meta.supported_operations)
    assert dict(meta.config) == {
        "precision": "15",
        "max_value": "1e+100",
        "angle_unit": "radians",
        "cache_size": "1000",
    }


def test_a_grpc_client_makes_no_call_while_it_closes() -> None:
    # grpcio's C core crashed (SIGSEGV) when a relay thread made its stdio stub on the
    # channel while a quick host closed it: the stream is opened before start() returns,
    # and nothing makes a stub on a closed connection.
    shared = calc_shared()
    client = tether.Client(CALCULATOR_PLUGIN, handshake=shared.HANDSHAKE, name="calculator")
    client.start()
    connection = client._grpc
    assert connection is not None
    assert connection._stdio_call is not None
    client.ping()
    client.kill()
    assert connection.closed
    with pytest.raises(tether.ConnectionClosedError, match="is closed"):
        connection.ping(1.0)
    with pytest.raises(tether.ConnectionClosedError, match="is closed"):
        connection.dispense(shared.CalculatorPlugin)
    connection.shutdown(1.0)  # nothing to shut down: no error, no call


def test_calculator_lifecycle_errors_are_failed_precondition() -> None:
    shared, pb2 = calc_shared(), calc_pb2()
    client = tether.Client(CALCULATOR_PLUGIN, handshake=shared.HANDSHAKE, name="calculator")
    with client:
        stub = client.dispense(shared.PLUGIN_NAME, shared.CalculatorPlugin)
        assert stub.GetStatus(pb2.Empty()).state == pb2.PLUGIN_STATE_UNINITIALIZED
        with pytest.raises(grpc.RpcError) as info:
            stub.Add(pb2.BinaryRequest(a=1, b=2))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert info.value.details() == "calculator not initialized"

        bad = pb2.Config(precision=-1, max_value=1e100, cache_size=10)
        with pytest.raises(grpc.RpcError) as info:
            stub.Initialize(bad)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == "invalid config: precision must be >= 0, got -1"
        assert stub.GetStatus(pb2.Empty()).state == pb2.PLUGIN_STATE_ERROR

        with pytest.raises(grpc.RpcError) as info:
            stub.Initialize(tutorial_config())
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        stub.Shutdown(pb2.Empty())
        assert stub.GetStatus(pb2.Empty()).state == pb2.PLUGIN_STATE_SHUTTING_DOWN
        with pytest.raises(grpc.RpcError) as info:
            stub.GetAngleUnit(pb2.Empty())
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert info.value.details() == "calculator is shut down"
        with pytest.raises(grpc.RpcError) as info:
            stub.Shutdown(pb2.Empty())
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert client.returncode == 0


async def test_async_client_drives_the_calculator() -> None:
    shared, pb2 = calc_shared(), calc_pb2()
    client = tether.AsyncClient(CALCULATOR_PLUGIN, handshake=shared.HANDSHAKE, name="calculator")
    async with client:
        stub = await client.dispense(shared.PLUGIN_NAME, shared.CalculatorPlugin)
        await stub.Initialize(tutorial_config(), timeout=10)
        assert (await stub.Add(pb2.BinaryRequest(a=2, b=3))).value == 5
        await stub.SetAngleUnit(pb2.AngleUnitMessage(unit=pb2.ANGLE_UNIT_DEGREES))
        assert (await stub.Sin(pb2.AngleRequest(angle=90))).value == pytest.approx(1.0)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Divide(pb2.BinaryRequest(a=1, b=0))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == "division by zero"
        status = await stub.GetStatus(pb2.Empty())
        assert status.request_count == 3
    assert client.returncode == 0


def test_calculator_host_script() -> None:
    run = subprocess.run(
        [sys.executable, str(CALCULATOR_GRPC / "host.py")],
        env=script_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "2 + 3 = 5" in lines
    assert "sin(30 deg) = 0.5" in lines
    assert "batch: error: division by zero" in lines
    assert "1 / 0 -> INVALID_ARGUMENT: division by zero" in lines

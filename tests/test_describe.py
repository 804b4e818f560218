# Interface methods are declarations:
# mypy: disable-error-code="empty-body"
"""Introspection: a plugin describes what it serves; a host calls methods by name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tether
from tether._describe import describe_served, descriptions_from_wire, type_text
from tether._errors import ArgumentError, ConfigError, RemoteError

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the examples are importable from the repository root
    sys.path.append(str(ROOT))

from examples.calculator.interface import HANDSHAKE  # noqa: E402

CALCULATOR = ROOT / "examples" / "calculator" / "plugin.py"


@pytest.fixture(scope="module")
def client() -> Iterator[tether.Client]:
    with tether.Client(
        [sys.executable, str(CALCULATOR)], handshake=HANDSHAKE, call_timeout=10
    ) as c:
        c.call("calculator", "initialize", {"precision": 6})
        yield c


def test_describe_names_the_interface_its_bases_and_methods(client: tether.Client) -> None:
    (calc,) = client.describe()
    assert calc.name == "calculator"
    assert calc.interface == "ScientificCalculator"
    assert calc.interfaces == ("ScientificCalculator", "Calculator")
    assert calc.implementation == "ScientificCalculatorImpl"
    assert calc.doc.startswith("The tutorial's exercise 1")
    names = [m.name for m in calc.methods]
    assert names[:2] == ["initialize", "shutdown"]  # declaration order, bases first
    assert "sqrt" in names
    add = calc.method("add")
    assert add is not None
    assert add.signature == "add(a: float, b: float) -> float"
    assert [(p.name, p.type, p.required) for p in add.params] == [
        ("a", "float", True),
        ("b", "float", True),
    ]
    assert add.params[0].schema == {"type": "number"}
    assert not add.stream
    batch = calc.method("batch_add")
    assert batch is not None
    assert batch.signature == "batch_add(requests: list[AddRequest]) -> list[AddResponse]"


def test_call_by_name_returns_plain_data(client: tether.Client) -> None:
    assert client.call("calculator", "add", 2, 3) == 5.0
    assert client.call("calculator", "batch_add", [{"a": 1, "b": 2}]) == [
        {"result": 3.0, "error": None}
    ]
    status = client.call("calculator", "get_status")
    assert status["state"] == "ready"
    assert status["request_count"] >= 2


def test_wrong_argument_type_names_the_parameter(client: tether.Client) -> None:
    with pytest.raises(ArgumentError, match=r"add\(\) argument 'b': Expected `float`, got `str`"):
        client.call("calculator", "add", 1, "two")
    with pytest.raises(ArgumentError, match=r"takes 2 arguments, got 1"):
        client.call("calculator", "add", 1)


def test_plugin_errors_come_back_as_remote_errors(client: tether.Client) -> None:
    with pytest.raises(RemoteError, match="division by zero"):
        client.call("calculator", "divide", 1, 0)


def test_unknown_names_suggest_the_closest(client: tether.Client) -> None:
    with pytest.raises(ConfigError, match="serves no 'calc'; did you mean 'calculator'"):
        client.call("calc", "add", 1, 2)
    with pytest.raises(ConfigError, match="has no method 'ad'; did you mean 'add'"):
        client.call("calculator", "ad", 1, 2)


# ------------------------------------------------------------------ plugin side, pure logic


class Ticker(tether.Interface):
    """Counts."""

    def ticks(self, n: int, label: str | None = None) -> Iterator[int]:
        """Yield n ticks."""

    async def later(self, delay: float = 0.5) -> str: ...


class TickerImpl(Ticker):
    def ticks(self, n: int, label: str | None = None) -> Iterator[int]:
        yield from range(n)

    async def later(self, delay: float = 0.5) -> str:
        return "done"


class SelfServed(tether.Interface):
    def hello(self) -> str:
        return "hi"


def test_streams_defaults_and_async_are_described() -> None:
    (ticker,) = descriptions_from_wire(describe_served({"t": TickerImpl()}))
    assert ticker.interface == "Ticker"
    assert ticker.interfaces == ("Ticker",)
    assert ticker.doc == "Counts."
    ticks = ticker.method("ticks")
    assert ticks is not None
    assert ticks.stream
    assert ticks.doc == "Yield n ticks."
    assert ticks.signature == "ticks(n: int, label: str | None = None) -> Iterator[int]"
    assert [p.required for p in ticks.params] == [True, False]
    later = ticker.method("later")
    assert later is not None
    assert later.is_async
    assert later.signature == "async later(delay: float = 0.5) -> str"


def test_an_interface_implementing_itself_is_its_own_interface() -> None:
    (served,) = descriptions_from_wire(describe_served({"s": SelfServed()}))
    assert served.interface == "SelfServed"
    assert served.implementation == "SelfServed"


def test_type_text_reads_like_python() -> None:
    assert type_text(dict[str, list[int | None]]) == "dict[str, list[int | None]]"
    assert type_text(tuple[int, ...]) == "tuple[int, ...]"
    assert type_text(None) == "None"

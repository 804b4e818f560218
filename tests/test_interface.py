# mypy: disable-error-code="empty-body"
"""Interface specs: building them from type hints, and validating arguments and results."""

# No `from __future__ import annotations` here: some interfaces are defined inside tests and
# refer to local classes, which string annotations could not resolve.

import dataclasses
import datetime as dt
import enum
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterable, Iterator
from typing import Any, Optional, TypedDict

import msgspec
import pytest

import tether
from tether._interface import Exported, find_interface, interface_of, spec_of
from tether._wire import ObjectRef


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    x: float
    y: float


@dataclasses.dataclass
class Polygon:
    name: str
    points: list[Point]
    color: Color = Color.RED


class Item(msgspec.Struct):
    name: str
    qty: int


class Movie(TypedDict):
    title: str
    year: int


class Calc(tether.Interface):
    def add(self, a: float, b: float) -> float: ...

    def neg(self, a: int) -> int: ...


class ScientificCalc(Calc):
    def sqrt(self, a: float) -> float: ...


class Listener(tether.Interface):
    def notify(self, value: int) -> None: ...


class Types(tether.Interface):
    def t_int(self, v: int) -> int: ...
    def t_float(self, v: float) -> float: ...
    def t_str(self, v: str) -> str: ...
    def t_bytes(self, v: bytes) -> bytes: ...
    def t_bool(self, v: bool) -> bool: ...
    def t_none(self, v: None) -> None: ...
    def t_list(self, v: list[int]) -> list[int]: ...
    def t_dict(self, v: dict[str, float]) -> dict[str, float]: ...
    def t_tuple(self, v: tuple[int, str]) -> tuple[int, str]: ...
    def t_optional(self, v: Optional[int]) -> Optional[int]: ...  # noqa: UP045
    def t_union(self, v: int | str) -> int | str: ...
    def t_enum(self, v: Color) -> Color: ...
    def t_intenum(self, v: Level) -> Level: ...
    def t_datetime(self, v: dt.datetime) -> dt.datetime: ...
    def t_dataclass(self, v: Polygon) -> Polygon: ...
    def t_struct(self, v: Item) -> Item: ...
    def t_typeddict(self, v: Movie) -> Movie: ...
    def t_nested(self, v: dict[str, list[tuple[Point, Optional[Color]]]]) -> list[Item]: ...  # noqa: UP045
    def t_any(self, v: Any) -> Any: ...
    def t_untyped(self, v):  # type: ignore[no-untyped-def]
        ...
    def mixed(self, a: int, b: str = "b", c: float = 1.5) -> str: ...
    def listen(self, listener: Listener, n: int) -> int: ...
    def make_calc(self) -> Calc: ...
    async def aio(self, a: int) -> int: ...


def check(method: str, *args: Any) -> list[Any]:
    return spec_of(Types).methods[method].check_args(list(args))


def result(method: str, value: Any) -> Any:
    return spec_of(Types).methods[method].check_result(value)


def arg_error(method: str, *args: Any) -> tether.ArgumentError:
    with pytest.raises(tether.ArgumentError) as info:
        check(method, *args)
    return info.value


# --- accepted values ---------------------------------------------------------------------

NOW = dt.datetime(2024, 5, 17, 12, 30, 1, 123456, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("method", "value"),
    [
        ("t_int", 5),
        ("t_int", -(2**63)),
        ("t_float", 2.5),
        ("t_str", "héllo"),
        ("t_bytes", b"\x00\xff"),
        ("t_bool", True),
        ("t_bool", False),
        ("t_none", None),
        ("t_list", [1, 2, 3]),
        ("t_list", []),
        ("t_dict", {"a": 1.0, "b": -2.5}),
        ("t_tuple", (1, "x")),
        ("t_optional", None),
        ("t_optional", 3),
        ("t_union", 3),
        ("t_union", "three"),
        ("t_enum", Color.BLUE),
        ("t_intenum", Level.HIGH),
        ("t_datetime", NOW),
        ("t_dataclass", Polygon("p", [Point(1.0, 2.0)], Color.BLUE)),
        ("t_struct", Item("apple", 3)),
        ("t_typeddict", {"title": "Alien", "year": 1979}),
        ("t_any", {"anything": [1, b"x", None]}),
        ("t_untyped", object),
    ],
)
def test_values_of_the_right_type_pass_unchanged(method: str, value: Any) -> None:
    (checked,) = check(method, value)
    assert checked == value
    assert type(checked) is type(value)
    assert result(method, value) == value


def test_int_is_accepted_for_float_and_converted() -> None:
    (checked,) = check("t_float", 3)
    assert checked == 3.0
    assert type(checked) is float
    add = spec_of(Calc).methods["add"]
    a, b = add.check_args([1, 2])
    assert (type(a), type(b)) == (float, float)
    a, b = add.check_args([1.5, 2])
    assert (a, b) == (1.5, 2.0)
    assert type(b) is float
    value = result("t_float", 7)
    assert value == 7.0
    assert type(value) is float
    assert check("t_dict", {"a": 1}) == [{"a": 1.0}]
    assert type(check("t_dict", {"a": 1})[0]["a"]) is float


@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_an_int(value: bool) -> None:
    err = arg_error("t_int", value)
    assert err.parameter == "v"
    err = arg_error("t_float", value)
    assert err.parameter == "v"
    with pytest.raises(tether.ArgumentError):
        spec_of(Calc).methods["neg"].check_args([value])
    with pytest.raises(tether.ArgumentError):
        spec_of(Calc).methods["add"].check_args([1.0, value])
    with pytest.raises(tether.ArgumentError):
        result("t_int", value)


def test_conversions_from_wire_forms() -> None:
    # What arrives off the wire: dicts for dataclasses/structs, lists for tuples, values
    # for enums.
    (polygon,) = check(
        "t_dataclass", {"name": "tri", "points": [{"x": 0, "y": 1.5}], "color": "blue"}
    )
    assert polygon == Polygon("tri", [Point(0.0, 1.5)], Color.BLUE)
    assert isinstance(polygon.points[0], Point)
    assert type(polygon.points[0].x) is float
    (defaulted,) = check("t_dataclass", {"name": "x", "points": []})
    assert defaulted.color is Color.RED
    assert check("t_tuple", [1, "a"]) == [(1, "a")]
    assert check("t_enum", "red") == [Color.RED]
    assert check("t_intenum", 2) == [Level.HIGH]
    assert check("t_struct", {"name": "pear", "qty": 2}) == [Item("pear", 2)]
    assert check("t_typeddict", {"title": "Heat", "year": 1995}) == [
        {"title": "Heat", "year": 1995}
    ]
    assert result("t_dataclass", {"name": "n", "points": [{"x": 1, "y": 2}]}) == Polygon(
        "n", [Point(1.0, 2.0)]
    )
    assert result("t_tuple", [2, "b"]) == (2, "b")
    assert result("t_enum", "blue") is Color.BLUE
    assert result("t_struct", {"name": "a", "qty": 1}) == Item("a", 1)


def test_nested_combination() -> None:
    wire = {"k": [[{"x": 1, "y": 2}, "red"], [{"x": 3.5, "y": 4}, None]]}
    (value,) = check("t_nested", wire)
    assert value == {"k": [(Point(1.0, 2.0), Color.RED), (Point(3.5, 4.0), None)]}
    err = arg_error("t_nested", {"k": [[{"x": 1, "y": "no"}, "red"]]})
    assert err.parameter == "v"
    assert "Types.t_nested" in str(err)
    assert "$[" not in str(err)
    err = arg_error("t_nested", {"k": [[{"x": 1, "y": 2}, "green"]]})
    assert err.parameter == "v"
    assert result("t_nested", [{"name": "a", "qty": 1}]) == [Item("a", 1)]
    with pytest.raises(tether.ArgumentError):
        result("t_nested", [{"name": "a", "qty": "1"}])


def test_datetime_round_trip_forms() -> None:
    naive = dt.datetime(2020, 1, 2, 3, 4, 5)
    assert check("t_datetime", naive) == [naive]
    assert check("t_datetime", NOW) == [NOW]
    with pytest.raises(tether.ArgumentError):
        check("t_datetime", 12345)


# --- rejected values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "value"),
    [
        ("t_int", "5"),
        ("t_int", 5.0),
        ("t_int", None),
        ("t_float", "1.0"),
        ("t_float", None),
        ("t_str", b"bytes"),
        ("t_str", 1),
        ("t_bytes", "text"),
        ("t_bool", 1),
        ("t_bool", "true"),
        ("t_none", 0),
        ("t_list", [1, "2"]),
        ("t_list", [1, True]),
        ("t_list", {"a": 1}),
        ("t_dict", {"a": "x"}),
        ("t_dict", {1: 1.0}),
        ("t_dict", [1.0]),
        ("t_tuple", (1, 2)),
        ("t_tuple", (1, "a", 3)),
        ("t_tuple", ("a", 1)),
        ("t_optional", "3"),
        ("t_union", 1.5),
        ("t_union", None),
        ("t_enum", "green"),
        ("t_enum", Level.LOW),
        ("t_intenum", 3),
        ("t_dataclass", {"name": "x"}),
        ("t_dataclass", {"name": "x", "points": [{"x": "no", "y": 1}]}),
        ("t_dataclass", Point(1, 2)),
        ("t_struct", {"name": "x", "qty": "many"}),
        ("t_struct", {"qty": 1}),
        ("t_typeddict", {"title": "x"}),
        ("t_typeddict", {"title": "x", "year": "1999"}),
    ],
)
def test_wrong_argument_names_method_and_parameter(method: str, value: Any) -> None:
    err = arg_error(method, value)
    assert isinstance(err, tether.TetherError)
    assert isinstance(err, TypeError)
    assert err.method == f"Types.{method}"
    assert err.parameter == "v"
    assert f"Types.{method}" in str(err)
    assert "'v'" in str(err)


@pytest.mark.parametrize(
    ("args", "param"),
    [((1, "b", "c"), "c"), (("a", "b", 1.0), "a"), ((1, 2, 1.0), "b"), ((1, "b", None), "c")],
)
def test_wrong_argument_among_several(args: tuple[Any, ...], param: str) -> None:
    spec = spec_of(Types).methods["mixed"]
    with pytest.raises(tether.ArgumentError) as info:
        spec.check_args(list(args))
    assert info.value.parameter == param
    assert info.value.method == "Types.mixed"
    assert repr(param) in str(info.value)
    assert "Types.mixed" in str(info.value)


def test_results_are_validated() -> None:
    with pytest.raises(tether.ArgumentError) as info:
        result("t_int", "no")
    assert "Types.t_int" in str(info.value)
    assert info.value.method == "Types.t_int"
    assert "$[" not in str(info.value)
    with pytest.raises(tether.ArgumentError):
        result("t_none", 5)
    with pytest.raises(tether.ArgumentError):
        result("t_list", [1, "x"])
    with pytest.raises(tether.ArgumentError):
        result("t_dataclass", {"name": 1, "points": []})
    assert result("t_none", None) is None
    assert result("t_any", object) is object
    assert spec_of(Types).methods["mixed"].check_result("s") == "s"


# --- binding -----------------------------------------------------------------------------


def bind(*args: Any, **kwargs: Any) -> list[Any]:
    return spec_of(Types).methods["mixed"].bind(args, kwargs)


def test_keyword_arguments_and_defaults_bind() -> None:
    assert bind(1) == [1, "b", 1.5]
    assert bind(1, "x") == [1, "x", 1.5]
    assert bind(1, "x", 2.0) == [1, "x", 2.0]
    assert bind(a=1) == [1, "b", 1.5]
    assert bind(1, c=3.0) == [1, "b", 3.0]
    assert bind(c=3.0, b="y", a=2) == [2, "y", 3.0]
    spec = spec_of(Types).methods["mixed"]
    assert spec.check_args(bind(1, c=3)) == [1, "b", 3.0]


def test_receiving_side_fills_defaults() -> None:
    spec = spec_of(Types).methods["mixed"]
    assert spec.check_args([1]) == [1, "b", 1.5]
    assert spec.check_args([1, "z"]) == [1, "z", 1.5]


@pytest.mark.parametrize(
    ("args", "kwargs", "fragment"),
    [
        ((), {}, "'a'"),
        ((1, "b", 1.0, 4), {}, "too many"),
        ((1,), {"a": 2}, "'a'"),
        ((1,), {"nope": 2}, "'nope'"),
        ((), {"b": "x"}, "'a'"),
    ],
)
def test_bad_call_shapes(args: tuple[Any, ...], kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(tether.ArgumentError) as info:
        bind(*args, **kwargs)
    assert "Types.mixed" in str(info.value)
    assert info.value.method == "Types.mixed"
    assert fragment in str(info.value)


@pytest.mark.parametrize("args", [[], [1, "b", 1.0, 4], [1, 2, 3, 4, 5]])
def test_wrong_arity_on_receiving_side(args: list[Any]) -> None:
    with pytest.raises(tether.ArgumentError) as info:
        spec_of(Types).methods["mixed"].check_args(args)
    assert "Types.mixed" in str(info.value)
    with pytest.raises(tether.ArgumentError):
        spec_of(Calc).methods["add"].check_args([1.0])
    with pytest.raises(tether.ArgumentError):
        spec_of(Calc).methods["add"].check_args([1.0, 2.0, 3.0])


# --- references --------------------------------------------------------------------------


class MyListener(Listener):
    def notify(self, value: int) -> None:
        pass


class CalcImpl(ScientificCalc):
    def add(self, a: float, b: float) -> float:
        return a + b

    def neg(self, a: int) -> int:
        return -a

    def sqrt(self, a: float) -> float:
        return float(a**0.5)

    def helper(self) -> str:
        return "not part of the interface"


def test_interface_parameters_are_passed_by_reference() -> None:
    spec = spec_of(Types).methods["listen"]
    assert spec.ref_params == {0: Listener}
    listener = MyListener()
    exported, n = spec.check_args([listener, 3])
    assert isinstance(exported, Exported)
    assert exported.obj is listener
    assert exported.interface is Listener
    assert n == 3
    with pytest.raises(tether.ArgumentError) as info:
        spec.check_args([object(), 3])
    assert info.value.parameter == "listener"
    assert "Listener" in str(info.value)
    made: list[tuple[ObjectRef, type]] = []

    def make_proxy(ref: ObjectRef, iface: type[tether.Interface]) -> Any:
        made.append((ref, iface))
        return "proxy"

    assert spec.check_args([ObjectRef(9), 1], make_proxy) == ["proxy", 1]
    assert made == [(ObjectRef(9), Listener)]
    with pytest.raises(tether.ArgumentError):
        spec.check_args([{"not": "a ref"}, 1], make_proxy)
    assert spec.check_args([None, 1], make_proxy) == [None, 1]


def test_interface_results_are_returned_by_reference() -> None:
    spec = spec_of(Types).methods["make_calc"]
    assert spec.ref_result is Calc
    impl = CalcImpl()
    prepared = spec.prepare_result(impl)
    assert isinstance(prepared, Exported)
    assert prepared.obj is impl
    assert prepared.interface is Calc
    with pytest.raises(tether.ArgumentError):
        spec.prepare_result(MyListener())
    assert spec.check_result(ObjectRef(3), lambda ref, iface: (ref.object_id, iface)) == (
        3,
        Calc,
    )


def test_interface_of_and_find_interface() -> None:
    assert interface_of(MyListener()) is MyListener
    with pytest.raises(tether.ArgumentError):
        interface_of(object())
    impl = CalcImpl()
    assert find_interface(impl, "Calc") is Calc
    assert find_interface(impl, "ScientificCalc") is ScientificCalc
    assert find_interface(impl, "Listener") is None
    assert find_interface(impl, "CalcImpl") is CalcImpl


# --- spec building -----------------------------------------------------------------------


def test_spec_contents() -> None:
    spec = spec_of(Types)
    assert spec.name == "Types"
    assert spec.cls is Types
    mixed = spec.methods["mixed"]
    assert mixed.qualname == "Types.mixed"
    assert mixed.params == ("a", "b", "c")
    assert mixed.defaults == ("b", 1.5)
    assert mixed.stream is False
    assert spec.methods["aio"].stream is False
    assert spec.methods["t_none"].return_type is type(None)
    assert "helper" not in spec_of(Calc).methods


def test_streaming_detection() -> None:
    class Streams(tether.Interface):
        def it(self) -> Iterator[int]: ...
        def ait(self) -> AsyncIterator[str]: ...
        def gen(self) -> Generator[Point, None, None]: ...
        def agen(self) -> AsyncGenerator[bytes, None]: ...
        def iterable(self) -> Iterable[float]: ...
        def bare(self) -> Iterator: ...  # type: ignore[type-arg]
        def plain(self) -> list[int]: ...
        async def coro(self) -> int: ...

    methods = spec_of(Streams).methods
    expected = {
        "it": int,
        "ait": str,
        "gen": Point,
        "agen": bytes,
        "iterable": float,
        "bare": Any,
    }
    for name, item in expected.items():
        assert methods[name].stream, name
        assert methods[name].return_type == item, name
    assert not methods["plain"].stream
    assert not methods["coro"].stream
    assert methods["gen"].check_result({"x": 1, "y": 2}) == Point(1.0, 2.0)
    assert methods["it"].check_result(4) == 4
    with pytest.raises(tether.ArgumentError):
        methods["it"].check_result("4")


def test_spec_is_cached() -> None:
    assert spec_of(Types) is spec_of(Types)
    assert Types.__dict__["__tether_spec__"] is spec_of(Types)


def test_interface_inheritance() -> None:
    base = spec_of(Calc)
    sub = spec_of(ScientificCalc)
    assert set(base.methods) == {"add", "neg"}
    assert set(sub.methods) == {"add", "neg", "sqrt"}
    assert sub is not base
    assert sub.name == "ScientificCalc"
    # The inherited methods carry the same checks.
    assert sub.methods["add"].check_args([1, 2]) == [1.0, 2.0]
    # Computing the subclass spec did not change the base's.
    assert set(spec_of(Calc).methods) == {"add", "neg"}


def test_subclass_overrides_a_method_hint() -> None:
    class Base(tether.Interface):
        def f(self, x: int) -> int: ...

    class Derived(Base):
        def f(self, x: str) -> str: ...  # type: ignore[override]

        def g(self) -> None: ...

    assert spec_of(Base).methods["f"].param_types == (int,)
    assert spec_of(Derived).methods["f"].param_types == (str,)
    assert set(spec_of(Derived).methods) == {"f", "g"}


def test_private_static_and_class_methods_are_not_part_of_the_interface() -> None:
    class Odd(tether.Interface):
        limit = 3

        def visible(self) -> int: ...

        def _private(self) -> int: ...

        @staticmethod
        def static() -> int:
            return 1

        @classmethod
        def klass(cls) -> int:
            return 1

    assert set(spec_of(Odd).methods) == {"visible"}


# --- bad definitions ---------------------------------------------------------------------


def test_var_positional_is_a_config_error() -> None:
    class Bad(tether.Interface):
        def f(self, *args: int) -> None: ...

    with pytest.raises(tether.ConfigError, match="args"):
        spec_of(Bad)


def test_var_keyword_is_a_config_error() -> None:
    class Bad(tether.Interface):
        def f(self, a: int, **kwargs: int) -> None: ...

    with pytest.raises(tether.ConfigError, match="kwargs"):
        spec_of(Bad)


def test_keyword_only_is_a_config_error() -> None:
    class Bad(tether.Interface):
        def f(self, a: int, *, b: int) -> None: ...

    with pytest.raises(tether.ConfigError, match="'b'"):
        spec_of(Bad)


def test_unresolved_forward_reference_is_a_config_error() -> None:
    class Bad(tether.Interface):
        def f(self, a: "DoesNotExist") -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(tether.ConfigError, match=r"Bad\.f"):
        spec_of(Bad)


def test_unresolved_forward_reference_in_return_is_a_config_error() -> None:
    class Bad(tether.Interface):
        def f(self) -> "Nowhere": ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(tether.ConfigError):
        spec_of(Bad)


def test_no_methods_and_non_interfaces() -> None:
    class Empty(tether.Interface):
        pass

    with pytest.raises(tether.ConfigError, match="no public methods"):
        spec_of(Empty)
    with pytest.raises(tether.ConfigError):
        spec_of(tether.Interface)
    with pytest.raises(tether.ConfigError):
        spec_of(int)  # type: ignore[arg-type]
    assert isinstance(tether.ConfigError("x"), ValueError)


def test_failed_spec_is_not_cached_as_success() -> None:
    class Bad(tether.Interface):
        def f(self, *a: int) -> None: ...

    for _ in range(2):
        with pytest.raises(tether.ConfigError):
            spec_of(Bad)

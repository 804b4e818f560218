"""Tests for tether._hclog: parsing plugin stderr and writing hclog JSON."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import NoReturn

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether._hclog import TRACE, HclogFormatter, LogEntry, StderrParser, relay

EXAMPLE = (
    '{"@level":"debug","@message":"plugin address","@timestamp":"2026-11-22T01:46:25.556549Z",'
    '"address":"/tmp/plugin123456789","network":"unix"}'
)
TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def parse(line: str) -> LogEntry:
    return StderrParser().parse(line)


# --- TRACE ------------------------------------------------------------------------------------


def test_trace_level_registered() -> None:
    assert TRACE == 5
    assert TRACE < logging.DEBUG
    assert logging.getLevelName(TRACE) == "TRACE"


# --- StderrParser: JSON -----------------------------------------------------------------------


def test_example_line() -> None:
    entry = parse(EXAMPLE + "\n")
    assert entry.level == logging.DEBUG
    assert entry.message == "plugin address"
    assert entry.fields == {"address": "/tmp/plugin123456789", "network": "unix"}
    assert list(entry.fields) == ["address", "network"]
    assert entry.timestamp == datetime(2026, 11, 22, 1, 46, 25, 556549, tzinfo=UTC)
    assert entry.raw == EXAMPLE


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("trace", TRACE),
        ("debug", logging.DEBUG),
        ("info", logging.INFO),
        ("warn", logging.WARNING),
        ("error", logging.ERROR),
        ("ERROR", logging.ERROR),
        ("Warn", logging.WARNING),
        (" info ", logging.INFO),
    ],
)
def test_json_levels(name: str, level: int) -> None:
    entry = parse(json.dumps({"@level": name, "@message": "m"}))
    assert (entry.level, entry.message) == (level, "m")
    assert entry.timestamp is None


def test_module_and_caller_go_to_fields() -> None:
    line = json.dumps(
        {"@level": "info", "@message": "m", "@module": "kv", "@caller": "main.go:3", "n": 4}
    )
    assert parse(line).fields == {"@module": "kv", "@caller": "main.go:3", "n": 4}


def test_timestamp_with_offset() -> None:
    line = json.dumps(
        {"@level": "info", "@message": "m", "@timestamp": "2026-01-02T15:04:05.000001-07:00"}
    )
    expected = datetime(2026, 1, 2, 15, 4, 5, 1, tzinfo=timezone(-timedelta(hours=7)))
    stamp = parse(line).timestamp
    assert stamp == expected
    assert stamp is not None
    assert stamp.utcoffset() == -timedelta(hours=7)


def test_missing_message_is_empty() -> None:
    entry = parse('{"@level":"warn","k":"v"}')
    assert (entry.level, entry.message, entry.fields) == (logging.WARNING, "", {"k": "v"})


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-22T01:46:25.556Z",  # three digits
        "2026-11-22T01:46:25.556549123Z",  # nine digits
        "2026-11-22T01:46:25Z",  # none
        "2026-11-22 01:46:25.556549Z",
        "2026-11-22T01:46:25.556549",  # no zone
        "2026-11-22T01:46:25.556549+0100",
        "2026-13-22T01:46:25.556549Z",  # month 13
        "2026-02-30T01:46:25.556549Z",
        "2026-11-22T01:46:25.556549+24:00",
        "2026-11-22T01:46:25.\u0665\u0665\u0666\u0665\u0664\u0669Z",  # non-ASCII digits
        "",
    ],
)
def test_bad_timestamp_gives_raw_line_at_debug(stamp: str) -> None:
    line = json.dumps({"@level": "error", "@message": "m", "@timestamp": stamp, "k": 1})
    entry = parse(line)
    assert entry == LogEntry(logging.DEBUG, line, {}, None, line)


@pytest.mark.parametrize(
    "obj",
    [
        {"@level": "error", "@message": 5},
        {"@level": "error", "@message": None},
        {"@level": 3, "@message": "m"},
        {"@level": ["error"], "@message": "m"},
        {"@level": "error", "@message": "m", "@timestamp": 1700000000},
        {"@level": "error", "@message": {"a": 1}},
    ],
)
def test_non_string_reserved_values_give_raw_line_at_debug(obj: dict[str, object]) -> None:
    line = json.dumps(obj)
    assert parse(line) == LogEntry(logging.DEBUG, line, {}, None, line)


@pytest.mark.parametrize(
    "obj",
    [
        {"@message": "m"},
        {"@level": "fatal", "@message": "m"},
        {"@level": "off", "@message": "m"},
        {"@level": "", "@message": "m"},
        {"msg": "from some other JSON logger"},
    ],
)
def test_unknown_or_missing_level_gives_raw_line_at_debug(obj: dict[str, object]) -> None:
    line = json.dumps(obj)
    assert parse(line) == LogEntry(logging.DEBUG, line, {}, None, line)


@pytest.mark.parametrize(
    "line", ['["@level","error"]', '"[ERROR] x"', "42", "null", '{"@level":"error",', "{}x"]
)
def test_non_object_json_is_plain_text(line: str) -> None:
    assert parse(line) == LogEntry(logging.DEBUG, line, {}, None, line)


def test_nan_is_not_json() -> None:
    line = '{"@level":"error","@message":"m","x":NaN}'
    assert parse(line).level == logging.DEBUG


# --- StderrParser: plain text -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "level", "message"),
    [
        ("[WARN] x", logging.WARNING, "x"),
        ("[TRACE] deep", TRACE, "deep"),
        ("[DEBUG]   spaced  ", logging.DEBUG, "spaced  "),
        ("[INFO]starting", logging.INFO, "starting"),
        ("[ERROR] boom\r\n", logging.ERROR, "boom"),
        ("[ERROR]", logging.ERROR, ""),
        ("just text\n", logging.DEBUG, "just text"),
        ("[warn] lower case is not a tag", logging.DEBUG, "[warn] lower case is not a tag"),
        (" [WARN] indented", logging.DEBUG, " [WARN] indented"),
        ("", logging.DEBUG, ""),
    ],
)
def test_plain_text_levels(line: str, level: int, message: str) -> None:
    entry = parse(line)
    assert (entry.level, entry.message, entry.fields, entry.timestamp) == (
        level,
        message,
        {},
        None,
    )


def test_raw_keeps_prefix_and_strips_only_line_end() -> None:
    assert parse("[WARN] x\r\n").raw == "[WARN] x"
    assert parse("a\r").raw == "a\r"


@pytest.mark.parametrize("crash", ["panic: runtime error: index out of range", "fatal error: x"])
def test_crash_switches_untagged_lines_to_error(crash: str) -> None:
    parser = StderrParser()
    assert parser.parse("before").level == logging.DEBUG
    assert parser.parse(crash).level == logging.ERROR
    assert parser.parse("").level == logging.ERROR
    assert parser.parse("goroutine 1 [running]:").level == logging.ERROR
    assert parser.parse("\tmain.go:12 +0x1d").level == logging.ERROR
    assert parser.parse("[INFO] tagged").level == logging.INFO
    assert parser.parse('{"@level":"trace","@message":"j"}').level == TRACE
    assert parser.parse("after").level == logging.ERROR
    # State is per parser: another plugin's stderr is unaffected.
    assert StderrParser().parse("after").level == logging.DEBUG


def test_panic_must_be_a_prefix() -> None:
    parser = StderrParser()
    assert parser.parse("no panic: here").level == logging.DEBUG
    assert parser.parse("panic:nospace").level == logging.DEBUG
    assert parser.parse("later").level == logging.DEBUG


@given(st.text())
def test_parse_never_raises_on_text(text: str) -> None:
    parser = StderrParser()
    entry = parser.parse(text)
    assert isinstance(entry.message, str)
    assert entry.level in {TRACE, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR}


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(["@level", "@message", "@timestamp", "@module", "k"]) | st.text(),
        _json_values | st.sampled_from(["info", "WARN", "2026-11-22T01:46:25.556549Z"]),
    )
)
def test_parse_never_raises_on_json_objects(obj: dict[str, object]) -> None:
    entry = StderrParser().parse(json.dumps(obj))
    assert isinstance(entry.message, str)


def test_parse_survives_deep_nesting_and_huge_numbers() -> None:
    for line in ["[" * 100_000, '{"a":' * 50_000, '{"@level":"info","n":' + "9" * 10_000 + "}"]:
        assert parse(line).level == logging.DEBUG


# --- HclogFormatter ---------------------------------------------------------------------------


def make_record(
    msg: str = "hello %s",
    args: tuple[object, ...] = ("world",),
    level: int = logging.INFO,
    **extra: object,
) -> logging.LogRecord:
    logger = logging.getLogger("tether.test")
    return logger.makeRecord("tether.test", level, __file__, 1, msg, args, None, extra=extra)


def test_formatter_shape() -> None:
    record = make_record(user="ann", count=3)
    line = HclogFormatter().format(record)
    assert "\n" not in line
    assert line.startswith('{"@level":"info","@message":"hello world","@module":"tether.test",')
    obj = json.loads(line)
    assert list(obj) == ["@level", "@message", "@module", "@timestamp", "user", "count"]
    assert TIMESTAMP_RE.fullmatch(obj["@timestamp"])
    stamp = datetime.strptime(obj["@timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(stamp.timestamp() - record.created) < 1e-5
    assert (obj["user"], obj["count"]) == ("ann", 3)


def test_formatter_compact_separators() -> None:
    line = HclogFormatter().format(make_record("m", ()))
    assert ": " not in line
    assert ", " not in line


@pytest.mark.parametrize(
    ("level", "name"),
    [
        (TRACE, "trace"),
        (1, "trace"),
        (logging.DEBUG, "debug"),
        (logging.INFO, "info"),
        (logging.WARNING, "warn"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "error"),
        (25, "info"),
    ],
)
def test_formatter_levels(level: int, name: str) -> None:
    assert json.loads(HclogFormatter().format(make_record(level=level)))["@level"] == name


def test_formatter_timestamp_is_utc_six_digits() -> None:
    record = make_record()
    record.created = 1795311985.556549  # 2026-11-22T01:46:25.556549Z
    obj = json.loads(HclogFormatter().format(record))
    assert obj["@timestamp"][:20] == "2026-11-22T01:46:25."
    assert TIMESTAMP_RE.fullmatch(obj["@timestamp"])
    record.created = 1795311985.0
    assert json.loads(HclogFormatter().format(record))["@timestamp"] == (
        "2026-11-22T01:46:25.000000Z"
    )


def test_formatter_newlines_and_non_ascii_stay_on_one_line() -> None:
    record = make_record("línea 1\nline 2 \u2028 ☃ \x00", (), note="a\nb")
    line = HclogFormatter().format(record)
    assert "\n" not in line
    assert "\r" not in line
    obj = json.loads(line)
    assert obj["@message"] == "línea 1\nline 2 \u2028 ☃ \x00"
    assert obj["note"] == "a\nb"


def test_formatter_lone_surrogate_still_valid_json() -> None:
    line = HclogFormatter().format(make_record("bad \udc80 byte", ()))
    line.encode("ascii")
    assert json.loads(line)["@message"] == "bad \udc80 byte"


def test_formatter_exception_text_appended() -> None:
    try:
        raise ValueError("kaput")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.getLogger("t").makeRecord("t", logging.ERROR, "f", 1, "failed", (), exc_info)
    obj = json.loads(HclogFormatter().format(record))
    assert obj["@message"].startswith("failed\nTraceback (most recent call last):\n")
    assert obj["@message"].rstrip().endswith("ValueError: kaput")
    assert "exc_info" not in obj
    assert "exc_text" not in obj


class Opaque:
    def __str__(self) -> str:
        return "<opaque>"


def test_formatter_makes_extras_json_safe() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    record = make_record(
        obj=Opaque(),
        nested={"a": (1, 2.5, None), 3: [True, Opaque()]},
        nan=float("nan"),
        cyc=cyclic,
        raw=b"x",
    )
    obj = json.loads(HclogFormatter().format(record))
    assert obj["obj"] == "<opaque>"
    assert obj["nested"] == {"a": [1, 2.5, None], "3": [True, "<opaque>"]}
    assert obj["nan"] == "nan"
    assert isinstance(obj["cyc"], list)
    assert obj["raw"] == "b'x'"


def test_formatter_extras_cannot_override_reserved_keys() -> None:
    record = make_record()
    record.__dict__["@level"] = "trace"
    obj = json.loads(HclogFormatter().format(record))
    assert obj["@level"] == "info"


def test_formatter_skips_standard_attributes() -> None:
    obj = json.loads(HclogFormatter().format(make_record()))
    for attr in ("args", "msg", "levelno", "pathname", "lineno", "thread", "process", "created"):
        assert attr not in obj


# --- round trip -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "level", [TRACE, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]
)
def test_round_trip(level: int) -> None:
    record = make_record("multi\nline ü", (), level=level, request_id=7, who="x y")
    entry = StderrParser().parse(HclogFormatter().format(record) + "\n")
    assert entry.level == level
    assert entry.message == "multi\nline ü"
    assert entry.fields == {"@module": "tether.test", "request_id": 7, "who": "x y"}
    assert entry.timestamp is not None
    assert abs(entry.timestamp.timestamp() - record.created) < 1e-5


_RESERVED_EXTRA = frozenset(make_record().__dict__) | {"message", "asctime", "taskName"}


@given(
    st.text(),
    st.dictionaries(
        st.text().filter(lambda k: not k.startswith("@") and k not in _RESERVED_EXTRA),
        st.none() | st.booleans() | st.integers() | st.text(),
        max_size=4,
    ),
)
def test_round_trip_any_text(message: str, extras: dict[str, object]) -> None:
    record = make_record(message, ())
    record.__dict__.update(extras)
    entry = StderrParser().parse(HclogFormatter().format(record))
    assert entry.level == logging.INFO
    assert entry.message == message
    assert entry.fields == {"@module": "tether.test", **extras}


# --- relay ------------------------------------------------------------------------------------


def test_relay_example(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tether.plugin.kv")
    caplog.set_level(logging.DEBUG, logger="tether.plugin.kv")
    relay(parse(EXAMPLE), logger)
    assert len(caplog.records) == 1
    record = caplog.records[0]
    assert record.levelno == logging.DEBUG
    assert record.name == "tether.plugin.kv"
    assert record.getMessage() == ("plugin address address=/tmp/plugin123456789 network=unix")
    assert record.__dict__["plugin_fields"] == {
        "address": "/tmp/plugin123456789",
        "network": "unix",
    }


def test_relay_levels_and_quoting(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tether.plugin.q")
    caplog.set_level(TRACE, logger="tether.plugin.q")
    line = json.dumps(
        {"@level": "trace", "@message": "100% done", "s": "a b", "e": "", "n": 1.5, "d": {"k": [1]}}
    )
    relay(parse(line), logger)
    relay(parse("[ERROR] bad %s"), logger)
    assert [r.levelno for r in caplog.records] == [TRACE, logging.ERROR]
    assert caplog.records[0].getMessage() == '100% done s="a b" e="" n=1.5 d={"k":[1]}'
    assert caplog.records[1].getMessage() == "bad %s"
    assert caplog.records[1].__dict__["plugin_fields"] == {}


def test_relay_skips_disabled_levels(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tether.plugin.quiet")
    caplog.set_level(logging.WARNING, logger="tether.plugin.quiet")
    relay(parse("[INFO] hidden"), logger)
    relay(parse(EXAMPLE), logger)
    relay(parse("[WARN] shown"), logger)
    assert [r.getMessage() for r in caplog.records] == ["shown"]


def test_relay_does_not_build_message_when_disabled() -> None:
    class Exploding(dict[str, object]):
        def items(self) -> NoReturn:
            raise AssertionError("fields were formatted for a disabled level")

    logger = logging.getLogger("tether.plugin.off")
    logger.setLevel(logging.ERROR)
    relay(LogEntry(logging.DEBUG, "m", Exploding(a=1), None, "m"), logger)

"""Tests for tether._handshake: go-plugin's handshake rules and error texts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether._errors import ConfigError, HandshakeError, UnsupportedProtocolError
from tether._handshake import (
    COOKIE_MISMATCH_TEXT,
    CORE_PROTOCOL_VERSION,
    ENV_CLIENT_CERT,
    ENV_MAX_PORT,
    ENV_MIN_PORT,
    ENV_MULTIPLEX_GRPC,
    ENV_PROTOCOL_VERSIONS,
    ENV_UNIX_SOCKET_DIR,
    ENV_UNIX_SOCKET_GROUP,
    MISCONFIGURED_COOKIE_TEXT,
    PROTOCOL_GRPC,
    PROTOCOL_NATIVE,
    PROTOCOL_NETRPC,
    HandshakeConfig,
    HandshakeLine,
    check_cookie,
    check_host_side,
    host_env,
    negotiate_version,
    port_range,
)

HS = HandshakeConfig(
    protocol_version=1, magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="hello"
)
CERT = (
    "MIICTzCCAbCgAwIBAgIRAKc1ZbRXTt1X0xG8lCZWkEgwCgYIKoZIzj0EAwQwKDESMBAGA1UEChMJSGFzaGlDb3Jw"
    "MRIwEAYDVQQDEwlsb2NhbGhvc3QwIBcNMjYxMTIyMDE0NTU1WhgPMjEyNjEwMjkwMTQ2MjVaMCgxEjAQBgNVBAoT"
    "CUhhc2hpQ29ycDESMBAGA1UEAxMJbG9jYWxob3N0MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQBr8Z5kq9y+w/E"
)


# --- constants -------------------------------------------------------------------------------


def test_constants() -> None:
    assert CORE_PROTOCOL_VERSION == 1
    assert ENV_PROTOCOL_VERSIONS == "PLUGIN_PROTOCOL_VERSIONS"
    assert ENV_MIN_PORT == "PLUGIN_MIN_PORT"
    assert ENV_MAX_PORT == "PLUGIN_MAX_PORT"
    assert ENV_UNIX_SOCKET_DIR == "PLUGIN_UNIX_SOCKET_DIR"
    assert ENV_UNIX_SOCKET_GROUP == "PLUGIN_UNIX_SOCKET_GROUP"
    assert ENV_CLIENT_CERT == "PLUGIN_CLIENT_CERT"
    assert ENV_MULTIPLEX_GRPC == "PLUGIN_MULTIPLEX_GRPC"
    assert (PROTOCOL_GRPC, PROTOCOL_NETRPC, PROTOCOL_NATIVE) == ("grpc", "netrpc", "tether")


def test_cookie_texts_match_go_plugin() -> None:
    assert COOKIE_MISMATCH_TEXT == (
        "This binary is a plugin. These are not meant to be executed directly.\n"
        "Please execute the program that consumes these plugins, which will\n"
        "load any plugins automatically\n"
    )
    assert MISCONFIGURED_COOKIE_TEXT == (
        "Misconfigured ServeConfig given to serve this plugin: no magic cookie\n"
        "key or value was set. Please notify the plugin author and report\n"
        "this as a bug.\n"
    )


# --- HandshakeConfig -------------------------------------------------------------------------


def test_config_keyword_construction_and_frozen() -> None:
    assert HS.protocol_version == 1
    assert HS.magic_cookie_key == "BASIC_PLUGIN"
    assert HS.magic_cookie_value == "hello"
    with pytest.raises(AttributeError, match="immutable"):
        HS.protocol_version = 2


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"protocol_version": 0}, "protocol_version"),
        ({"protocol_version": -3}, "protocol_version"),
        ({"magic_cookie_key": ""}, "magic_cookie_key is empty"),
        ({"magic_cookie_value": ""}, "magic_cookie_value is empty"),
        ({"magic_cookie_key": "A=B"}, "environment variable name"),
    ],
)
def test_config_rejects(kwargs: dict[str, object], fragment: str) -> None:
    args: dict[str, object] = {
        "protocol_version": 1,
        "magic_cookie_key": "K",
        "magic_cookie_value": "V",
    }
    args.update(kwargs)
    with pytest.raises(ConfigError, match=fragment):
        HandshakeConfig(**args)  # type: ignore[arg-type]


# --- HandshakeLine.format --------------------------------------------------------------------


def test_format_six_fields_with_trailing_bar() -> None:
    line = HandshakeLine(1, 1, "unix", "/tmp/x", "grpc")
    assert line.format() == "1|1|unix|/tmp/x|grpc|"


def test_format_with_cert_and_multiplex() -> None:
    assert HandshakeLine(1, 3, "unix", "/p", "grpc", CERT).format() == f"1|3|unix|/p|grpc|{CERT}"
    assert HandshakeLine(1, 3, "unix", "/p", "grpc", multiplex=True).format() == (
        "1|3|unix|/p|grpc||true"
    )
    assert HandshakeLine(1, 3, "tcp", "127.0.0.1:1", "grpc", multiplex=False).format() == (
        "1|3|tcp|127.0.0.1:1|grpc||false"
    )


def test_format_refuses_separator_in_field() -> None:
    with pytest.raises(ConfigError, match="address"):
        HandshakeLine(1, 1, "unix", "/tmp/a|b", "grpc").format()
    with pytest.raises(ConfigError, match="server_cert"):
        HandshakeLine(1, 1, "unix", "/tmp/a", "grpc", "abc\n").format()


# --- HandshakeLine.parse: go-plugin's real lines -----------------------------------------------


def test_parse_grpc_unix_line() -> None:
    line = HandshakeLine.parse("1|1|unix|/tmp/plugin123456789|grpc|\n")
    assert line == HandshakeLine(1, 1, "unix", "/tmp/plugin123456789", "grpc", "", None)


def test_parse_netrpc_line() -> None:
    line = HandshakeLine.parse("1|1|unix|/tmp/plugin123456789|netrpc|")
    assert line.protocol == "netrpc"
    assert line.server_cert == ""


def test_parse_five_fields_python_example() -> None:
    line = HandshakeLine.parse("1|1|tcp|127.0.0.1:1234|grpc")
    assert (line.network, line.address, line.protocol, line.server_cert) == (
        "tcp",
        "127.0.0.1:1234",
        "grpc",
        "",
    )
    assert line.tcp_address() == ("127.0.0.1", 1234)


def test_parse_long_cert() -> None:
    line = HandshakeLine.parse(f"1|1|unix|/tmp/plugin123456789|grpc|{CERT}")
    assert line.server_cert == CERT
    assert line.multiplex is None


def test_parse_multiplex_field() -> None:
    line = HandshakeLine.parse("1|3|unix|/p|grpc||true")
    assert line == HandshakeLine(1, 3, "unix", "/p", "grpc", "", True)
    assert HandshakeLine.parse("1|3|unix|/p|grpc||false").multiplex is False


def test_parse_four_fields_is_legacy_netrpc() -> None:
    line = HandshakeLine.parse("1|1|tcp|:1234")
    assert line.protocol == PROTOCOL_NETRPC
    assert line.tcp_address() == ("127.0.0.1", 1234)


def test_parse_strips_whitespace() -> None:
    assert HandshakeLine.parse("  1|2|unix|/s|grpc|\r\n").app_version == 2


def test_parse_keeps_empty_protocol_for_host_check() -> None:
    line = HandshakeLine.parse("1|1|unix|/s|")
    assert line.protocol == ""
    with pytest.raises(UnsupportedProtocolError, match='unsupported plugin protocol ""'):
        check_host_side(line, [1], [PROTOCOL_GRPC])


# --- HandshakeLine.parse: errors ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["hello", "1|1|unix", "Incorrect Usage. flag provided"])
def test_parse_unrecognized(text: str) -> None:
    with pytest.raises(HandshakeError) as info:
        HandshakeLine.parse(text)
    message = str(info.value)
    assert message.startswith(f"Unrecognized remote plugin message: {text}\n")
    assert "This usually means" in message
    assert "go-plugin protocol handshake" in message
    assert "Failed to read any lines" not in message


def test_parse_empty_line_says_no_lines_read() -> None:
    with pytest.raises(HandshakeError) as info:
        HandshakeLine.parse("  \n")
    message = str(info.value)
    assert message.startswith(
        "Unrecognized remote plugin message: \nFailed to read any lines from plugin's stdout\n"
    )
    assert "This usually means" in message


@pytest.mark.parametrize("core", ["2", "0", "x", ""])
def test_parse_core_version_mismatch(core: str) -> None:
    with pytest.raises(HandshakeError) as info:
        HandshakeLine.parse(f"{core}|1|unix|/s|grpc|")
    assert str(info.value) == (
        "incompatible core API version with plugin. "
        f"Plugin version: {core}, Core version: 1\n\n"
        "To fix this, the plugin usually only needs to be recompiled.\n"
        "Please report this to the plugin author."
    )


@pytest.mark.parametrize("app", ["x", "", "1.5", " 1"])
def test_parse_non_integer_app_version(app: str) -> None:
    with pytest.raises(HandshakeError) as info:
        HandshakeLine.parse(f"1|{app}|unix|/s|grpc|")
    message = str(info.value)
    assert f'protocol version "{app}"' in message
    assert "field 2" in message
    assert "must be an integer" in message


@pytest.mark.parametrize("network", ["udp", "", "UNIX"])
def test_parse_unknown_network(network: str) -> None:
    with pytest.raises(HandshakeError, match=f"^unknown address type: {network} "):
        HandshakeLine.parse(f"1|1|{network}|/s|grpc|")


def test_parse_empty_address() -> None:
    with pytest.raises(HandshakeError, match="empty address"):
        HandshakeLine.parse("1|1|unix||grpc|")


@pytest.mark.parametrize("mux", ["yes", "", "TRUE", "1"])
def test_parse_bad_multiplex(mux: str) -> None:
    with pytest.raises(HandshakeError, match=f'multiplex field "{mux}"'):
        HandshakeLine.parse(f"1|1|unix|/s|grpc||{mux}")


def test_parse_malformed_tcp_address() -> None:
    with pytest.raises(HandshakeError, match="malformed tcp address"):
        HandshakeLine.parse("1|1|tcp|127.0.0.1|grpc|")


# --- tcp_address ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:1234", ("127.0.0.1", 1234)),
        (":1234", ("127.0.0.1", 1234)),
        ("[::1]:5", ("::1", 5)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_tcp_address(address: str, expected: tuple[str, int]) -> None:
    assert HandshakeLine(1, 1, "tcp", address, "grpc").tcp_address() == expected


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1:5", "[::1]5", "[::1", "host:", "host:0", "host:65536", "host:x", "h:١٢"],
)
def test_tcp_address_malformed(address: str) -> None:
    with pytest.raises(HandshakeError, match="malformed tcp address"):
        HandshakeLine(1, 1, "tcp", address, "grpc").tcp_address()


def test_tcp_address_on_unix_line() -> None:
    with pytest.raises(HandshakeError, match="not tcp"):
        HandshakeLine(1, 1, "unix", "/s", "grpc").tcp_address()


# --- round trip -------------------------------------------------------------------------------

_field = st.text(
    alphabet=st.characters(blacklist_characters="|\r\n", blacklist_categories=("Z", "Cc")),
    min_size=1,
)


@st.composite
def _lines(draw: st.DrawFn) -> HandshakeLine:
    network = draw(st.sampled_from(["unix", "tcp"]))
    if network == "tcp":
        host = draw(st.sampled_from(["127.0.0.1", "", "[::1]", "localhost"]))
        address = f"{host}:{draw(st.integers(1, 65535))}"
    else:
        address = "/" + draw(_field)
    return HandshakeLine(
        core_version=1,
        app_version=draw(st.integers(0, 10**6)),
        network=network,
        address=address,
        protocol=draw(st.sampled_from(["grpc", "netrpc", "tether"])),
        server_cert=draw(
            st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9+/]{51,200}", fullmatch=True))
        ),
        multiplex=draw(st.sampled_from([None, True, False])),
    )


@given(_lines())
def test_format_parse_round_trip(line: HandshakeLine) -> None:
    text = line.format()
    assert "\n" not in text
    assert HandshakeLine.parse(text + "\n") == line


# --- host_env ---------------------------------------------------------------------------------


def test_host_env_defaults() -> None:
    env = host_env(HS, [1])
    assert env == {
        "BASIC_PLUGIN": "hello",
        "PLUGIN_MIN_PORT": "10000",
        "PLUGIN_MAX_PORT": "25000",
        "PLUGIN_PROTOCOL_VERSIONS": "1",
    }


def test_host_env_all_options() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    env = host_env(
        HS,
        iter([3, 2, 3]),
        min_port=2000,
        max_port=2000,
        unix_socket_dir="/run/t",
        client_cert_pem=pem,
    )
    assert env[ENV_PROTOCOL_VERSIONS] == "3,2"
    assert env[ENV_MIN_PORT] == "2000"
    assert env[ENV_MAX_PORT] == "2000"
    assert env[ENV_UNIX_SOCKET_DIR] == "/run/t"
    assert env[ENV_CLIENT_CERT] == pem
    assert ENV_MULTIPLEX_GRPC not in env


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"min_port": 0}, "min_port"),
        ({"max_port": 65536}, "max_port"),
        ({"min_port": 3000, "max_port": 2000}, "greater than"),
    ],
)
def test_host_env_bad_ports(kwargs: dict[str, int], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        host_env(HS, [1], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("versions", [[], [0], [1, -2]])
def test_host_env_bad_versions(versions: list[int]) -> None:
    with pytest.raises(ConfigError, match="protocol version"):
        host_env(HS, versions)


# --- cookie -----------------------------------------------------------------------------------


def test_check_cookie() -> None:
    assert check_cookie(HS, {"BASIC_PLUGIN": "hello", "OTHER": "x"})
    assert not check_cookie(HS, {"BASIC_PLUGIN": "hello2"})
    assert not check_cookie(HS, {})
    assert check_cookie(HS, host_env(HS, [1]))


# --- negotiate_version ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "plugin", "expected"),
    [
        ("3,2", {2, 3}, 3),
        ("2", {2, 3}, 2),
        ("1", {2, 3}, 2),
        ("1,5,4", [4, 5, 6], 5),
        ("7", [1], 1),
    ],
)
def test_negotiate(offered: str, plugin: set[int], expected: int) -> None:
    assert negotiate_version(plugin, {ENV_PROTOCOL_VERSIONS: offered}) == (expected, [])


def test_negotiate_absent_variable_gives_lowest() -> None:
    assert negotiate_version([3, 2, 5], {}) == (2, [])


def test_negotiate_skips_garbage_with_warnings() -> None:
    version, warnings = negotiate_version({2, 3}, {ENV_PROTOCOL_VERSIONS: "x,2, 3,,1.0"})
    assert version == 2
    assert warnings == [
        'server sent invalid plugin version "x"',
        'server sent invalid plugin version " 3"',
        'server sent invalid plugin version ""',
        'server sent invalid plugin version "1.0"',
    ]


def test_negotiate_empty_variable_warns_like_go() -> None:
    assert negotiate_version([4], {ENV_PROTOCOL_VERSIONS: ""}) == (
        4,
        ['server sent invalid plugin version ""'],
    )


def test_negotiate_requires_plugin_versions() -> None:
    with pytest.raises(ConfigError):
        negotiate_version([], {ENV_PROTOCOL_VERSIONS: "1"})


# --- check_host_side --------------------------------------------------------------------------


def test_host_side_accepts() -> None:
    line = HandshakeLine.parse("1|2|unix|/s|grpc|")
    check_host_side(line, [1, 2], [PROTOCOL_GRPC, PROTOCOL_NATIVE])


def test_host_side_app_version_mismatch() -> None:
    line = HandshakeLine.parse("1|3|unix|/s|grpc|")
    with pytest.raises(HandshakeError) as info:
        check_host_side(line, [2, 1], [PROTOCOL_GRPC])
    assert not isinstance(info.value, UnsupportedProtocolError)
    assert str(info.value) == (
        "incompatible API version with plugin. Plugin version: 3, Client versions: 1, 2"
    )


def test_host_side_unsupported_netrpc() -> None:
    line = HandshakeLine.parse("1|1|unix|/tmp/plugin123456789|netrpc|")
    with pytest.raises(UnsupportedProtocolError) as info:
        check_host_side(line, [1], [PROTOCOL_GRPC, PROTOCOL_NATIVE])
    message = str(info.value)
    assert message.startswith('unsupported plugin protocol "netrpc". Supported: [grpc tether]')
    assert "net/rpc" in message
    assert "not supported" in message
    assert "serve gRPC" in message


def test_host_side_unsupported_other_protocol_has_no_netrpc_note() -> None:
    line = HandshakeLine.parse("1|1|unix|/s|tether|")
    with pytest.raises(UnsupportedProtocolError) as info:
        check_host_side(line, [1], [PROTOCOL_GRPC])
    assert str(info.value) == 'unsupported plugin protocol "tether". Supported: [grpc]'


def test_host_side_checks_version_before_protocol() -> None:
    line = HandshakeLine.parse("1|9|unix|/s|netrpc|")
    with pytest.raises(HandshakeError, match="incompatible API version"):
        check_host_side(line, [1], [PROTOCOL_GRPC])


# --- port_range -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, (0, 0)),
        ({ENV_MIN_PORT: "", ENV_MAX_PORT: ""}, (0, 0)),
        ({ENV_MIN_PORT: "10000", ENV_MAX_PORT: "25000"}, (10000, 25000)),
        ({ENV_MAX_PORT: "3000"}, (0, 3000)),
    ],
)
def test_port_range(environ: dict[str, str], expected: tuple[int, int]) -> None:
    assert port_range(environ) == expected


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({ENV_MIN_PORT: "abc", ENV_MAX_PORT: "2"}, "PLUGIN_MIN_PORT.*'abc'"),
        ({ENV_MIN_PORT: "1", ENV_MAX_PORT: "70000"}, "PLUGIN_MAX_PORT.*'70000'"),
        ({ENV_MIN_PORT: "-1"}, "PLUGIN_MIN_PORT"),
        ({ENV_MIN_PORT: "5000", ENV_MAX_PORT: "4000"}, "greater than"),
        ({ENV_MIN_PORT: "5000"}, "greater than"),
    ],
)
def test_port_range_invalid(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        port_range(environ)

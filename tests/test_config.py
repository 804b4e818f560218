"""Tests for tether._config: the manager's YAML configuration and its error reports."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

import tether
from tether._config import (
    DEFAULT_ENV_ALLOW,
    ConfigFileError,
    ManagerConfig,
    PluginSettings,
    RestartPolicy,
    expand_env,
    load_config,
)
from tether._signing import generate_keypair

EXAMPLE = Path(__file__).parent.parent / "examples" / "plugin-config.yaml"
DIGEST = "ab" * 32


def write(tmp_path: Path, text: str, name: str = "plugin-config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigFileError) as info:
        load_config(write(tmp_path, text), environ=environ or {})
    return str(info.value)


def one_problem(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    """The single problem line of a file with exactly one problem."""
    message = problems_of(tmp_path, text, environ)
    header, *lines = message.splitlines()
    assert header.endswith(": 1 problem"), message
    assert len(lines) == 1
    return lines[0].strip()


# --------------------------------------------------------------------------------------
# The shipped example and the defaults.


def test_the_shipped_example_loads() -> None:
    config = load_config(EXAMPLE, environ={})
    calc = config.plugins["calculator"]
    assert calc.command == ["python", "calculator/plugin.py"]
    assert calc.protocol == "tether"
    assert calc.restart.mode == "on-failure"
    assert calc.cwd == EXAMPLE.parent.absolute()
    assert calc.verify_path == EXAMPLE.parent.absolute() / "calculator" / "plugin.py"
    assert calc.verified_file() == calc.verify_path
    assert calc.verify_path.is_file()  # the path in the example is real
    assert config.calculator is not None
    assert config.calculator.precision == 15
    assert config.calculator.max_value == 1e100
    assert config.calculator.angle_unit == "radians"
    assert config.calculator.cache_size == 1000
    assert config.discovery.auto_scan is True
    assert config.discovery.entry_point_group == "tether.plugins"
    assert config.security.require_signature is False


def test_the_example_uses_the_environment() -> None:
    config = load_config(
        EXAMPLE, environ={"CALCULATOR_LOG_LEVEL": "debug", "TETHER_PLUGIN_DIR": "/p"}
    )
    assert config.plugins["calculator"].env["CALCULATOR_LOG_LEVEL"] == "debug"
    assert Path("/p") in config.discovery.paths


def test_an_empty_file_is_all_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), environ={})
    assert config == ManagerConfig()
    assert config.plugins == {}
    assert config.calculator is None
    assert config.discovery.patterns == ["*/tether.toml"]
    assert config.discovery.watch is True
    assert config.security.trusted_keys == []


def test_plugin_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "plugins: {p: {entry_point: 'pkg.mod:obj'}}"), {})
    plugin = config.plugins["p"]
    assert plugin.protocol == "tether"
    assert plugin.instances == 1
    assert plugin.start_timeout == 60.0
    assert plugin.restart == RestartPolicy()
    assert plugin.env_allow == list(DEFAULT_ENV_ALLOW)
    assert plugin.config == {}
    assert plugin.enabled is True
    assert plugin.cwd == tmp_path.absolute()
    assert plugin.verified_file() is None  # nothing to verify for an entry point


def test_calculator_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "calculator: {}"), environ={})
    assert config.calculator is not None
    assert (config.calculator.precision, config.calculator.max_value) == (15, 1e100)
    assert (config.calculator.angle_unit, config.calculator.cache_size) == ("radians", 1000)


def test_plugin_config_is_passed_through_untouched(tmp_path: Path) -> None:
    text = """
        plugins:
          calc:
            command: [calc]
            config: {precision: 3, nested: {list: [1, 2]}, flag: true}
    """
    config = load_config(write(tmp_path, text), environ={})
    assert config.plugins["calc"].config == {
        "precision": 3,
        "nested": {"list": [1, 2]},
        "flag": True,
    }


def test_models_work_without_a_file() -> None:
    plugin = PluginSettings(command=["x"], cwd=None)
    assert plugin.cwd is None
    assert ManagerConfig(plugins={"a": plugin}).plugins["a"] is plugin


def test_the_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "calculator: {}"), environ={})
    with pytest.raises(ValueError, match="frozen"):
        config.calculator.precision = 3  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------
# Every rule: the message names the field path, the value and what was expected.

RULES = [
    # (yaml, dotted path, value as shown, expectation)
    (
        "plugins: {calc: {command: [x], instances: -1}}",
        "plugins.calc.instances",
        "-1",
        "an integer >= 1",
    ),
    (
        "plugins: {calc: {command: [x], instances: two}}",
        "plugins.calc.instances",
        '"two"',
        "an integer",
    ),
    (
        "plugins: {calc: {command: [x], start_timeout: 0}}",
        "plugins.calc.start_timeout",
        "0",
        "a number > 0",
    ),
    (
        "plugins: {calc: {command: [x], protocol: netrpc}}",
        "plugins.calc.protocol",
        '"netrpc"',
        "one of 'tether' or 'grpc'",
    ),
    ("plugins: {calc: {command: []}}", "plugins.calc.command", "[]", "at least 1 item"),
    ("plugins: {calc: {command: ['']}}", "plugins.calc.command[0]", '""', "a non-empty string"),
    (
        "plugins: {calc: {command: python plugin.py}}",
        "plugins.calc.command",
        '"python plugin.py"',
        "a list",
    ),
    (
        "plugins: {calc: {entry_point: 'not an entry point'}}",
        "plugins.calc.entry_point",
        '"not an entry point"',
        "an entry point reference 'package.module:object'",
    ),
    (
        "plugins: {calc: {command: [x], enabled: maybe}}",
        "plugins.calc.enabled",
        '"maybe"',
        "true or false",
    ),
    (
        "plugins: {calc: {command: [x], checksum: abc}}",
        "plugins.calc.checksum",
        '"abc"',
        "a sha256 digest: 64 hex digits",
    ),
    (
        "plugins: {calc: {command: [x], env: {'A-B': x}}}",
        "plugins.calc.env.A-B",
        '"A-B"',
        "an environment variable name",
    ),
    ("plugins: {calc: {command: [x], env: {A: 1}}}", "plugins.calc.env.A", "1", "a string"),
    (
        "plugins: {calc: {command: [x], env_allow: ['A B']}}",
        "plugins.calc.env_allow[0]",
        '"A B"',
        "an environment variable name or a glob pattern",
    ),
    ("plugins: {calc: {command: [x], config: [1]}}", "plugins.calc.config", "[1]", "a mapping"),
    (
        "plugins: {calc: {command: [x], restart: {mode: sometimes}}}",
        "plugins.calc.restart.mode",
        '"sometimes"',
        "one of 'never', 'on-failure' or 'always'",
    ),
    (
        "plugins: {calc: {command: [x], restart: {max_restarts: -1}}}",
        "plugins.calc.restart.max_restarts",
        "-1",
        "an integer >= 0",
    ),
    (
        "plugins: {calc: {command: [x], restart: {backoff_initial: 0}}}",
        "plugins.calc.restart.backoff_initial",
        "0",
        "a number > 0",
    ),
    (
        "plugins: {calc: {command: [x], restart: {jitter: 1.5}}}",
        "plugins.calc.restart.jitter",
        "1.5",
        "a number <= 1",
    ),
    (
        "plugins: {calc: {command: [x], restart: {backoff_initial: 10, backoff_max: 5}}}",
        "plugins.calc.restart.backoff_max",
        "5",
        "a number >= backoff_initial (10)",
    ),
    (
        "plugins: {calc: {}}",
        "plugins.calc.command",
        "nothing",
        "either command (a list: the program and its arguments) or entry_point",
    ),
    (
        "plugins: {calc: {command: [x], entry_point: 'm:o'}}",
        "plugins.calc.entry_point",
        '"m:o"',
        "no entry_point when command is set",
    ),
    ("plugins: {'-calc': {command: [x]}}", "plugins.-calc", '"-calc"', "a plugin name"),
    ("plugins: [calc]", "plugins", '["calc"]', "a mapping"),
    ("discovery: {scan_interval: -5}", "discovery.scan_interval", "-5", "a number > 0"),
    ("discovery: {paths: /opt/plugins}", "discovery.paths", '"/opt/plugins"', "a list"),
    ("discovery: {auto_scan: sometimes}", "discovery.auto_scan", '"sometimes"', "true or false"),
    ("discovery: {patterns: ['']}", "discovery.patterns[0]", '""', "a non-empty string"),
    (
        "discovery: {entry_point_group: ''}",
        "discovery.entry_point_group",
        '""',
        "a non-empty string",
    ),
    ("calculator: {precision: 18}", "calculator.precision", "18", "an integer <= 17"),
    ("calculator: {precision: -1}", "calculator.precision", "-1", "an integer >= 0"),
    ("calculator: {precision: 1.5}", "calculator.precision", "1.5", "an integer"),
    ("calculator: {max_value: 0}", "calculator.max_value", "0", "a number > 0"),
    ("calculator: {max_value: .inf}", "calculator.max_value", "inf", "a finite number"),
    (
        "calculator: {angle_unit: gradians}",
        "calculator.angle_unit",
        '"gradians"',
        "one of 'radians' or 'degrees'",
    ),
    ("calculator: {cache_size: -1}", "calculator.cache_size", "-1", "an integer >= 0"),
    (
        "security: {require_signature: true}",
        "security.trusted_keys",
        "[]",
        "at least one key when require_signature is true",
    ),
    (
        "security: {trusted_keys: ['ssh-ed25519 AAAA']}",
        "security.trusted_keys[0]",
        '"ssh-ed25519 AAAA"',
        "a public key 'ed25519:<base64 of 32 bytes>'",
    ),
    (
        "security: {trusted_keys: ['ed25519:AAAA']}",
        "security.trusted_keys[0]",
        '"ed25519:AAAA"',
        "a public key",
    ),
    (
        "security: {tls: {cert_file: nope.pem, key_file: plugin-config.yaml}}",
        "security.tls.cert_file",
        '"nope.pem"',
        "an existing file",
    ),
    (
        "security: {tls: {key_file: plugin-config.yaml}}",
        "security.tls.cert_file",
        "nothing",
        "a value (this field is required)",
    ),
    ("version: 2", "version", "2", "one of 1"),
    (
        "security:\n  require_checksum: true\nplugins: {calc: {command: [x]}}",
        "plugins.calc.checksum",
        "nothing",
        "because security.require_checksum is true",
    ),
]


@pytest.mark.parametrize(("text", "path", "value", "expected"), RULES)
def test_every_rule_names_field_value_and_expectation(
    tmp_path: Path, text: str, path: str, value: str, expected: str
) -> None:
    line = one_problem(tmp_path, text)
    assert f": {path}: got {value}, expected " in line, line
    assert expected in line.split(", expected ", 1)[1], line
    assert line.startswith(f"{tmp_path / 'plugin-config.yaml'}:")


def test_the_issue_example_message(tmp_path: Path) -> None:
    text = """
        plugins:
          calc:
            command: [calc]
            instances: -1
    """
    line = one_problem(tmp_path, text)
    assert line.endswith(":5: plugins.calc.instances: got -1, expected an integer >= 1")


def test_the_error_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(tether.ConfigError) as info:
        load_config(write(tmp_path, "calculator: {precision: 99}"), environ={})
    assert isinstance(info.value, tether.TetherError)
    assert isinstance(info.value, ConfigFileError)
    [problem] = info.value.problems
    assert problem.path == ("calculator", "precision")
    assert problem.value == 99
    assert problem.line == 1
    assert info.value.source.endswith("plugin-config.yaml")


# --------------------------------------------------------------------------------------
# Unknown keys.


def test_unknown_key_suggests_the_closest_field(tmp_path: Path) -> None:
    text = """
        plugins:
          calc:
            command: [calc]
            instnaces: 3
    """
    line = one_problem(tmp_path, text)
    assert ":5: plugins.calc.instnaces: unknown field (got 3)" in line
    assert "did you mean 'instances'?" in line
    assert "expected one of: command, entry_point, protocol" in line


@pytest.mark.parametrize(
    ("text", "path", "suggestion"),
    [
        ("discovery: {auto_scn: true}", "discovery.auto_scn", "auto_scan"),
        ("secrity: {}", "secrity", "security"),
        ("calculator: {angle_units: degrees}", "calculator.angle_units", "angle_unit"),
        (
            "plugins: {c: {command: [x], restart: {backof_max: 3}}}",
            "plugins.c.restart.backof_max",
            "backoff_max",
        ),
        ("security: {tls: {cert: a}}", "security.tls.cert", "cert_file"),
    ],
)
def test_unknown_keys_at_every_level(tmp_path: Path, text: str, path: str, suggestion: str) -> None:
    message = problems_of(tmp_path, text)
    assert f"{path}: unknown field" in message
    assert f"did you mean {suggestion!r}?" in message


def test_unknown_key_far_from_any_field_has_no_suggestion(tmp_path: Path) -> None:
    line = one_problem(tmp_path, "calculator: {zzzzzz: 1}")
    assert "calculator.zzzzzz: unknown field (got 1)" in line
    assert "did you mean" not in line


# --------------------------------------------------------------------------------------
# Many problems at once, with line numbers.


def test_all_problems_are_reported_together_with_lines(tmp_path: Path) -> None:
    text = """\
        discovery:
          scan_interval: 0
        plugins:
          calc:
            command: [python, plugin.py]
            instances: -1
            protocl: grpc
          other:
            entry_point: "m:o"
            restart: {mode: sometimes}
        calculator:
          precision: 20
          angle_unit: gradians
    """
    message = problems_of(tmp_path, text)
    header, *lines = message.splitlines()
    assert header == f"invalid configuration {tmp_path / 'plugin-config.yaml'}: 6 problems"
    found = [line.strip().split(": ", 2)[:2] for line in lines]
    suffixes = [(where.rsplit(":", 1)[1], field) for where, field in found]
    assert suffixes == [
        ("2", "discovery.scan_interval"),
        ("6", "plugins.calc.instances"),
        ("7", "plugins.calc.protocl"),
        ("10", "plugins.other.restart.mode"),
        ("12", "calculator.precision"),
        ("13", "calculator.angle_unit"),
    ]


def test_a_missing_field_points_at_its_parent(tmp_path: Path) -> None:
    text = """\
        security:
          tls:
            key_file: plugin-config.yaml
    """
    message = problems_of(tmp_path, text)
    assert ":2: security.tls.cert_file: got nothing" in message


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    text = """\
        calculator:
          precision: 3
          precision: 4
    """
    line = one_problem(tmp_path, text)
    assert ':3: calculator.precision: got "precision", expected each key once' in line
    assert "already given on line 2" in line


def test_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    text = """\
        plugins:
          a: &base {command: [x], instances: 2}
          b:
            <<: *base
            instances: 3
    """
    config = load_config(write(tmp_path, text), environ={})
    assert config.plugins["b"].instances == 3
    assert config.plugins["b"].command == ["x"]


def test_yaml_boolean_keys_are_errors(tmp_path: Path) -> None:
    text = """\
        calculator: {}
        on: 1
    """
    line = one_problem(tmp_path, text)
    assert ':2: on: got "on", expected a string key' in line


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "calculator:\n  precision: [1, 2\n")
    with pytest.raises(tether.ConfigError, match=r"plugin-config\.yaml:\d+: invalid YAML"):
        load_config(path, environ={})


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    line = one_problem(tmp_path, "- a\n- b\n")
    assert '(top level): got ["a", "b"], expected a mapping at the top level' in line


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(tether.ConfigError, match=r"cannot read configuration file .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------------------
# Environment variables.


@pytest.mark.parametrize(
    ("text", "environ", "result"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("x-${A}-y", {"A": "1"}, "x-1-y"),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("${A:-dflt}", {}, "dflt"),
        ("${A:-dflt}", {"A": ""}, "dflt"),
        ("${A:-dflt}", {"A": "set"}, "set"),
        ("${A:-}", {}, ""),
        ("${A:-a:-b}", {}, "a:-b"),
        ("$$", {}, "$"),
        ("$${A}", {"A": "1"}, "${A}"),
        ("cost $5", {}, "cost $5"),
        ("$A", {"A": "1"}, "$A"),
        ("${A}", {"A": ""}, ""),
    ],
)
def test_expand_env(text: str, environ: dict[str, str], result: str) -> None:
    assert expand_env(text, environ) == result


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${MISSING}", "environment variable MISSING to be set"),
        ("${1A}", "${NAME} or ${NAME:-default}"),
        ("${}", "${NAME} or ${NAME:-default}"),
        ("${A-b}", "${NAME} or ${NAME:-default}"),
    ],
)
def test_expand_env_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        expand_env(text, {})


def test_variables_are_typed_after_expansion(tmp_path: Path) -> None:
    text = """
        plugins:
          calc:
            command: ["${PY:-python3}", plugin.py]
            instances: ${N}
            enabled: ${ON:-true}
    """
    config = load_config(write(tmp_path, text), environ={"N": "4"})
    assert config.plugins["calc"].instances == 4
    assert config.plugins["calc"].enabled is True
    assert config.plugins["calc"].command == ["python3", "plugin.py"]


def test_expanded_values_are_not_parsed_as_yaml(tmp_path: Path) -> None:
    text = "plugins: {calc: {command: [x], env: {V: '${V}'}}}"
    config = load_config(write(tmp_path, text), environ={"V": "[1, 2]: {a"})
    assert config.plugins["calc"].env == {"V": "[1, 2]: {a"}


def test_an_unset_variable_is_reported_once_with_its_line(tmp_path: Path) -> None:
    text = """\
        plugins:
          calc:
            command: [x]
            instances: ${COUNT}
    """
    line = one_problem(tmp_path, text)
    assert line.endswith(
        ':4: plugins.calc.instances: got "${COUNT}", expected environment variable COUNT '
        "to be set (or a default: ${COUNT:-value})"
    )


def test_load_config_reads_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_TEST_PRECISION", "7")
    config = load_config(write(tmp_path, "calculator: {precision: '${TETHER_TEST_PRECISION}'}"))
    assert config.calculator is not None
    assert config.calculator.precision == 7


# --------------------------------------------------------------------------------------
# Paths, security, restart and environment helpers.


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    text = """
        discovery: {paths: [plugins, /abs/plugins]}
        plugins: {calc: {command: [x], cwd: work, verify_path: bin/calc}}
    """
    config = load_config(write(sub, text), environ={})
    assert config.discovery.paths == [sub.absolute() / "plugins", Path("/abs/plugins")]
    assert config.plugins["calc"].cwd == sub.absolute() / "work"
    assert config.plugins["calc"].verify_path == sub.absolute() / "bin" / "calc"


def test_home_is_expanded_in_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "discovery: {paths: ['~/plugins']}"), environ={})
    assert config.discovery.paths == [Path("~/plugins").expanduser()]


def test_tls_files_that_exist(tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    text = "security: {tls: {cert_file: cert.pem, key_file: key.pem, ca_file: ca.pem}}"
    config = load_config(write(tmp_path, text), environ={})
    assert config.security.tls is not None
    assert config.security.tls.ca_file == tmp_path.absolute() / "ca.pem"


def test_auto_mtls_and_tls_files_exclude_each_other(tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    text = "security: {auto_mtls: true, tls: {cert_file: cert.pem, key_file: key.pem}}"
    line = one_problem(tmp_path, text)
    assert "security.auto_mtls: got true, expected false when tls files are given" in line


def test_trusted_keys_accept_keygen_output(tmp_path: Path) -> None:
    _, public = generate_keypair()
    text = f"security: {{require_signature: true, trusted_keys: ['{public}']}}"
    config = load_config(write(tmp_path, text), environ={})
    assert config.security.trusted_keys == [public]


def test_checksums_are_normalised(tmp_path: Path) -> None:
    text = f"plugins: {{calc: {{command: [x], checksum: 'sha256:{DIGEST.upper()}'}}}}"
    config = load_config(write(tmp_path, text), environ={})
    assert config.plugins["calc"].checksum == DIGEST


def test_require_checksum_exempts_disabled_and_entry_point_plugins(tmp_path: Path) -> None:
    text = f"""
        security: {{require_checksum: true}}
        plugins:
          ok: {{command: [x], checksum: '{DIGEST}'}}
          disabled: {{command: [x], enabled: false}}
          ep: {{entry_point: 'pkg:obj'}}
          ep_file: {{entry_point: 'pkg:obj', verify_path: pkg.py}}
    """
    line = one_problem(tmp_path, text)
    assert "plugins.ep_file.checksum: got nothing" in line


def test_restart_delay_doubles_up_to_the_maximum() -> None:
    policy = RestartPolicy(backoff_initial=1.0, backoff_max=5.0, jitter=0.0)
    assert [policy.delay(n) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(10_000) == 5.0


def test_restart_delay_jitter_bounds() -> None:
    policy = RestartPolicy(backoff_initial=2.0, backoff_max=2.0, jitter=0.25)
    assert policy.delay(0, random=0.0) == pytest.approx(1.5)
    assert policy.delay(0, random=0.5) == pytest.approx(2.0)
    assert policy.delay(0, random=0.999999) == pytest.approx(2.5, rel=1e-5)


def test_environment_allow_list() -> None:
    plugin = PluginSettings(
        command=["x"], env_allow=["PATH", "LC_*"], env={"EXTRA": "1", "PATH": "/override"}
    )
    host = {"PATH": "/bin", "LC_ALL": "C", "LC_TIME": "C", "SECRET": "s", "LANG": "en"}
    assert plugin.environment(host) == {
        "PATH": "/override",
        "LC_ALL": "C",
        "LC_TIME": "C",
        "EXTRA": "1",
    }


def test_environment_star_allows_everything() -> None:
    plugin = PluginSettings(command=["x"], env_allow=["*"])
    assert plugin.environment({"A": "1", "B": "2"}) == {"A": "1", "B": "2"}


def test_environment_default_keeps_secrets_out() -> None:
    plugin = PluginSettings(command=["x"])
    env = plugin.environment({"PATH": "/bin", "HOME": "/h", "AWS_SECRET_ACCESS_KEY": "k"})
    assert env == {"PATH": "/bin", "HOME": "/h"}


def test_verified_file_of_a_command(tmp_path: Path) -> None:
    exe = tmp_path / "bin" / "calc"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    relative = PluginSettings(command=["bin/calc"], cwd=tmp_path)
    assert relative.verified_file() == tmp_path / "bin" / "calc"
    on_path = PluginSettings(command=["calc"])
    assert on_path.verified_file(path_env=str(exe.parent)) == exe
    assert on_path.verified_file(path_env=str(tmp_path / "empty")) is None
    absolute = PluginSettings(command=[str(exe)], cwd=Path("/elsewhere"))
    assert absolute.verified_file() == exe


def test_no_stray_files(tmp_path: Path) -> None:
    load_config(write(tmp_path, "calculator: {}"), environ={})
    assert os.listdir(tmp_path) == ["plugin-config.yaml"]

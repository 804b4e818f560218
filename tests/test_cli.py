"""The `tether` console script, run as a new user would: a real process, real plugins."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import tether

SCRIPT = shutil.which("tether", path=str(Path(sys.executable).parent))
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CONFIG = EXAMPLES / "plugin-config.yaml"


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment: a private runtime dir, no
    TETHER_CONFIG."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(XDG_RUNTIME_DIR=str(runtime), COLUMNS="200")
    return env


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path = EXAMPLES, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    assert SCRIPT is not None, "the tether console script is not installed in the venv"
    return subprocess.run(
        [SCRIPT, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert proc.stderr.startswith("tether: error: ")
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr


# ------------------------------------------------------------------ basics


def test_version() -> None:
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"tether {tether.__version__}"


def test_no_command_prints_help_and_exits_2() -> None:
    proc = run()
    assert proc.returncode == 2
    for command in ("list", "inspect", "call", "run", "status", "keygen", "demo", "handshake"):
        assert f"  {command} " in proc.stdout


def test_unknown_command_is_a_usage_error() -> None:
    proc = run("lsit")
    assert proc.returncode == 2
    assert "No such command 'lsit'" in proc.stderr


def test_handshake_line_is_explained() -> None:
    proc = run("handshake", "1|3|unix|/tmp/plugin123|grpc|")
    assert proc.returncode == 0, proc.stderr
    assert "app protocol version   3" in proc.stdout
    assert "/tmp/plugin123" in proc.stdout
    assert "none (no AutoMTLS)" in proc.stdout


def test_bad_handshake_line_gives_go_plugins_error_in_one_line() -> None:
    proc = run("handshake", "hello world")
    assert proc.returncode == 1
    # go-plugin's message goes on with its list of likely causes, indented below.
    first, *rest = proc.stderr.splitlines()
    assert first == "tether: error: Unrecognized remote plugin message: hello world"
    assert all(line.startswith("  ") for line in rest)
    assert "Traceback" not in proc.stderr


def test_missing_configuration_says_how_to_name_one(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    proc = run("list", env=user_env, cwd=tmp_path)
    assert_one_line_error(proc, "no configuration file", "--config", "TETHER_CONFIG")


def test_invalid_configuration_names_file_and_line(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    bad = tmp_path / "tether.yaml"
    bad.write_text("version: 1\nplugins:\n  calc:\n    comand: [x]\n")
    proc = run("list", env=user_env, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("tether: error: invalid configuration tether.yaml")
    assert "tether.yaml:4: plugins.calc.comand: unknown field" in proc.stderr
    assert "did you mean 'command'" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ signing


def test_keygen_sign_verify_and_tamper(tmp_path: Path, user_env: dict[str, str]) -> None:
    key = tmp_path / "keys" / "signing.key"
    proc = run("keygen", "--out", str(key), env=user_env)
    assert proc.returncode == 0, proc.stderr
    public = proc.stdout.strip()
    assert public.startswith("ed25519:")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    plugin = tmp_path / "plugin.py"
    plugin.write_text("print('hi')\n")

    proc = run("sign", "--key", str(key), str(plugin), env=user_env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "plugin.py.sig").exists()

    proc = run("verify", "--key", public, str(plugin), env=user_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ok  {plugin}")
    proc = run("verify", "--key", f"{key}.pub", str(plugin), "--json", env=user_env)
    assert json.loads(proc.stdout)[0]["ok"] is True

    plugin.write_text("print('pwned')\n")
    proc = run("verify", "--key", public, str(plugin), env=user_env)
    assert_one_line_error(proc, "has changed since it was signed")

    proc = run("keygen", "--out", str(key), env=user_env)
    assert_one_line_error(proc, "already exists")


def test_verify_without_keys_explains(tmp_path: Path, user_env: dict[str, str]) -> None:
    (tmp_path / "f").write_text("x")
    proc = run("verify", "f", env=user_env, cwd=tmp_path)
    assert_one_line_error(proc, "no trusted keys", "--key")


# ------------------------------------------------------------------ list, inspect, call


def test_list(user_env: dict[str, str]) -> None:
    proc = run("list", env=user_env)
    assert proc.returncode == 0, proc.stderr
    assert "calculator" in proc.stdout
    assert "tether" in proc.stdout


def test_list_json(user_env: dict[str, str]) -> None:
    proc = run("list", "--json", env=user_env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    (plugin,) = data["plugins"]
    assert plugin["name"] == "calculator"
    assert plugin["protocol"] == "tether"
    assert plugin["instances"] == 1
    assert data["problems"] == []


def test_list_shows_problems_but_exits_0(tmp_path: Path, user_env: dict[str, str]) -> None:
    (tmp_path / "tether.yaml").write_text(
        "version: 1\nplugins:\n  nohandshake:\n    command: [python3, p.py]\n"
    )
    proc = run("--json", "list", env=user_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (problem,) = json.loads(proc.stdout)["problems"]
    assert "no handshake" in problem


def test_inspect_shows_signatures(user_env: dict[str, str]) -> None:
    proc = run("inspect", "calculator", env=user_env)
    assert proc.returncode == 0, proc.stderr
    assert "add(a: float, b: float) -> float" in proc.stdout
    assert "batch_add(requests: list[AddRequest]) -> list[AddResponse]" in proc.stdout
    assert "ScientificCalculator (extends Calculator)" in proc.stdout


def test_inspect_json(user_env: dict[str, str]) -> None:
    proc = run("--json", "inspect", "calculator", env=user_env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    (served,) = data["served"]
    assert served["interface"] == "ScientificCalculator"
    add = next(m for m in served["methods"] if m["name"] == "add")
    assert add["params"][0] == {
        "name": "a",
        "type": "float",
        "required": True,
        "default": None,
        "schema": {"type": "number"},
    }
    assert isinstance(data["pid"], int)
    assert not _alive(data["pid"])  # inspect stops the plugin it started


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; only a running process counts.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_call_prints_the_result(user_env: dict[str, str]) -> None:
    proc = run("call", "calculator", "add", "2", "3", env=user_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "5.0"


def test_call_json_with_structured_arguments(user_env: dict[str, str]) -> None:
    proc = run("call", "calculator", "batch_add", '[{"a": 1, "b": 2}]', "--json", env=user_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"result": 3.0, "error": None}]


def test_call_bad_json_says_to_quote(user_env: dict[str, str]) -> None:
    proc = run("call", "calculator", "add", "two", "3", env=user_env)
    assert_one_line_error(proc, "not valid JSON", """'"two"'""")


def test_call_unknown_plugin_suggests(user_env: dict[str, str]) -> None:
    proc = run("call", "calculater", "add", "1", "2", env=user_env)
    assert_one_line_error(proc, "no plugin named 'calculater'", "did you mean 'calculator'")


def test_call_unknown_method_suggests(user_env: dict[str, str]) -> None:
    proc = run("call", "calculator", "ad", "1", "2", env=user_env)
    assert_one_line_error(proc, "has no method 'ad'", "did you mean 'add'")


def test_call_wrong_argument_type_names_the_parameter(user_env: dict[str, str]) -> None:
    proc = run("call", "calculator", "add", "1", '"x"', env=user_env)
    assert_one_line_error(proc, "argument 'b'", "Expected `float`, got `str`")


def test_call_plugin_error_is_one_line(user_env: dict[str, str]) -> None:
    proc = run("call", "calculator", "divide", "1", "0", env=user_env)
    assert_one_line_error(proc, "CalculatorError: division by zero")


def test_debug_shows_the_traceback(user_env: dict[str, str]) -> None:
    proc = run("--debug", "call", "calculator", "add", "1", '"x"', env=user_env)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("tether: error: ")


def test_call_repeat_prints_a_summary(user_env: dict[str, str]) -> None:
    proc = run("call", "calculator", "add", "1", "2", "--repeat", "200", env=user_env)
    assert proc.returncode == 0, proc.stderr
    for needle in ("calls", "200", "calls/s", "p50 latency", "p99 latency", "last result: 3.0"):
        assert needle in proc.stdout
    proc = run("call", "calculator", "add", "1", "2", "-n", "50", "--json", env=user_env)
    summary = json.loads(proc.stdout)
    assert summary["calls"] == 50
    assert summary["result"] == 3.0
    assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"]


# ------------------------------------------------------------------ without `tether run`


def test_status_without_run_exits_3(user_env: dict[str, str]) -> None:
    proc = run("status", env=user_env)
    assert proc.returncode == 3, proc.stderr
    assert "no `tether run` is running for plugin-config.yaml" in proc.stdout
    assert "calculator: not running" in proc.stdout
    proc = run("status", "--json", env=user_env)
    assert proc.returncode == 3
    assert json.loads(proc.stdout)["running"] is False


def test_health_without_run_starts_each_plugin_once(user_env: dict[str, str]) -> None:
    proc = run("health", "--json", env=user_env)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["plugin"] == "calculator"
    assert result["ok"] is True
    assert result["latency"] > 0


def test_health_reports_a_broken_plugin_and_exits_1(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    (tmp_path / "tether.yaml").write_text(
        "version: 1\n"
        "handshake: {magic_cookie_key: K, magic_cookie_value: v}\n"
        "plugins:\n"
        f"  broken:\n    command: [{sys.executable!r}, -c, 'raise SystemExit(3)']\n"
        "    start_timeout: 10\n"
    )
    proc = run("health", env=user_env, cwd=tmp_path)
    assert proc.returncode == 1
    assert "broken" in proc.stdout
    assert "unhealthy" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_grpc_plugins_are_inspected_as_far_as_the_protocol_allows(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    (tmp_path / "tether.yaml").write_text(
        "version: 1\n"
        "handshake: {magic_cookie_key: BASIC_PLUGIN, magic_cookie_value: hello}\n"
        "plugins:\n"
        f"  kv:\n    command: [{sys.executable!r}, {str(EXAMPLES / 'kv' / 'plugin.py')!r}]\n"
        "    protocol: grpc\n"
    )
    proc = run("inspect", "kv", env=user_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "grpc (app protocol v1)" in proc.stdout
    assert "answered a ping" in proc.stdout
    assert "listing methods works for tether's native protocol only" in proc.stdout
    proc = run("call", "kv", "get", '"x"', env=user_env, cwd=tmp_path)
    assert_one_line_error(proc, "plugin 'kv' speaks gRPC")


def test_importing_the_cli_stays_cheap() -> None:
    # `tether --help` and `--version` must not pay for rich, pydantic or the manager.
    code = (
        "import sys, tether._cli; "
        "heavy = [m for m in ('rich', 'pydantic', 'tether._manager', 'tether._config') "
        "if m in sys.modules]; print(heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_call_plugin_option_names_the_served_object(user_env: dict[str, str]) -> None:
    proc = run("call", "calculator", "add", "1", "2", "--plugin", "calculator", env=user_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3.0"
    proc = run("call", "calculator", "add", "1", "2", "--plugin", "calc", env=user_env)
    assert_one_line_error(proc, "serves no 'calc'", "did you mean 'calculator'")


# On a machine whose package caches are cold, the install downloads tether's dependencies.
@pytest.mark.timeout(600)
def test_install_then_call_runs_in_the_plugins_environment(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    from _discovery_kit import build_clashlib, write_plugin

    plugins = tmp_path / "plugins"
    build_clashlib(plugins / "wheels", "1.0")
    write_plugin(
        plugins / "old",
        "old",
        clashlib=True,
        requirements=["../wheels/clashlib-1.0-py3-none-any.whl"],
    )
    (tmp_path / "tether.yaml").write_text(
        "version: 1\ndiscovery: {paths: [plugins], entry_points: false}\nenvironments_dir: envs\n"
    )
    proc = run("list", "--json", env=user_env, cwd=tmp_path)
    (listed,) = json.loads(proc.stdout)["plugins"]
    assert "tether install old" in listed["problem"]

    proc = run("install", env=user_env, cwd=tmp_path, timeout=540)
    assert proc.returncode == 0, proc.stderr
    assert f"installed old in {tmp_path / 'envs'}" in proc.stdout

    # The plugin serves one name ("greeter"), so `call` needs no --plugin.
    proc = run("call", "old", "hello", env=user_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '"1.0"'

    proc = run("install", "nope", env=user_env, cwd=tmp_path)
    assert_one_line_error(proc, "no plugin named 'nope'")


# ------------------------------------------------------------------ with the manager


def _run_config(tmp_path: Path) -> Path:
    config = tmp_path / "tether.yaml"
    config.write_text(
        (EXAMPLES / "plugin-config.yaml")
        .read_text()
        .replace("calculator/plugin.py", str(EXAMPLES / "calculator" / "plugin.py"))
        .replace("instances: 1 ", "instances: 2 ")
        .replace("auto_scan: true", "auto_scan: false")
        .replace("    - ${TETHER_PLUGIN_DIR:-~/.local/share/tether/plugins}\n", "")
    )
    return config


def _wait_running(
    env: dict[str, str], cwd: Path, run_proc: subprocess.Popen[str]
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert run_proc.poll() is None, run_proc.communicate()
        proc = run("status", "--json", env=env, cwd=cwd)
        if proc.returncode == 0:
            data: dict[str, Any] = json.loads(proc.stdout)
            states = {p["state"] for p in data["plugins"]}
            if states == {"running"}:
                return data
        time.sleep(0.1)
    raise AssertionError("tether run did not report its plugins running")


def test_run_status_health_and_ctrl_c(tmp_path: Path, user_env: dict[str, str]) -> None:
    _run_config(tmp_path)
    assert SCRIPT is not None
    run_proc = subprocess.Popen(
        [SCRIPT, "run"],
        cwd=tmp_path,
        env=user_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    try:
        data = _wait_running(user_env, tmp_path, run_proc)
        assert data["running"] is True
        (calc,) = data["plugins"]
        assert calc["name"] == "calculator"
        pids = [i["pid"] for i in calc["instances"]]
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)

        proc = run("status", env=user_env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "calculator" in proc.stdout
        assert "running" in proc.stdout

        proc = run("health", "--json", env=user_env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        results = json.loads(proc.stdout)
        assert [r["ok"] for r in results] == [True, True]

        proc = run("run", env=user_env, cwd=tmp_path)
        assert_one_line_error(proc, "already running")

        run_proc.send_signal(signal.SIGINT)
        _out, err = run_proc.communicate(timeout=30)
    finally:
        if run_proc.poll() is None:
            run_proc.kill()
            run_proc.communicate()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert run_proc.returncode == 0, err
    assert "stopped 1 plugin(s)" in err
    assert "Traceback" not in err
    assert not any(_alive(pid) for pid in pids)
    proc = run("status", env=user_env, cwd=tmp_path)
    assert proc.returncode == 3


def test_demo(user_env: dict[str, str], tmp_path: Path) -> None:
    proc = run("demo", env=user_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "calc.add(2, 3) = 5.0" in proc.stdout
    assert "killed instance pid" in proc.stdout
    assert "the pool replaced it" in proc.stdout
    proc = run("demo", "--json", env=user_env, cwd=tmp_path)
    steps = json.loads(proc.stdout)
    killed = next(s["killed"] for s in steps if "killed" in s)
    replaced = next(s["pids"] for s in steps if s["step"].startswith("the pool replaced"))
    assert killed not in replaced
    assert not any(_alive(pid) for pid in replaced)

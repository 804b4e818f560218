"""The short poll a reader makes before it sleeps in recv() (TETHER_SPIN_US)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import MakeClient
from plugins.helper import Echo
from tether._endpoint import spin_budget_ns
from tether._env import ENV_SPIN_US


def test_default_budget_with_two_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_SPIN_US, raising=False)
    if len(os.sched_getaffinity(0)) < 2:
        pytest.fail("this test needs a process allowed on two CPUs")
    assert spin_budget_ns() == 50_000


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("120", 120_000), ("7", 7_000)])
def test_budget_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: int
) -> None:
    monkeypatch.setenv(ENV_SPIN_US, raw)
    assert spin_budget_ns() == expected


@pytest.mark.parametrize("raw", ["fast", "-5", "1.5", ""])
def test_a_bad_value_is_reported_and_the_default_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, raw: str
) -> None:
    monkeypatch.setenv(ENV_SPIN_US, raw)
    with caplog.at_level(logging.WARNING, logger="tether"):
        assert spin_budget_ns() == 50_000
    assert ENV_SPIN_US in caplog.text
    assert repr(raw) in caplog.text


def test_no_spinning_on_one_cpu() -> None:
    # Polling for an answer the peer cannot compute meanwhile would only delay it.
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from tether._endpoint import spin_budget_ns; print(spin_budget_ns())"
    )
    env = {k: v for k, v in os.environ.items() if k != ENV_SPIN_US}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0"


@pytest.mark.parametrize("spin", ["0", "50", "2000"])
def test_calls_answer_alike_with_any_budget(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, spin: str
) -> None:
    monkeypatch.setenv(ENV_SPIN_US, spin)  # read by both endpoints when they connect
    client = make_client()
    client.start()
    echo = client.dispense("echo", Echo)
    assert [echo.add(i, 1) for i in range(300)] == [i + 1 for i in range(300)]
    # Concurrent callers take the no-spin path; their answers still reach the right thread.
    results: dict[int, list[int]] = {}

    def caller(k: int) -> None:
        results[k] = [echo.add(k, i) for i in range(100)]

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == {k: [k + i for i in range(100)] for k in range(8)}


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_plugin_stops_polling(make_client: MakeClient) -> None:
    # A large budget, so a reader that never stopped polling would show a second of CPU.
    client = make_client(env={ENV_SPIN_US: "20000"})
    client.start()
    echo = client.dispense("echo", Echo)
    for i in range(200):
        echo.add(i, i)
    assert client.pid is not None
    before = _cpu_seconds(client.pid)
    time.sleep(1.0)
    assert _cpu_seconds(client.pid) - before < 0.3


def test_the_host_budget_reaches_a_plugin_without_inherited_environment(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_SPIN_US, "7")
    client = make_client(inherit_env=False, env={"PATH": os.environ["PATH"]})
    client.start()
    assert client.dispense("echo", Echo).getenv(ENV_SPIN_US) == "7"


def test_the_plugin_env_wins_over_the_host_budget(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_SPIN_US, "7")
    client = make_client(env={ENV_SPIN_US: "0"})
    client.start()
    assert client.dispense("echo", Echo).getenv(ENV_SPIN_US) == "0"


def test_polling_backs_off_when_answers_do_not_come_in_time(make_client: MakeClient) -> None:
    # The host pauses between calls longer than the budget: a plugin that polled after every
    # reply would burn the whole budget each time (60 x 3 ms); it backs off after a miss.
    client = make_client(env={ENV_SPIN_US: "3000"})
    client.start()
    echo = client.dispense("echo", Echo)
    assert client.pid is not None
    echo.add(1, 1)
    before = _cpu_seconds(client.pid)
    for i in range(60):
        time.sleep(0.005)
        assert echo.add(i, 1) == i + 1
    assert _cpu_seconds(client.pid) - before < 0.09

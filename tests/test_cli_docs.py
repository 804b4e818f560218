"""docs/CLI.md's ```console examples, run against the real `tether` script so the docs
cannot rot.

In an example, `$ ` starts a command (run by bash in a copy of examples/); the lines after it
are its expected output, where `...` stands for any text within a line and a line of only
`...` for any number of lines. Output is compared with stdout, or with stderr when the
expected output is a `tether: error:` line. A trailing `# exit N` gives the expected exit
code (default 0); a command marked `# not run: <why>` is skipped, that line only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "CLI.md"
BIN = str(Path(sys.executable).parent)

_BLOCK = re.compile(r"^```console\n(.*?)^```", re.DOTALL | re.MULTILINE)
_EXIT = re.compile(r"\s+#\s*exit\s+(\d+)\s*$")
_NOT_RUN = re.compile(r"\s+#\s*not run:")


@dataclass
class Example:
    command: str
    exit_code: int = 0
    output: list[str] = field(default_factory=list)
    skip: bool = False


def examples(text: str) -> list[Example]:
    found: list[Example] = []
    for block in _BLOCK.findall(text):
        for line in block.splitlines():
            if line.startswith("$ "):
                command = line[2:]
                example = Example(command)
                if _NOT_RUN.search(command):
                    example.skip = True
                exit_match = _EXIT.search(command)
                if exit_match:
                    example.exit_code = int(exit_match.group(1))
                    example.command = command[: exit_match.start()]
                found.append(example)
            elif found:
                found[-1].output.append(line)
    return found


def pattern(expected: list[str]) -> re.Pattern[str]:
    parts = []
    for line in expected:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(re.escape(line.rstrip()).replace(r"\.\.\.", r"[^\n]*?") + r"\n")
    return re.compile("".join(parts))


def test_the_doc_has_examples_of_every_command() -> None:
    commands = {
        e.command.split()[1] for e in examples(DOC.read_text()) if e.command[:7] == "tether "
    }
    for name in (
        "list",
        "inspect",
        "call",
        "run",
        "status",
        "health",
        "install",
        "keygen",
        "sign",
        "verify",
        "handshake",
        "demo",
    ):
        assert name in commands, f"docs/CLI.md has no example of `tether {name}`"


def test_patterns_match_as_documented() -> None:
    assert pattern(["a ...", "...", "z"]).fullmatch("a bc\nx\ny\nz\n")
    assert not pattern(["a", "z"]).fullmatch("a\nx\nz\n")


def test_cli_doc_examples_run(tmp_path: Path) -> None:
    """All examples in order, in one directory: later ones see what earlier ones made."""
    work = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", work, ignore=shutil.ignore_patterns("__pycache__"))
    home = tmp_path / "home"
    runtime = tmp_path / "runtime"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(
        PATH=BIN + os.pathsep + env.get("PATH", ""),
        HOME=str(home),
        XDG_RUNTIME_DIR=str(runtime),
        COLUMNS="100",  # tables in the doc are this wide
    )
    ran = 0
    for example in examples(DOC.read_text()):
        if example.skip:
            continue  # marked `# not run:` in the doc, with the reason (e.g. runs until Ctrl-C)
        proc = subprocess.run(
            ["bash", "-c", example.command],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        where = f"`{example.command}` (stdout:\n{proc.stdout}\nstderr:\n{proc.stderr})"
        assert proc.returncode == example.exit_code, where
        expected = example.output
        actual = (
            proc.stderr
            if expected[:1] and expected[0].startswith("tether: error:")
            else proc.stdout
        )
        actual = "".join(line.rstrip() + "\n" for line in actual.splitlines())
        if expected:
            assert pattern(expected).fullmatch(actual), f"output differs for {where}"
        ran += 1
    assert ran >= 20


@pytest.mark.parametrize(
    ("line", "exit_code", "skip"),
    [("tether status    # exit 3", 3, False), ("tether run    # not run: forever", 0, True)],
)
def test_example_markers(line: str, exit_code: int, skip: bool) -> None:
    (example,) = examples(f"```console\n$ {line}\n```\n")
    assert (example.exit_code, example.skip) == (exit_code, skip)

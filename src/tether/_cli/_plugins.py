"""Commands that read the configuration and talk to plugins directly: `list`, `inspect`,
`call` (each starts the plugin it needs and stops it again; no `tether run` required)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ._app import STATE, common_options, console, discovery, echo_json, err_console, to_jsonable

if TYPE_CHECKING:
    from .._client import Client
    from .._config import ManagerConfig
    from .._describe import PluginDescription
    from .._discovery import Discovery
    from .._spec import PluginSpec

__all__ = ["call_cmd", "inspect_cmd", "list_cmd", "pick_spec", "start_client"]


# ------------------------------------------------------------------ shared


def did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    close = [c for c in choices if c.startswith(word) or word.startswith(c)]
    close = close or difflib.get_close_matches(word, choices, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (configured: {', '.join(sorted(choices)) or 'none'})"


def pick_spec(found: Discovery, name: str, source: str) -> PluginSpec:
    """The plugin called `name`, or a ConfigError with the closest name."""
    from .._errors import ConfigError

    spec = found.by_name().get(name)
    if spec is None:
        names = [s.name for s in found.specs]
        raise ConfigError(f"no plugin named {name!r} in {source}{did_you_mean(name, names)}")
    if spec.problem:
        raise ConfigError(f"plugin {name!r} cannot start: {spec.problem}")
    return spec


def verify(spec: PluginSpec, config: ManagerConfig) -> None:
    """The checks the manager makes before it runs `spec` (checksum, signature, problems)."""
    from .._manager import verify_spec

    verify_spec(spec, config.security)


@contextmanager
def start_client(spec: PluginSpec, config: ManagerConfig) -> Iterator[Client]:
    """One process of `spec`, started and handshaken; killed on the way out."""
    verify(spec, config)
    client = spec.client()
    try:
        client.start()
        yield client
    finally:
        client.kill()


def _manifest_dict(spec: PluginSpec) -> dict[str, Any]:
    manifest = spec.manifest
    return {
        "name": spec.name,
        "version": str(manifest.version),
        "description": manifest.description,
        "protocol": spec.settings.protocol,
        "instances": spec.settings.instances,
        "source": spec.source,
        "manifest": manifest.source,
        "interfaces": {k: list(v) for k, v in manifest.interfaces.items()},
        "requires": {k: str(v) for k, v in manifest.requires.items()},
        "command": list(spec.command),
        "problem": spec.problem,
    }


# ------------------------------------------------------------------ list


@click.command("list")
@common_options
def list_cmd() -> None:
    """List the plugins the configuration leads to, and anything that could not be read."""
    path, _, found = discovery()
    rows = [_manifest_dict(spec) for spec in found.specs]
    if STATE.json:
        echo_json({"config": str(path), "plugins": rows, "problems": found.problems})
        return
    from rich.markup import escape
    from rich.table import Table

    out = console()
    table = Table(title=f"plugins in {path}", title_justify="left")
    for column in ("name", "version", "protocol", "instances", "source", "description"):
        table.add_column(column, no_wrap=column == "name")
    for row in rows:
        description = escape(row["description"])
        if row["problem"]:
            description = f"[red]cannot start: {escape(row['problem'])}[/red]"
        table.add_row(
            row["name"],
            row["version"],
            row["protocol"],
            str(row["instances"]),
            escape(row["source"]),
            description,
        )
    out.print(table if rows else f"no plugins in {path}")
    for problem in found.problems:
        out.print(f"[yellow]problem:[/yellow] {escape(problem)}")


# ------------------------------------------------------------------ inspect


@click.command("inspect")
@click.argument("name")
@common_options
def inspect_cmd(name: str) -> None:
    """Show a plugin's metadata and every method it serves, with full signatures.

    Starts the plugin once to ask it, then stops it.
    """
    from dataclasses import asdict

    path, config, found = discovery()
    spec = pick_spec(found, name, str(path))
    info = _manifest_dict(spec)
    served: list[PluginDescription] = []
    note = ""
    with start_client(spec, config) as client:
        started = time.perf_counter()
        client.ping()
        info["ping_ms"] = round((time.perf_counter() - started) * 1000, 3)
        info["pid"] = client.pid
        info["negotiated_version"] = client.negotiated_version
        if client.protocol == "grpc":
            note = (
                "speaks go-plugin's gRPC protocol: it answers health checks, but listing "
                "methods works for tether's native protocol only (see its .proto files)"
            )
        else:
            served = client.describe()
    info["served"] = [asdict(d) for d in served]
    if note:
        info["note"] = note
    if STATE.json:
        echo_json(info)
        return
    _print_inspect(info, served, note)


def _print_inspect(info: dict[str, Any], served: list[PluginDescription], note: str) -> None:
    from rich.markup import escape

    out = console()
    out.print(f"[bold]{escape(info['name'])}[/bold] {escape(info['version'])}")
    if info["description"]:
        out.print(escape(info["description"]))
    rows = [
        ("protocol", f"{info['protocol']} (app protocol v{info['negotiated_version']})"),
        ("command", " ".join(info["command"])),
        ("instances", str(info["instances"])),
        ("source", info["source"]),
        ("health", f"answered a ping in {info['ping_ms']:.2f} ms (pid {info['pid']})"),
    ]
    for key, value in rows:
        out.print(f"  [dim]{key:<10}[/dim] {escape(value)}")
    if note:
        out.print(f"\n[yellow]{escape(note)}[/yellow]")
    for desc in served:
        bases = [i for i in desc.interfaces if i != desc.interface]
        extra = f" (extends {', '.join(bases)})" if bases else ""
        out.print(
            f"\n[bold]{escape(desc.name)}[/bold]: {escape(desc.interface)}{escape(extra)}, "
            f"implemented by {escape(desc.implementation)}"
        )
        if desc.doc:
            out.print(f"  [italic]{escape(desc.doc)}[/italic]")
        for method in desc.methods:
            marker = "  [magenta](stream)[/magenta]" if method.stream else ""
            out.print(f"  [cyan]{escape(method.signature)}[/cyan]{marker}")
            if method.doc:
                out.print(f"      {escape(method.doc.splitlines()[0])}")


# ------------------------------------------------------------------ call


def parse_args(raw: tuple[str, ...]) -> list[Any]:
    """Each argument as JSON; a bare word gets a message saying how to quote it."""
    from .._errors import ConfigError

    values = []
    for i, text in enumerate(raw, 1):
        try:
            values.append(json.loads(text))
        except json.JSONDecodeError as exc:
            hint = f"""; to pass the text {text!r}, quote it as JSON: '"{text}"'"""
            if text[:1] in '[{"' or text[:1].isdigit():
                hint = ""
            raise ConfigError(
                f"argument {i} ({text!r}) is not valid JSON ({exc.msg}){hint}"
            ) from None
    return values


def _served_name(client: Client, plugin: str, requested: str | None) -> str:
    described = client.describe()
    if requested is not None:
        return requested
    names = [d.name for d in described]
    if plugin in names or len(names) != 1:
        return plugin
    return names[0]  # a plugin serving one name: no need to spell it


@click.command("call")
@click.argument("name")
@click.argument("method")
@click.argument("args", nargs=-1)
@click.option(
    "--plugin",
    "-p",
    "served",
    metavar="NAME",
    help="The name to dispense, when the plugin serves several or another name than NAME.",
)
@click.option(
    "--repeat",
    "-n",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Make the call N times (a progress bar, then calls/s and latency percentiles).",
)
@click.option("--timeout", "-t", type=float, default=None, help="Seconds to wait for each call.")
@click.option(
    "--no-init",
    is_flag=True,
    help="Do not call the plugin's initialize(config) before METHOD.",
)
@common_options
def call_cmd(
    name: str,
    method: str,
    args: tuple[str, ...],
    served: str | None,
    repeat: int,
    timeout: float | None,
    no_init: bool,
) -> None:
    """Call METHOD of plugin NAME with JSON ARGS and print the result.

    Each ARG is JSON: 1.5, true, '"text"', '{"a": 1}', '[1, 2]'. When the plugin has an
    initialize method, it is called first with the plugin's configured settings (as
    `tether run` would), unless --no-init.
    """
    from .._errors import ConfigError

    values = parse_args(args)
    path, config, found = discovery()
    spec = pick_spec(found, name, str(path))
    if spec.settings.protocol == "grpc":
        raise ConfigError(
            f"plugin {name!r} speaks gRPC: `tether call` calls tether's native protocol only "
            "(use the plugin's gRPC client; `tether health` checks it)"
        )
    with start_client(spec, config) as client:
        target = _served_name(client, name, served)
        described = {d.name: d for d in client.describe()}
        desc = described.get(target)
        if (
            desc is not None
            and not no_init
            and method != "initialize"
            and (init := desc.method("initialize")) is not None
            and len(init.params) == 1
        ):
            client.call(target, "initialize", dict(spec.config), timeout=timeout)
        if repeat > 1:
            _repeat(client, target, method, values, repeat, timeout)
            return
        result = client.call(target, method, *values, timeout=timeout)
        if desc is not None and (m := desc.method(method)) is not None and m.stream:
            _print_stream(result)
            return
        _print_result(result)


def _print_result(result: Any) -> None:
    if STATE.json:
        echo_json(result)
        return
    from rich.json import JSON

    console().print(JSON.from_data(to_jsonable(result)))


def _print_stream(items: Any) -> None:
    if STATE.json:
        echo_json(list(items))
        return
    from rich.json import JSON

    out = console()
    for item in items:
        out.print(JSON.from_data(to_jsonable(item)))


def _repeat(
    client: Client,
    target: str,
    method: str,
    values: list[Any],
    repeat: int,
    timeout: float | None,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    latencies: list[float] = []
    result: Any = None
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console(),
        transient=True,
        disable=STATE.json,
    )
    began = time.perf_counter()
    with progress:
        task = progress.add_task(f"{method} x{repeat}", total=repeat)
        for _ in range(repeat):
            start = time.perf_counter()
            result = client.call(target, method, *values, timeout=timeout)
            latencies.append(time.perf_counter() - start)
            progress.advance(task)
    total = time.perf_counter() - began
    summary = _summary(latencies, total)
    summary["result"] = result
    if STATE.json:
        echo_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"{method} x{repeat}", title_justify="left", show_header=False)
    table.add_column(style="dim")
    table.add_column(justify="right")
    table.add_row("calls", str(summary["calls"]))
    table.add_row("total", f"{summary['seconds']:.3f} s")
    table.add_row("calls/s", f"{summary['calls_per_second']:.0f}")
    for key in ("mean", "p50", "p99", "max"):
        table.add_row(f"{key} latency", f"{summary['latency_ms'][key]:.3f} ms")
    out = console()
    out.print(table)
    out.print("last result:", json.dumps(to_jsonable(result)))


def _summary(latencies: list[float], total: float) -> dict[str, Any]:
    ordered = sorted(latencies)

    def percentile(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    return {
        "calls": len(latencies),
        "seconds": total,
        "calls_per_second": len(latencies) / total if total > 0 else 0.0,
        "latency_ms": {
            "mean": sum(latencies) / len(latencies) * 1000,
            "p50": percentile(50),
            "p99": percentile(99),
            "max": ordered[-1] * 1000,
        },
    }

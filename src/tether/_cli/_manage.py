"""Commands built on the PluginManager: `run`, `status`, `health`, `install`, `demo`."""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._app import (
    EXIT_ERROR,
    EXIT_NOT_RUNNING,
    STATE,
    common_options,
    console,
    discovery,
    echo_json,
    err_console,
    load,
    to_jsonable,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from .._manager import PluginManager

__all__ = ["demo_cmd", "health_cmd", "install_cmd", "run_cmd", "status_cmd"]


# ------------------------------------------------------------------ rendering


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


_STATE_STYLE = {"running": "green", "failed": "red", "stopped": "dim", "stopping": "yellow"}


def status_table(plugins: list[dict[str, Any]], title: str = "") -> RenderableType:
    """One row per plugin and one per instance, from `PluginStatus.to_dict()`s."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title or None, title_justify="left")
    for column in ("plugin", "state", "pids", "uptime", "calls", "latency", "restarts"):
        table.add_column(
            column, justify="right" if column in ("calls", "restarts") else "left", no_wrap=True
        )
    # Takes what width is left; never squeezed to a column of letters.
    table.add_column("reason", min_width=24, ratio=1)
    for plugin in plugins:
        state = str(plugin["state"])
        instances = plugin.get("instances", [])
        pids = ", ".join(str(i["pid"]) for i in instances if i.get("pid")) or "-"
        uptime = max((float(i.get("uptime", 0)) for i in instances), default=0.0)
        latency = float(plugin.get("average_latency", 0.0))
        table.add_row(
            f"[bold]{plugin['name']}[/bold]"
            + (f" {plugin['version']}" if plugin.get("version") not in (None, "", "0") else ""),
            f"[{_STATE_STYLE.get(state, 'cyan')}]{state}[/]",
            pids,
            _duration(uptime),
            str(plugin.get("calls", 0)),
            f"{latency * 1000:.2f} ms" if latency else "-",
            str(plugin.get("restarts", 0)),
            Text(str(plugin.get("reason") or "")),
        )
        if len(instances) > 1:
            for inst in instances:
                istate = str(inst["state"])
                ilat = float(inst.get("average_latency", 0.0))
                table.add_row(
                    f"  [dim]#{inst['index']}[/dim]",
                    f"[{_STATE_STYLE.get(istate, 'cyan')}]{istate}[/]",
                    str(inst.get("pid") or "-"),
                    _duration(float(inst.get("uptime", 0))),
                    str(inst.get("calls", 0)),
                    f"{ilat * 1000:.2f} ms" if ilat else "-",
                    str(inst.get("restarts", 0)),
                    Text(str(inst.get("last_error") or "")),
                )
    return table


def _health_table(results: list[dict[str, Any]]) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for column in ("plugin", "instance", "health", "latency", "error"):
        table.add_column(column)
    for r in results:
        latency = r.get("latency")
        table.add_row(
            str(r["plugin"]),
            str(r.get("instance", 0)),
            "[green]ok[/green]" if r["ok"] else "[red]unhealthy[/red]",
            f"{latency * 1000:.2f} ms" if latency is not None else "-",
            Text(str(r.get("error") or "")),
        )
    return table


# ------------------------------------------------------------------ status


@click.command("status")
@common_options
def status_cmd() -> int:
    """Show the plugins of the `tether run` for this configuration: state, pids, uptime,
    calls, average latency, restarts. Exit code 3 when no `tether run` is running."""
    from ._admin import ask, socket_path

    path, config = load()
    reply = ask(socket_path(path), "status")
    if reply is None:
        names = [name for name, s in config.plugins.items() if s.enabled]
        if STATE.json:
            echo_json(
                {
                    "running": False,
                    "config": str(path),
                    "plugins": [{"name": n, "state": "stopped"} for n in names],
                }
            )
        else:
            out = console()
            out.print(f"no `tether run` is running for {path}")
            for name in names:
                out.print(f"  {name}: not running")
        return EXIT_NOT_RUNNING
    if STATE.json:
        echo_json({"running": True, "config": str(path), "plugins": reply})
    else:
        console().print(status_table(reply, f"tether run of {path}"))
    return 0


# ------------------------------------------------------------------ health


@click.command("health")
@common_options
def health_cmd() -> int:
    """Ping every plugin instance: through the running `tether run` when there is one,
    else by starting each plugin once. Exit code 1 if any is unhealthy."""
    from ._admin import ask, socket_path

    path, _ = load()
    results = ask(socket_path(path), "health")
    if results is None:
        results = _one_shot_health()
    if STATE.json:
        echo_json(results)
    else:
        console().print(_health_table(results) if results else "no plugins to check")
    return 0 if all(r["ok"] for r in results) else EXIT_ERROR


def _one_shot_health() -> list[dict[str, Any]]:
    from ._plugins import start_client

    _, config, found = discovery()
    results: list[dict[str, Any]] = []
    for spec in found.specs:
        result: dict[str, Any] = {"plugin": spec.name, "instance": 0, "ok": False}
        result["latency"] = None
        try:
            if spec.problem:
                raise RuntimeError(spec.problem)
            with start_client(spec, config) as client:
                began = time.perf_counter()
                client.ping(timeout=spec.settings.health.timeout)
                result.update(ok=True, latency=time.perf_counter() - began)
        except Exception as exc:
            result["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        results.append(result)
    return results


# ------------------------------------------------------------------ run


@click.command("run")
@common_options
def run_cmd() -> int:
    """Start every plugin of the configuration and show live status until Ctrl-C.

    `tether status` and `tether health` in another terminal ask this process. With
    --json, events are printed as JSON lines instead of the live table.
    """
    from .._manager import PluginManager
    from ._admin import AdminServer, socket_path

    path, config = load()
    stop = threading.Event()
    changed = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        changed.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    manager = PluginManager.from_config(path)
    admin: AdminServer | None = None
    watcher: Any = None
    err = err_console()
    try:
        admin = AdminServer(
            socket_path(path),
            {
                "status": lambda: [s.to_dict() for s in manager.status()],
                "health": lambda: [asdict(h) for h in manager.health()],
            },
        )

        def on_event(event: Any) -> None:
            if STATE.json:
                line = {
                    "plugin": event.plugin,
                    "instance": event.instance,
                    "state": str(event.state),
                    "previous": str(event.previous) if event.previous else None,
                    "time": event.time,
                    "message": event.message,
                }
                echo_line(line)
            changed.set()

        unsubscribe = manager.subscribe(on_event)
        manager.start(strict=False)
        if config.discovery.auto_scan:
            watcher = _start_watcher(manager, config, path)
        count = len(manager.plugins())
        err.print(
            f"tether: running {count} plugin(s) from {path}; `tether status` asks this "
            "process; Ctrl-C to stop"
        )
        if STATE.json:
            while not stop.is_set():
                stop.wait(1.0)
        else:
            _live(manager, path, stop, changed)
        unsubscribe()
    finally:
        if watcher is not None:
            watcher.stop()
        if admin is not None:
            admin.close()
        manager.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    err.print(f"tether: stopped {count} plugin(s)")
    return 0


def echo_line(value: Any) -> None:
    import json

    sys.stdout.write(json.dumps(to_jsonable(value)) + "\n")
    sys.stdout.flush()


def _live(
    manager: PluginManager, path: Path, stop: threading.Event, changed: threading.Event
) -> None:
    from rich.live import Live

    def render() -> RenderableType:
        return status_table([s.to_dict() for s in manager.status()], f"tether run: {path}")

    out = console()
    with Live(render(), console=out, auto_refresh=False, transient=False) as live:
        while not stop.is_set():
            changed.wait(1.0)
            changed.clear()
            live.update(render(), refresh=True)


def _start_watcher(manager: PluginManager, config: Any, path: Path) -> Any:
    from .._watch import Watcher

    def on_change(found: Any) -> None:
        added, removed, changed = manager.apply(found.specs)
        for what, names in (("added", added), ("removed", removed), ("changed", changed)):
            if names:
                err_console().print(f"tether: {what}: {', '.join(names)}")
        for problem in found.problems:
            err_console().print(f"problem: {problem}", markup=False)

    watcher = Watcher(config, on_change, source=str(path), environ=None, handshake=None)
    watcher.start()
    return watcher


# ------------------------------------------------------------------ install


@click.command("install")
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Rebuild environments that already exist.")
@common_options
def install_cmd(names: tuple[str, ...], force: bool) -> int:
    """Build the virtual environments of plugins that declare requirements (default: all
    of them), with a progress bar per plugin."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .._errors import ConfigError
    from ._plugins import pick_spec

    path, config, found = discovery()
    if names:
        specs = [pick_spec(found, name, str(path)) for name in names]
    else:
        specs = [s for s in found.specs if s.settings.requirements]
    for spec in specs:
        if not spec.settings.requirements:
            raise ConfigError(f"plugin {spec.name!r} declares no requirements: nothing to install")
    if not specs:
        if STATE.json:
            echo_json([])
        else:
            console().print("no plugin declares requirements: nothing to install")
        return 0
    from .._venv import environments_dir, install

    envs = environments_dir(config)
    results: list[dict[str, Any]] = []
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.fields[plugin]:<16}"),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console(),
        disable=STATE.json,
    )
    with progress:
        for spec in specs:
            task = progress.add_task("waiting", plugin=spec.name, total=None)

            def report(message: str, task: Any = task) -> None:
                progress.update(task, description=message.splitlines()[0][:60])

            try:
                env = install(spec, envs, progress=report, force=force)
            except Exception as exc:
                progress.update(task, total=1, completed=0, description="[red]failed[/red]")
                results.append({"plugin": spec.name, "ok": False, "error": str(exc)})
                continue
            progress.update(task, total=1, completed=1, description=f"[green]done[/green] {env}")
            results.append({"plugin": spec.name, "ok": True, "environment": str(env)})
    if STATE.json:
        echo_json(results)
    else:
        for r in results:
            if r["ok"]:
                console().print(f"installed {r['plugin']} in {r['environment']}")
            else:
                err_console().print(f"tether: error: {r['plugin']}: {r['error']}", markup=False)
    return 0 if all(r["ok"] for r in results) else EXIT_ERROR


# ------------------------------------------------------------------ demo


@click.command("demo")
@common_options
def demo_cmd() -> int:
    """A self-contained tour: a built-in plugin in two processes, calls spread over them,
    one instance killed and replaced. Needs no configuration file."""
    from ._demo_tour import tour

    return tour()

"""What bounds the missed targets: profiles and CPU splits measured in the benchmark's own run.

`collect_live` runs against the subjects run.py already started (sequential calls profiled on
both sides, CPU per call of the host and the plugin, the 16-caller load, 64 MiB copies,
AutoMTLS); `collect_spawn` times interpreter, floor and plugin start-up and reads
`python -X importtime` of the benchmark plugin up to its handshake line. `render` turns them
into the "What bounds the missed targets" section of docs/PERFORMANCE.md.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import BLOB_SIZE, BULK_N, CALLERS, HERE, PY, Subject

from tether import _shm
from tether._endpoint import load_speedups

TOP = 8  # rows of each profile table


@dataclass
class Split:
    """Per-call figures of one measured stretch of calls, in µs."""

    wall: float
    host_cpu: float
    plugin_cpu: float

    @property
    def ceiling(self) -> float:
        """Calls/s one core could serve at the plugin's CPU per call."""
        return 1e6 / self.plugin_cpu if self.plugin_cpu > 0 else float("inf")


@dataclass
class Row:
    """One function of a profile: own time per call (µs) and its share of all own time."""

    name: str
    own_us: float
    share: float


@dataclass
class Imported:
    name: str
    depth: int
    self_ms: float
    cumulative_ms: float


@dataclass
class Profiles:
    seq_calls: int = 0
    splits: dict[str, Split] = field(default_factory=dict)
    host_rows: list[Row] = field(default_factory=list)
    plugin_rows: list[Row] = field(default_factory=list)
    host_parts: dict[str, float] = field(default_factory=dict)
    plugin_parts: dict[str, float] = field(default_factory=dict)
    profiled_calls: int = 0
    memcpy_ms: float | None = None
    memfd_ms: float | None = None
    rewrite_ms: float | None = None
    read_ms: float | None = None
    free_ms: float | None = None
    blob_ms: float | None = None
    view_ms: float | None = None
    bulk_steps: dict[str, float] = field(default_factory=dict)  # ms, min of the runs
    bulk_bytes: tuple[int, int] | None = None  # on the wire: the floor's, tether's
    python_start_ms: float | None = None
    stdlib_start_ms: float | None = None
    floor_ready_ms: float | None = None
    plugin_ready_ms: float | None = None
    imports: list[Imported] = field(default_factory=list)
    imports_total_ms: float | None = None
    problems: list[str] = field(default_factory=list)


# --- measuring --------------------------------------------------------------------------------


def process_cpu_ns(pid: int) -> int:
    """CPU time of every live thread of another process, in ns (from /proc schedstat).

    schedstat counts nanoseconds; /proc/<pid>/stat's ticks (10 ms) are too coarse here.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total


def split_of(run: Callable[[], object], calls: int, pid: int) -> Split:
    """Wall time and both sides' CPU per call of `run`, which makes `calls` calls."""
    p0, h0, t0 = process_cpu_ns(pid), time.process_time_ns(), time.perf_counter_ns()
    run()
    t1, h1, p1 = time.perf_counter_ns(), time.process_time_ns(), process_cpu_ns(pid)
    return Split((t1 - t0) / calls / 1e3, (h1 - h0) / calls / 1e3, (p1 - p0) / calls / 1e3)


def repeat(call: Callable[[], object], n: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            call()

    return run


def _short(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":
        return name.replace("<built-in method ", "<").replace("<method ", "<")
    path = filename.replace("\\", "/")
    where = path.split("/src/", 1)[-1] if "/src/" in path else path.rsplit("/", 1)[-1]
    return f"{name} ({where}:{line})"


def top_rows(stats: pstats.Stats, calls: int, top: int = TOP) -> list[Row]:
    """The functions with the most own time, per profiled call."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    entries = [(key, value[2]) for key, value in table.items()]
    total = sum(tt for _, tt in entries) or 1.0
    entries.sort(key=lambda e: -e[1])
    return [Row(_short(key), tt / calls * 1e6, tt / total) for key, tt in entries[:top]]


def cpu_profile() -> cProfile.Profile:
    """A cProfile on the thread's CPU clock: a recv blocked on the other side costs nothing."""
    return cProfile.Profile(time.thread_time_ns, 1e-9)


def parts(stats: pstats.Stats) -> dict[str, float]:
    """Shares of all own CPU time: socket calls, msgspec, tether's Python code, the rest."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    out = {"socket calls": 0.0, "msgspec": 0.0, "tether's Python code": 0.0, "other": 0.0}
    for (filename, _, name), value in table.items():
        if "_socket.socket" in name:
            out["socket calls"] += value[2]
        elif "msgspec" in name or "msgspec" in filename:
            out["msgspec"] += value[2]
        elif "/tether/" in filename.replace("\\", "/"):
            out["tether's Python code"] += value[2]
        else:
            out["other"] += value[2]
    total = sum(out.values()) or 1.0
    return {k: v / total for k, v in out.items()}


def host_profile(call: Callable[[], object], n: int) -> pstats.Stats:
    profile = cpu_profile()
    profile.enable()
    for _ in range(n):
        call()
    profile.disable()
    return pstats.Stats(profile)


def plugin_profile(bench: Any, n: int) -> pstats.Stats:
    """Profile the plugin's serving thread over n add calls (the plugin dumps its stats)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "plugin.pstats"
        bench.profile_prepare()
        bench.profile_start()
        for _ in range(n):
            bench.add(1.0, 2.0)
        bench.profile_stop(str(out))
        return pstats.Stats(str(out))


def copy_ms(data: bytes, rounds: int = 3) -> tuple[float, float, float, float, float]:
    """The steps of a `bytes` argument through shared memory, ms, min of rounds.

    (one memcpy of data into a fresh bytes, for comparison; the sender's os.write into a
    fresh memfd; its write into the memfd kept from the previous call, as tether's calls
    reuse them; the receiver's copy out of it as tether makes it; the last close of a
    memfd, which frees its pages.)
    """
    view = memoryview(data)
    size = len(view)
    copies, writes, rewrites, reads, frees = [], [], [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        copied = bytes(view)
        copies.append((time.perf_counter() - t0) * 1e3)
        del copied
        fd = os.memfd_create("tether-bench")
        try:
            t0 = time.perf_counter()
            written = 0
            while written < size:
                written += os.write(fd, view[written:])
            writes.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            written = 0
            while written < size:
                written += os.pwrite(fd, view[written:], written)
            rewrites.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            owned = _shm._read_owned(fd, size, _shm._BYTES)
            reads.append((time.perf_counter() - t0) * 1e3)
            assert owned is not None
            assert len(owned) == size
            del owned
        finally:
            t0 = time.perf_counter()
            os.close(fd)
            frees.append((time.perf_counter() - t0) * 1e3)
    return min(copies), min(writes), min(rewrites), min(reads), min(frees)


def collect_live(subjects: dict[str, Subject], quick: bool, profiles: Profiles) -> None:
    """Everything measured against running subjects; failures are noted, never raised."""
    n = 2_000 if quick else 20_000
    profiles.seq_calls = n
    profiles.profiled_calls = max(n // 4, 200)

    def attempt(what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:
            profiles.problems.append(f"{what}: {type(exc).__name__}: {exc}"[:300])

    def split(key: str, run: Callable[[], object], calls: int, pid: int) -> None:
        attempt(
            f"CPU split {key}", lambda: profiles.splits.update({key: split_of(run, calls, pid)})
        )

    sync: Any = subjects.get("tether native, sync client")
    # CPU per call and the profiles with the poll off: what a call costs, not what waiting
    # for it by polling costs.
    work: Any = subjects.get("tether native, sync client, no poll (TETHER_SPIN_US=0)") or sync
    floor: Any = subjects.get("raw Python Unix-socket ping-pong")
    aio: Any = subjects.get("tether native, asyncio client")
    per = 40 if quick else 600  # calls per caller under the 16-caller load
    if floor is not None:
        split("floor", repeat(floor.call, n), n, floor.proc.pid)
    if sync is not None:
        split("seq", repeat(work.call, n), n, work.client.pid)

        def profiles_both() -> None:
            calls = profiles.profiled_calls
            host = host_profile(work.call, calls)
            plugin = plugin_profile(work.bench, calls)
            profiles.host_rows, profiles.host_parts = top_rows(host, calls), parts(host)
            profiles.plugin_rows, profiles.plugin_parts = top_rows(plugin, calls), parts(plugin)

        attempt("cProfile", profiles_both)
        split("tp_sync", lambda: sync.throughput(per), per * CALLERS, sync.client.pid)

        def blobs() -> None:
            data = bytes(BLOB_SIZE)
            steps = copy_ms(data)
            profiles.memcpy_ms, profiles.memfd_ms, profiles.rewrite_ms = steps[:3]
            profiles.read_ms, profiles.free_ms = steps[3:]
            view_times, blob_times = [], []
            for _ in range(2 if quick else 3):
                t0 = time.perf_counter()
                assert sync.bench.size_view(data) == BLOB_SIZE
                view_times.append((time.perf_counter() - t0) * 1e3)
                t0 = time.perf_counter()
                assert sync.bench.size(data) == BLOB_SIZE
                blob_times.append((time.perf_counter() - t0) * 1e3)
            profiles.view_ms, profiles.blob_ms = min(view_times), min(blob_times)

        attempt("64 MiB copies", blobs)
        bulk_calls = 5 if quick else 40
        values = [1.0] * BULK_N
        split(
            "bulk",
            repeat(lambda: sync.bench.total(values), bulk_calls),
            bulk_calls,
            sync.client.pid,
        )
        attempt("bulk steps", lambda: profiles.bulk_steps.update(bulk_steps(values, quick)))
        profiles.bulk_bytes = (8 * BULK_N, len(_bulk_request(values)))
    if floor is not None:
        bulk_calls = 5 if quick else 40
        values = [1.0] * BULK_N
        split(
            "bulk_floor", repeat(lambda: floor.bulk(values), bulk_calls), bulk_calls, floor.proc.pid
        )
    if aio is not None:
        split("tp_async", lambda: aio.throughput(per), per * CALLERS, aio.client.pid)
    for key, label in (
        ("grpc_plain", "tether gRPC path, plaintext"),
        ("grpc_mtls", "tether gRPC path, AutoMTLS"),
    ):
        grpc: Any = subjects.get(label)
        if grpc is not None:
            split(key, repeat(grpc.call, n // 10), n // 10, grpc.client.pid)


def _bulk_request(values: list[float]) -> bytes:
    import msgspec

    return msgspec.msgpack.encode([0, 1, 1, "total", [values]])


def bulk_steps(values: list[float], quick: bool) -> dict[str, float]:
    """The CPU steps of a 100,000-float call on each side, in ms (min of the runs), timed
    in this process with the functions each side runs."""
    import array

    import msgspec

    request = [0, 1, 1, "total", [values]]
    envelope = msgspec.msgpack.Decoder(tuple[int, int, int, str, msgspec.Raw])
    typed = msgspec.msgpack.Decoder(tuple[list[float]])
    encoded = _bulk_request(values)
    packed = array.array("d", values).tobytes()
    steps: dict[str, Callable[[], object]] = {
        "floor host: pack into doubles (`array('d', values).tobytes()`)": lambda: array.array(
            "d", values
        ).tobytes(),
        "floor server: sum the doubles (`sum(memoryview(body).cast('d'))`)": lambda: sum(
            memoryview(packed).cast("d")
        ),
        "tether host: encode the request (msgspec)": lambda: msgspec.msgpack.encode(request),
        "tether plugin without the C extension: decode it into `list[float]` (msgspec, "
        "typed)": lambda: typed.decode(envelope.decode(encoded)[4]),
        "tether plugin: `sum(values)`": lambda: sum(values),
    }
    speedups = load_speedups()
    if speedups is not None:
        # What the plugin runs when tether._speedups is built (see ARCHITECTURE.md).
        def c_decode() -> object:
            head = speedups.request_head(encoded)
            assert head is not None
            return speedups.decode_float_args(memoryview(encoded)[head[3] :], (True,))

        steps["tether plugin: read the request's head and decode it (tether._speedups)"] = c_decode
    out = {}
    for name, step in steps.items():
        times = []
        for _ in range(5 if quick else 30):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
        out[name] = min(times)
    return out


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def parse_importtime(text: str) -> tuple[list[Imported], float]:
    """`-X importtime` lines: every module, and the sum of all self times (ms)."""
    rows = []
    for line in text.splitlines():
        m = _IMPORT_LINE.match(line)
        if m:
            rows.append(Imported(m[4], (len(m[3]) - 1) // 2, int(m[1]) / 1e3, int(m[2]) / 1e3))
    return rows, sum(r.self_ms for r in rows)


def _until_line(cmd: list[str], env: dict[str, str], stderr: Any = subprocess.DEVNULL) -> float:
    """ms from starting cmd to its first stdout line (then it is stopped)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        elapsed = (time.perf_counter() - t0) * 1e3
        if not line.strip():
            raise RuntimeError(f"{cmd[-1]} printed nothing")
        return elapsed
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


_STDLIB_LINE = "import socket, struct, threading"


def collect_spawn(quick: bool, profiles: Profiles) -> None:
    """Start-up pieces, min of several runs each, and the plugin's import profile."""
    rounds = 3 if quick else 10
    plugin = [PY, str(HERE / "bench_plugin.py")]
    tmp = tempfile.mkdtemp(prefix="tbench-spawn-")
    # The environment tether.Client gives the plugin (see tether._launch), so the plugin
    # starts as it does in the spawn benchmark: its socket in the host's directory, watching
    # the stdin pipe, logging at the host's level, and no inherited PYTHONUNBUFFERED.
    env = {
        **os.environ,
        "TETHER_BENCH": "bench",
        "PLUGIN_PROTOCOL_VERSIONS": "1",
        "PLUGIN_MIN_PORT": "10000",
        "PLUGIN_MAX_PORT": "25000",
        "PLUGIN_UNIX_SOCKET_DIR": tmp,
        "TETHER_WATCH_STDIN": "1",
        "TETHER_LOG_LEVEL": "WARNING",
    }
    env.pop("PYTHONUNBUFFERED", None)
    try:
        python, stdlib, floor, ready = [], [], [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            subprocess.run([PY, "-c", "pass"], check=True)
            python.append((time.perf_counter() - t0) * 1e3)
            # What a first answer needs at the least (tether._firstcall): the floor's stdlib
            # and threading.
            t0 = time.perf_counter()
            subprocess.run([PY, "-c", _STDLIB_LINE], check=True)
            stdlib.append((time.perf_counter() - t0) * 1e3)
            floor_cmd = [PY, str(HERE / "floor_server.py"), os.path.join(tmp, "f.sock")]
            floor.append(_until_line(floor_cmd, env))
            os.unlink(os.path.join(tmp, "f.sock"))
            ready.append(_until_line(plugin, env))
        profiles.python_start_ms = min(python)
        profiles.stdlib_start_ms = min(stdlib)
        profiles.floor_ready_ms = min(floor)
        profiles.plugin_ready_ms = min(ready)
        best: tuple[list[Imported], float] | None = None
        for _ in range(rounds):
            log = Path(tmp) / "importtime.txt"
            with log.open("w") as err:
                _until_line([PY, "-X", "importtime", *plugin[1:]], env, stderr=err)
            parsed = parse_importtime(log.read_text())
            if best is None or parsed[1] < best[1]:
                best = parsed
        assert best is not None
        profiles.imports, profiles.imports_total_ms = best
    except Exception as exc:
        profiles.problems.append(f"spawn profile: {type(exc).__name__}: {exc}"[:300])
    finally:
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


# --- report -----------------------------------------------------------------------------------


@dataclass
class Verdict:
    """One target of the Targets table: its figure, goal and verdict text."""

    what: str
    shown: str
    goal: str
    verdict: str
    met: bool


def _rows(rows: list[Row]) -> str:
    if not rows:
        return "(not measured)"
    lines = ["| function | own µs per call | share of own time |", "|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r.name}` | {r.own_us:,.2f} | {r.share * 100:.0f}% |")
    return "\n".join(lines)


def _split_line(name: str, s: Split | None) -> str:
    if s is None:
        return f"| {name} | — | — | — |"
    return f"| {name} | {s.wall:,.1f} | {s.host_cpu:,.1f} | {s.plugin_cpu:,.1f} |"


SPLIT_HEAD = (
    "| subject | wall µs per call | host CPU µs per call | server CPU µs per call |\n"
    "|---|---|---|---|"
)


def _split_table(*rows: tuple[str, Split | None]) -> str:
    """SPLIT_HEAD and one line per (subject, split), ending in a newline."""
    return "\n".join([SPLIT_HEAD, *(_split_line(name, s) for name, s in rows)]) + "\n"


def _head(title: str, v: Verdict | None) -> str:
    if v is None:
        return f"### {title}\n\nNot measured in this run.\n"
    state = "met" if v.met else v.verdict
    return f"### {title}\n\n**{v.shown}** against a goal of {v.goal}: {state}.\n"


def _top_names(rows: list[Row], k: int = 3) -> str:
    return ", ".join(f"`{r.name}` ({r.share * 100:.0f}%)" for r in rows[:k]) or "—"


def _beyond_stdlib(p: Profiles) -> str:
    """How much later than the stdlib line the plugin is ready."""
    if not (p.stdlib_start_ms and p.plugin_ready_ms):
        return ""
    extra = p.plugin_ready_ms - p.stdlib_start_ms
    when = f"{extra:,.1f} ms after" if extra > 0 else "no later than (within the noise)"
    return (
        f"; the plugin is ready {when} `python -c '{_STDLIB_LINE}'` would have exited: "
        "tether's serving modules (handshake, declarations, transport, first calls, call "
        "context), the stdlib they add (select, signal, contextvars) and the plugin's module"
    )


def render(p: Profiles, verdicts: dict[str, Verdict], quick: bool) -> str:
    """The "What bounds the missed targets" section."""
    out = [
        "## What bounds the missed targets",
        "",
        "Measured in this same run, against the same subjects. CPU per call comes from the "
        "host's `time.process_time_ns()` and the server's `/proc/<pid>/task/*/schedstat` "
        "(the CPU time of all its threads, in ns) around a stretch of calls; the profiles are "
        "cProfile on each thread's CPU clock (own CPU time, inflated by the profiler, so "
        "read the shares) of "
        f"{p.profiled_calls:,} sequential `add` calls on the host's calling thread and on the "
        "plugin's serving thread (the plugin profiles itself when asked over the wire).",
    ]
    if quick:
        out += ["", "*Quick run: few iterations; the figures only show the section works.*"]
    missed = [k for k, v in verdicts.items() if not v.met]
    met = [v.what for v in verdicts.values() if v.met and v.shown != "—"]
    if met:
        out += ["", "Met in this run (no subsection): " + "; ".join(met) + "."]
    floor, seq = p.splits.get("floor"), p.splits.get("seq")
    sections: list[str] = []
    seq_keys = [k for k in ("sequential", "pinned") if k in missed]
    if seq_keys:
        text = [_head("Sequential latency and CPU per call", verdicts[seq_keys[0]])]
        if "pinned" in seq_keys and seq_keys[0] != "pinned":
            v = verdicts["pinned"]
            text.append(f"Pinned to one CPU: **{v.shown}** against {v.goal}: {v.verdict}.\n")
        text.append(
            f"{p.seq_calls:,} sequential calls each:\n\n"
            + _split_table(
                ("raw Python floor", floor), ("tether native, sync client, no poll", seq)
            )
        )
        if floor and seq:
            extra_host = seq.host_cpu - floor.host_cpu
            extra_plugin = seq.plugin_cpu - floor.plugin_cpu
            text.append(
                "With the poll off (so that CPU is work, not waiting), tether spends "
                f"{_more(extra_host)} per call than the floor in the host and "
                f"{_more(extra_plugin)} in the plugin; the floor's wall time is "
                f"{floor.wall:,.1f} µs of which {floor.host_cpu + floor.plugin_cpu:,.1f} µs is "
                "CPU, so the excess is CPU spent in Python on both sides of every call (a "
                "call waits on one side's work after the other's), not waiting on the "
                "kernel. Where that CPU goes:\n"
            )
        text.append(f"Host (calling thread):\n\n{_rows(p.host_rows)}\n")
        text.append(f"Plugin (serving thread):\n\n{_rows(p.plugin_rows)}\n")
        text.append(
            "Reading: of the profiled CPU time, the host spends "
            f"{_parts(p.host_parts)}; the plugin {_parts(p.plugin_parts)}. Host top: "
            f"{_top_names(p.host_rows)}; plugin top: {_top_names(p.plugin_rows)}. The floor "
            "makes one `sendall` and one `recv` per call with a fixed struct, so its CPU is "
            "the socket calls alone; tether's excess is the Python-level work around them "
            "(endpoint bookkeeping, message checks, argument checks, dispatch) and msgspec's "
            "encoding, on both sides of every call. Closing the gap means fewer Python steps "
            "per call (or moving them to C), not a faster transport.\n"
        )
        sections.append("\n".join(text))
    tp_keys = [k for k in ("async16", "sync16") if k in missed]
    if tp_keys:
        text = [_head("16 concurrent callers", verdicts[tp_keys[0]])]
        if len(tp_keys) == 2:
            v = verdicts["sync16"]
            text.append(f"Sync, 16 threads: **{v.shown}** against {v.goal}: {v.verdict}.\n")
        text.append(
            _split_table(
                ("asyncio client, 16 tasks", p.splits.get("tp_async")),
                ("sync, 16 threads", p.splits.get("tp_sync")),
            )
        )
        ceilings = [
            f"{name}: {s.plugin_cpu:,.1f} µs of plugin CPU per call, a ceiling of "
            f"{s.ceiling:,.0f} calls/s for one serving thread, and {s.host_cpu:,.1f} µs of "
            f"host CPU, a ceiling of {1e6 / s.host_cpu if s.host_cpu > 0 else 0:,.0f} calls/s "
            "for the host"
            for key, name in (("tp_async", "asyncio"), ("tp_sync", "sync"))
            if (s := p.splits.get(key)) is not None
        ]
        text.append(
            "Implied ceilings: " + ("; ".join(ceilings) or "not measured") + ". A plugin "
            "serves one connection on one thread and Python runs one thread at a time, so "
            "the plugin's CPU per call bounds the rate, whatever the host does; the host's "
            "CPU per call bounds it a second time on the other side (both share the "
            "machine's cores). With 16 threads the host is the tighter bound: each call "
            "wakes its thread, which takes the GIL back from the others and gives it up "
            "again to sleep for its answer. The asyncio client runs the same encoding and "
            "decoding on one thread, so the difference between the two host figures is that "
            "thread traffic (requests queued behind a send already go out together, see "
            "ARCHITECTURE.md). 100,000 "
            "calls/s would need both sides under 10 µs of CPU per call: the profiles above "
            "show where the per-call Python work is.\n"
        )
        sections.append("\n".join(text))
    if "blob" in missed:
        text = [_head("64 MiB bytes", verdicts["blob"])]
        pieces = [
            ("one 64 MiB memcpy into a fresh `bytes` (`bytes(memoryview)`)", p.memcpy_ms),
            ("one `os.write` of 64 MiB into a fresh memfd", p.memfd_ms),
            ("the same into the memfd kept from the last call (the host)", p.rewrite_ms),
            ("its read into a fresh `bytes` in huge pages (the plugin)", p.read_ms),
            ("a memfd's last close, freeing its pages (not per call)", p.free_ms),
            ("the call with `bytes` (`size(data: bytes)`)", p.blob_ms),
            ("the call with `memoryview` (`size_view(data: memoryview)`)", p.view_ms),
        ]
        table = ["| step | ms | GB/s |", "|---|---|---|"]
        for name, ms in pieces:
            rate = "—" if not ms else f"{BLOB_SIZE / ms / 1e6:.2f}"
            table.append(f"| {name} | {'—' if ms is None else f'{ms:,.1f}'} | {rate} |")
        text.append("Min of the runs, this machine, this run:\n\n" + "\n".join(table) + "\n")
        if p.memcpy_ms and p.memfd_ms and p.rewrite_ms and p.read_ms and p.free_ms and p.blob_ms:
            floor_ms = p.rewrite_ms + p.read_ms
            text.append(
                "Reading: a call's steps come one after the other. The host writes the buffer "
                f"into the memfd it kept from the previous call ({p.rewrite_ms:,.1f} ms); the "
                "plugin reads a `bytes` parameter out of it with one read() into a fresh object "
                f"madvised for huge pages ({p.read_ms:,.1f} ms; a copy into a fresh `bytes` of "
                f"4 KiB pages, `bytes(memoryview)`, takes {p.memcpy_ms:,.1f} ms, much of it "
                f"page faults). Together {floor_ms:,.1f} ms of the call's {p.blob_ms:,.1f} ms. "
                "The first call of a size (or one after a call that timed out) writes into a "
                f"fresh memfd instead ({p.memfd_ms:,.1f} ms: it allocates the pages, 4 KiB each "
                "unless shared memory has transparent huge pages, "
                "/sys/kernel/mm/transparent_hugepage/shmem_enabled), and dropping a memfd frees "
                f"them ({p.free_ms:,.1f} ms). A `memoryview` parameter skips the plugin's copy"
                + (f" ({p.view_ms:,.1f} ms per call)" if p.view_ms else "")
                + ".\n"
            )
        sections.append("\n".join(text))
    if "bulk" in missed:
        text = [_head("100,000 floats", verdicts["bulk"])]
        floor_split, bulk_split = p.splits.get("bulk_floor"), p.splits.get("bulk")
        text.append(
            "One call each, repeated:\n\n"
            + _split_table(
                ("raw Python floor", floor_split), ("tether native, sync client", bulk_split)
            )
        )
        if p.bulk_steps:
            table = ["| step | ms |", "|---|---|"]
            table += [f"| {name} | {ms:,.2f} |" for name, ms in p.bulk_steps.items()]
            text.append(
                "The CPU steps of the call on each side, timed alone in the host process "
                "(min of the runs):\n\n" + "\n".join(table) + "\n"
            )
        if floor_split and bulk_split and p.bulk_bytes:
            text.append(
                f"Reading: the floor carries {p.bulk_bytes[0]:,} packed bytes and tether "
                f"{p.bulk_bytes[1]:,} bytes of msgpack. Per call tether's host spends "
                f"{_more(bulk_split.host_cpu - floor_split.host_cpu)} than the floor's and "
                f"its plugin {_more(bulk_split.plugin_cpu - floor_split.plugin_cpu)} than the "
                "floor's server. The plugin's decode is most of it: it makes 100,000 Python "
                "float objects for the `list[float]` the implementation receives, while the "
                "floor's server only reads doubles out of its buffer as it sums them. The host "
                "does not check the list (the plugin does, as it decodes it; see "
                "docs/INTERFACES.md). The steps run one after the other, so the call is their "
                "sum plus the transfer; a `bytes`, `memoryview` or numpy parameter skips the "
                "floats altogether (shared memory, see the 64 MiB row).\n"
            )
        sections.append("\n".join(text))
    if "spawn" in missed:
        text = [_head("Spawn to first call", verdicts["spawn"])]
        text.append(
            "Start-up pieces, min of the runs: bare `python -c pass` "
            f"{_ms(p.python_start_ms)}; `python -c '{_STDLIB_LINE}'` "
            f"{_ms(p.stdlib_start_ms)}; the floor's server to its `ready` line "
            f"{_ms(p.floor_ready_ms)}; the benchmark plugin to its handshake line "
            f"{_ms(p.plugin_ready_ms)}. `python -X importtime` of the plugin up to its "
            f"handshake line: {_ms(p.imports_total_ms)} of imports in all (timed with the "
            "import profiler on, so somewhat inflated); the imports with the most cumulative "
            "time:\n"
        )
        rows = sorted(p.imports, key=lambda r: -r.cumulative_ms)
        rows = [r for r in rows if r.depth <= 2][:12]
        table = ["| module | nesting | cumulative ms | own ms |", "|---|---|---|---|"]
        table += [
            f"| `{r.name}` | {r.depth} | {r.cumulative_ms:,.1f} | {r.self_ms:,.1f} |" for r in rows
        ]
        text.append("\n".join(table) + "\n")
        if p.plugin_ready_ms and p.floor_ready_ms and p.imports_total_ms:
            top = [r for r in p.imports if r.depth == 0]
            top.sort(key=lambda r: -r.cumulative_ms)
            named = ", ".join(f"`{r.name}` {r.cumulative_ms:,.1f} ms" for r in top[:6])
            text.append(
                f"Reading: the plugin is ready {p.plugin_ready_ms - p.floor_ready_ms:,.1f} ms "
                f"after the floor would be; its imports take {p.imports_total_ms:,.1f} ms "
                f"under the import profiler (top level: {named}). msgspec, typing, inspect "
                "and logging are not among them: the plugin answers its dispense and first "
                "call with the standard library alone (tether._firstcall) and imports them "
                "after that answer"
                + _beyond_stdlib(p)
                + ". After the handshake line, the first call adds a dispense and one call, "
                "and the host's side of both (tether.Client's start, read of the line, "
                "connect).\n"
            )
        sections.append("\n".join(text))
    if "mtls" in missed:
        text = [_head("AutoMTLS", verdicts["mtls"])]
        plain, mtls = p.splits.get("grpc_plain"), p.splits.get("grpc_mtls")
        text.append(
            _split_table(
                ("tether gRPC path, plaintext", plain), ("tether gRPC path, AutoMTLS", mtls)
            )
        )
        if plain and mtls:
            text.append(
                f"Reading: AutoMTLS adds {mtls.wall - plain.wall:,.1f} µs per call, with "
                f"{mtls.host_cpu - plain.host_cpu:,.1f} µs more CPU in the host and "
                f"{mtls.plugin_cpu - plain.plugin_cpu:,.1f} µs more in the plugin. Host and "
                "plugin are both tether, so grpcio does the TLS itself (P-256 certificates, no "
                "relay): what remains is TLS record encryption and decryption in grpcio's core "
                "on each side, per message.\n"
            )
        sections.append("\n".join(text))
    if not missed:
        sections.append("Every target was met in this run.")
    out += ["", *sections]
    if p.problems:
        out += ["", "Not measured here: " + "; ".join(p.problems)]
    return "\n".join(out).rstrip() + "\n"


def _more(us: float) -> str:
    return f"{us:,.1f} µs more CPU" if us >= 0 else f"{-us:,.1f} µs less CPU"


def _parts(shares: dict[str, float]) -> str:
    if not shares:
        return "(not measured)"
    ordered = sorted(shares.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{v * 100:.0f}% in {k}" for k, v in ordered)


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:,.1f} ms"

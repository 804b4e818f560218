"""Benchmarks: tether against the floors (raw Python, C), its peers, and go-plugin itself.

Run `make bench` (or `python benchmarks/run.py [--quick] [--output PATH]`). Every figure is
measured in rounds that interleave the subjects, so drift of the machine hits all alike; the
pinned figures come from a second process run under `taskset -c 0` (servers spawned with
taskset too). Writes docs/PERFORMANCE.md unless --output says otherwise (--quick writes nothing
by default, and measures only what needs no extra install: no Pyro5, RPyC or Go).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    BLOB_SIZE,
    BULK_N,
    CALLERS,
    PY,
    REPO,
    NotMeasured,
    Subject,
    median,
    p99,
)
from profiles import Profiles, Verdict, collect_live, collect_spawn, render  # noqa: E402

X = "\u00d7"  # the multiplication sign

BLOB_WARMUP = 3
HEADER = " | ".join(
    [
        "| subject",
        "sequential median / p99 (µs)",
        "pinned to one CPU median / p99 (µs)",
        "16 concurrent callers (calls/s)",
        "one call with 100,000 floats (ms)",
        "64 MiB bytes (ms)",
        "spawn to first answered call (ms)",
        "idle RSS (MiB) |",
    ]
)
NOT_ATTEMPTED = {
    "python-plugin": (
        "python-plugin 0.1.0 is on PyPI, but it is async-only on grpclib and needs "
        "grpclib-generated stubs; not wired into this suite yet"
    ),
}


@dataclass
class Plan:
    quick: bool
    rounds: int
    n: int
    tp_rounds: int
    per_caller: int
    bulk_rounds: int
    blob_rounds: int
    spawn_rounds: int
    tp_window: float  # seconds a timed throughput round aims at
    settle: float  # seconds of untimed calls before each timed sequential round

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 2, 200, 1, 20, 1, 1, 1, 0.0, 0.0)
        return cls(False, 5, 2000, 5, 150, 5, 5, 5, 0.25, 0.2)


@dataclass
class Results:
    figures: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: dict[str, dict[str, str]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    callers: dict[str, str] = field(default_factory=dict)
    batches: dict[str, float] = field(default_factory=dict)
    profiles: Profiles = field(default_factory=Profiles)

    def add(self, label: str, figure: str, values: list[float]) -> None:
        self.figures.setdefault(label, {}).setdefault(figure, []).extend(values)

    def note(self, label: str, figure: str, reason: str) -> None:
        self.notes.setdefault(label, {}).setdefault(figure, reason)

    def get(self, label: str, figure: str) -> list[float]:
        return self.figures.get(label, {}).get(figure, [])


def make_subjects(quick: bool, pinned: bool, results: Results) -> list[Subject]:
    """Every subject that could be constructed; the others are noted with their reason."""
    from floor import RawC, RawPython
    from tether_native import TetherAsync, TetherSync, TetherSyncNoPoll

    makers: list[tuple[str, Callable[[], Subject]]] = [
        ("raw Python Unix-socket ping-pong", lambda: RawPython(pinned)),
        ("C Unix-socket ping-pong (physical floor)", lambda: RawC(pinned)),
        ("tether native, sync client", lambda: TetherSync(pinned)),
        (TetherSyncNoPoll.label, lambda: TetherSyncNoPoll(pinned)),
        ("tether native, asyncio client", lambda: TetherAsync(pinned)),
    ]

    def tether_grpc(mtls: bool) -> Subject:
        from tether_grpc import TetherGRPC

        return TetherGRPC(pinned, auto_mtls=mtls)

    def peer(name: str) -> Subject:
        import peers

        cls: type[Subject] = getattr(peers, name)
        return cls(pinned)

    def go() -> Subject:
        from gohost import GoPlugin

        return GoPlugin(pinned)

    makers += [
        ("tether gRPC path, plaintext", lambda: tether_grpc(False)),
        ("tether gRPC path, AutoMTLS", lambda: tether_grpc(True)),
        ("grpcio, sync client + server", lambda: peer("GrpcSync")),
        ("grpcio, asyncio client + server", lambda: peer("GrpcAio")),
        ("multiprocessing.connection", lambda: peer("MPConn")),
    ]
    if not quick:
        makers += [
            ("Pyro5", lambda: peer("Pyro5Peer")),
            ("RPyC", lambda: peer("RPyCPeer")),
            ("go-plugin (Go host, Go plugin, gRPC)", go),
        ]
    subjects: list[Subject] = []
    for label, make in makers:
        try:
            subject = make()
            subject.start()
        except Exception as exc:
            results.note(label, "all", f"could not start: {_reason(exc)}")
            results.kinds.setdefault(label, "peer")
            continue
        results.kinds[subject.label] = subject.kind
        results.callers[subject.label] = subject.callers
        subjects.append(subject)
    return subjects


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NotMeasured):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.replace("\n", " ")[:300]


def measure(
    results: Results, subject: Subject, figure: str, fn: Callable[[Subject], list[float]]
) -> None:
    if figure in results.notes.get(subject.label, {}):
        return
    try:
        results.add(subject.label, figure, fn(subject))
    except Exception as exc:
        if not isinstance(exc, NotMeasured):
            traceback.print_exc()
        results.note(subject.label, figure, _reason(exc))


def timed_tp(per_caller: int) -> Callable[[Subject], list[float]]:
    def tp(x: Subject) -> list[float]:
        return [x.throughput(per_caller)]

    return tp


def untimed(fn: Callable[..., object], *args: Any) -> object:
    """A warm-up: its result, or None if it failed (the timed call then notes why)."""
    try:
        return fn(*args)
    except Exception:
        return None


def timed_ms(fn: Callable[[], object], check: Callable[[object], bool]) -> float:
    t0 = time.perf_counter()
    result = fn()
    elapsed = (time.perf_counter() - t0) * 1000
    if not check(result):
        raise RuntimeError(f"wrong result {result!r}")
    return elapsed


def rotate(subjects: list[Subject], r: int) -> list[Subject]:
    k = r % len(subjects) if subjects else 0
    return subjects[k:] + subjects[:k]


def settle(subject: Subject, seconds: float) -> None:
    """Untimed sequential calls for about `seconds`, so the timed ones find the pair of
    processes where the scheduler keeps them while they talk, not where the previous
    subject left them.

    Seen here: right after a subject that runs its own processes on both CPUs (the C floor,
    the Go host) the next pair often starts on one CPU, and stays there for the first few
    thousand calls (tens of ms). That halves a blocking ping-pong's latency (no cross-CPU
    wake-up) and doubles a polling one's (it polls while its peer waits for the CPU), so
    which subject followed which decided the sequential ratio.
    """
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        untimed(subject.sequential, 100)


def once_more(fn: Callable[..., object], *args: Any) -> None:
    """An untimed 64 MiB call or spawn right before the timed one of the same subject.

    This VM hands memory freed for about 2 s back to its host, and touching it again costs
    far more (measured: a 64 MiB call 35-40 ms after 0.5 s idle, 130-240 ms after 2-5 s).
    Between two rounds of one subject the others run for seconds: without this, the figure
    said how long ago the subject last ran, not what the call costs.
    """
    untimed(fn, *args)


def spawns_own_processes(subject: Subject) -> bool:
    return subject.kind == "go" or subject.label == "C Unix-socket ping-pong (physical floor)"


def sequential_rounds(results: Results, subjects: list[Subject], plan: Plan, fig: str) -> None:
    for s in subjects:  # warm-up
        if not spawns_own_processes(s):
            measure(results, s, "warmup", lambda x: x.sequential(300))
    for r in range(plan.rounds):
        for s in rotate(subjects, r):
            if not spawns_own_processes(s):
                settle(s, plan.settle)
            measure(results, s, fig, lambda x: x.sequential(plan.n))
            last = getattr(s, "last", None)
            if fig == "seq" and s.kind == "go" and last:
                # One gohost run per round: it spawns the plugin, so it reports all its figures.
                results.add(s.label, "tp", [last["tp16"]])
                results.add(s.label, "bulk", [last["bulk_ms"]])
                results.add(s.label, "blob", [last["blob_ms"]])
                results.add(s.label, "spawn", [last["spawn_ms"]])
                results.add(s.label, "rss", [last["rss_kib"]])


def run(plan: Plan) -> Results:
    results = Results()
    subjects = make_subjects(plan.quick, False, results)
    others = [s for s in subjects if s.kind != "go"]
    try:
        print(f"subjects: {[s.label for s in subjects]}", file=sys.stderr)
        sequential_rounds(results, subjects, plan, "seq")
        print("sequential done", file=sys.stderr)
        # Each subject's calls per caller are set from an untimed burst so that a timed round
        # lasts about TP_WINDOW whatever its speed (a few thousand calls take a fast subject
        # a few milliseconds: scheduler noise, not throughput).
        counts: dict[str, int] = {}
        for s in others:
            rate = untimed(s.throughput, plan.per_caller)
            if isinstance(rate, float):
                counts[s.label] = max(plan.per_caller, int(rate * plan.tp_window / CALLERS))
        for r in range(plan.tp_rounds):
            for s in rotate(others, r):
                n = counts.get(s.label, plan.per_caller)
                # As for sequential rounds (see settle()): the first tens of ms after another
                # subject are not this one's steady state.
                end = time.perf_counter() + plan.settle
                untimed(s.throughput, max(n // 10, 10))
                while time.perf_counter() < end:
                    untimed(s.throughput, max(n // 4, 10))
                measure(results, s, "tp", timed_tp(n))
        print("throughput done", file=sys.stderr)
        values = [1.0] * BULK_N
        data = bytes(BLOB_SIZE)
        # Untimed calls first: first-use costs are not the steady state. Three for the 64 MiB
        # call: memory a process touches for the first time can be slow to fault in (in this
        # VM seen taking 200 ms for one 64 MiB copy, then 25 ms).
        for s in others:
            untimed(s.bulk, values)
            for _ in range(BLOB_WARMUP):
                untimed(s.blob, data)
        for r in range(plan.bulk_rounds):
            for s in rotate(others, r):
                for _ in range(3):
                    measure(
                        results,
                        s,
                        "bulk",
                        lambda x: [timed_ms(lambda: x.bulk(values), lambda v: v == BULK_N)],
                    )
        for r in range(plan.blob_rounds):
            for s in rotate(others, r):
                if plan.settle:
                    once_more(s.blob, data)
                measure(
                    results,
                    s,
                    "blob",
                    lambda x: [timed_ms(lambda: x.blob(data), lambda v: v == BLOB_SIZE)],
                )
        print("bulk done", file=sys.stderr)
        collect_live({s.label: s for s in subjects}, plan.quick, results.profiles)
        print("profiles done", file=sys.stderr)
    finally:
        for s in subjects:
            try:
                s.close()
            except Exception:
                traceback.print_exc()
    for r in range(plan.spawn_rounds):
        for s in rotate(others, r):

            def spawn(x: Subject) -> list[float]:
                ms, rss = x.spawn()
                results.add(x.label, "rss", [rss])
                return [ms]

            if plan.settle:
                once_more(s.spawn)
            measure(results, s, "spawn", spawn)
    collect_spawn(plan.quick, results.profiles)
    print("spawn done", file=sys.stderr)
    try:
        from tether_native import calculator_batches

        results.batches = calculator_batches(100, 1 if plan.quick else 3)
    except Exception as exc:
        results.note("calculator", "batch", _reason(exc))
    pinned_phase(results, plan)
    print("pinned done", file=sys.stderr)
    return results


def pinned_phase(results: Results, plan: Plan) -> None:
    """Re-run the sequential rounds in a child process under `taskset -c 0`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pinned.json"
        cmd = ["taskset", "-c", "0", PY, str(HERE / "run.py"), "--pinned-phase", str(out)]
        if plan.quick:
            cmd.append("--quick")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr.strip()[-400:])
            child = json.loads(out.read_text())
        except Exception as exc:
            for label in results.figures:
                results.note(label, "pinned", f"pinned run failed: {_reason(exc)}")
            return
    for label, samples in child["figures"].items():
        results.add(label, "pinned", samples)
    for label, reason in child["notes"].items():
        results.note(label, "pinned", reason)


def pinned_child(plan: Plan, out: Path) -> None:
    results = Results()
    subjects = make_subjects(plan.quick, True, results)
    pinned_plan = Plan(**{**plan.__dict__, "n": max(plan.n // 2, 100)})
    try:
        sequential_rounds(results, subjects, pinned_plan, "pinned")
    finally:
        for s in subjects:
            s.close()
    figures = {label: figs["pinned"] for label, figs in results.figures.items() if "pinned" in figs}
    notes = {
        label: next(iter(n.values())) for label, n in results.notes.items() if label not in figures
    }
    out.write_text(json.dumps({"figures": figures, "notes": notes}))


# --- report -----------------------------------------------------------------------------------

TETHER = "tether native, sync client"
TETHER_ASYNC = "tether native, asyncio client"
TETHER_NO_POLL = "tether native, sync client, no poll (TETHER_SPIN_US=0)"
FLOOR = "raw Python Unix-socket ping-pong"
GRPC_PLAIN = "tether gRPC path, plaintext"
GRPC_MTLS = "tether gRPC path, AutoMTLS"
GRPCIO = "grpcio, sync client + server"


def value(r: Results, label: str, fig: str) -> float | None:
    v = r.get(label, fig)
    return median(v) if v else None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cmd_output(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        return out.strip().splitlines()[0] if out.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "not available"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    versions = ", ".join(
        f"{d} {_version(d)}"
        for d in ("tether", "msgspec", "grpcio", "protobuf", "Pyro5", "rpyc", "python-plugin")
    )
    goplugin = _cmd_output(
        ["dpkg-query", "-W", "-f=${Version}", "golang-github-hashicorp-go-plugin-dev"]
    )
    from tether._endpoint import load_speedups

    speedups = (
        "built and used"
        if load_speedups() is not None
        else "not in use (not built, or TETHER_SPEEDUPS=0): the pure-Python paths"
    )
    return (
        f"- Machine: {os.cpu_count()} vCPUs ({cpu}){mem}, Linux {platform.release()}\n"
        f"- Python {platform.python_version()}; {versions}\n"
        f"- tether's C extension (tether._speedups, see ARCHITECTURE.md): {speedups}\n"
        f"- {_cmd_output(['go', 'version'])}; go-plugin (Debian) {goplugin}; "
        f"{_cmd_output(['gcc', '--version'])}"
    )


def fmt_us(v: list[float]) -> str:
    return f"{median(v):,.1f} / {p99(v):,.1f}" if v else "—"


def fmt(v: float | None, spec: str = ",.1f") -> str:
    return "—" if v is None else format(v, spec)


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}{X}"


def target(kind: str, actual: float | None, limit: float, what: str, unit: str = X) -> Verdict:
    """kind 'max': actual ≤ limit; 'min': actual ≥ limit."""
    goal = ("≤ " if kind == "max" else "≥ ") + (
        f"{limit:g}{unit}" if unit != " calls/s" else f"{limit:,.0f} calls/s"
    )
    if actual is None:
        return Verdict(what, "—", goal, "not measured", True)
    shown = f"{actual:,.2f}{unit}" if unit == X else f"{actual:,.0f}{unit}"
    if unit == " GB/s":
        shown = f"{actual:.2f} GB/s"
    met = actual <= limit if kind == "max" else actual >= limit
    if met:
        verdict = "**met**"
    elif kind == "max":
        verdict = f"missed by {(actual / limit - 1) * 100:.0f}%"
    else:
        verdict = f"missed: {(1 - actual / limit) * 100:.0f}% short"
    return Verdict(what, shown, goal, verdict, met)


def report(r: Results, plan: Plan) -> str:
    labels = list(r.kinds)
    rows = []
    for label in labels:
        tp = value(r, label, "tp")
        how = {"threads": "threads", "tasks": "tasks", "goroutines": "goroutines"}.get(
            r.callers.get(label, ""), ""
        )
        blob = value(r, label, "blob")
        blob_s = "—" if blob is None else f"{blob:,.0f} ({BLOB_SIZE / blob / 1e6:.2f} GB/s)"
        rss = value(r, label, "rss")
        rows.append(
            f"| {label} | {fmt_us(r.get(label, 'seq'))} | {fmt_us(r.get(label, 'pinned'))} | "
            f"{fmt(tp, ',.0f')}{f' ({how})' if tp is not None else ''} | "
            f"{fmt(value(r, label, 'bulk'), ',.2f')} | {blob_s} | "
            f"{fmt(value(r, label, 'spawn'))} | {fmt(None if rss is None else rss / 1024)} |"
        )
    table = "\n".join(rows)
    once_more = (
        " Each timed 64 MiB call and spawn also comes right after an untimed one of the same "
        "subject: this VM hands memory freed for about 2 s back to its host and touching it "
        "again costs several times more, so without it the figure would say how long ago "
        "the subject last ran."
        if plan.settle
        else ""
    )

    def ratio_row(label: str) -> str:
        tp_mine = TETHER_ASYNC if r.callers.get(label) == "tasks" else TETHER
        return (
            f"| {label} | {ratio(value(r, TETHER, 'seq'), value(r, label, 'seq'))} | "
            f"{ratio(value(r, TETHER, 'pinned'), value(r, label, 'pinned'))} | "
            f"{ratio(value(r, tp_mine, 'tp'), value(r, label, 'tp'))} | "
            f"{ratio(value(r, TETHER, 'bulk'), value(r, label, 'bulk'))} | "
            f"{ratio(value(r, TETHER, 'blob'), value(r, label, 'blob'))} | "
            f"{ratio(value(r, TETHER, 'spawn'), value(r, label, 'spawn'))} | "
            f"{ratio(value(r, TETHER, 'rss'), value(r, label, 'rss'))} |"
        )

    ratios = "\n".join(ratio_row(label) for label in labels if label != TETHER)

    def sub_ratio(a: str, b: str, fig: str) -> float | None:
        va, vb = value(r, a, fig), value(r, b, fig)
        return None if va is None or vb is None else va / vb

    blob = value(r, TETHER, "blob")
    specs = {
        "sequential": (
            "max",
            sub_ratio(TETHER, FLOOR, "seq"),
            1.2,
            "native sync sequential median ÷ raw Python floor",
            X,
        ),
        "pinned": (
            "max",
            sub_ratio(TETHER, FLOOR, "pinned"),
            2.5,
            "same, both processes pinned to one CPU",
            X,
        ),
        "async16": ("min", value(r, TETHER_ASYNC, "tp"), 100_000, "asyncio, 16 tasks", " calls/s"),
        "sync16": ("min", value(r, TETHER, "tp"), 30_000, "sync, 16 threads", " calls/s"),
        "bulk": (
            "max",
            sub_ratio(TETHER, FLOOR, "bulk"),
            1.3,
            "100,000 floats ÷ raw floor carrying the same packed bytes",
            X,
        ),
        "blob": (
            "min",
            None if blob is None else BLOB_SIZE / blob / 1e6,
            1.0,
            "64 MiB bytes, native sync",
            " GB/s",
        ),
        "spawn": (
            "max",
            sub_ratio(TETHER, FLOOR, "spawn"),
            1.5,
            "spawn to first call ÷ raw Python floor",
            X,
        ),
        "grpc": (
            "max",
            sub_ratio(GRPC_PLAIN, GRPCIO, "seq"),
            1.10,
            "tether gRPC path ÷ bare grpcio (sequential median)",
            X,
        ),
        "mtls": (
            "max",
            sub_ratio(GRPC_MTLS, GRPC_PLAIN, "seq"),
            1.15,
            "AutoMTLS ÷ plaintext (tether gRPC path, sequential median)",
            X,
        ),
    }
    verdicts = {key: target(*spec) for key, spec in specs.items()}
    targets = "\n".join(
        f"| {v.what} (goal {v.goal}) | {v.shown} | {v.verdict} |" for v in verdicts.values()
    )
    no_poll = sub_ratio(TETHER_NO_POLL, FLOOR, "seq")
    no_poll_tp = value(r, TETHER_NO_POLL, "tp")
    poll_note = (
        "tether's readers poll their socket for up to 50 µs before they sleep in `recv` "
        "(when the process may use two CPUs: not in the pinned runs; see "
        "[ARCHITECTURE.md](ARCHITECTURE.md)); the floors block at once. With the poll off on "
        f"both sides (`TETHER_SPIN_US=0`, the *no poll* row) the sequential ratio is "
        f"**{fmt(no_poll, '.2f')}{X}** and 16 threads make {fmt(no_poll_tp, ',.0f')} calls/s, "
        "in this same run."
    )
    bounds = render(r.profiles, verdicts, plan.quick)

    not_measured = []
    for label, figs in r.notes.items():
        for fig, reason in figs.items():
            not_measured.append(f"- {label}, {fig}: not measured: {reason}")
    for name, reason in NOT_ATTEMPTED.items():
        not_measured.append(f"- {name}: not measured: {reason}")
    if plan.quick:
        not_measured.append(
            "- Pyro5, RPyC, go-plugin: not measured: --quick skips what needs extra installs"
        )
    nm = "\n".join(not_measured) or "- nothing"
    batches = (
        ", ".join(
            f"`{k}` {v:,.0f} calls/s ({v * 100:,.0f} operations/s)" for k, v in r.batches.items()
        )
        or "not measured"
    )
    mode = "quick smoke run (few iterations; figures are not meaningful)" if plan.quick else "full"

    return f"""# Performance

Generated by `make bench` (`benchmarks/run.py`, {mode}) on {time.strftime("%Y-%m-%d %H:%M")}.

{machine()}

Every figure below comes from this one run. The call is `add(a: float, b: float) -> float` (a
protobuf `Add(AddRequest{{a, b}})` for the gRPC subjects), over a Unix socket, one server
process per subject. Subjects are measured in interleaved rounds ({plan.rounds} rounds of
{plan.n:,} sequential calls each, the order rotating every round), so machine drift hits all
alike; throughput, bulk, bytes and spawn are interleaved the same way. Before each timed
sequential or throughput round a subject makes {plan.settle:g} s of untimed calls: right after
a subject that runs its own processes on both CPUs (the C floor, the Go host), the scheduler
often starts the next pair on one CPU for its first few thousand calls, which halves a
blocking ping-pong's latency and doubles a polling one's; the timed calls see the pair
where the scheduler keeps it (the *pinned* column is the one-CPU case, measured on purpose).

## Figures

Latencies in µs (median / p99 of all rounds' samples). *Pinned*: the same sequential calls in
a second process started with `taskset -c 0`, its servers spawned with `taskset -c 0` too, so
client and server share one CPU and the figure is the CPU cost of a call.
*16 concurrent callers*: 16 threads sharing one client (tasks on one event loop for asyncio
clients; Pyro5 and `multiprocessing.connection` get one connection per thread, since a proxy /
connection cannot be shared), median of {plan.tp_rounds} rounds; each subject makes as many calls
per caller as last it about {plan.tp_window:g} s (at least {plan.per_caller}, set from an untimed
burst), each round after a short untimed burst.
*100,000 floats*: one call `total(list[float])` summing them in the server; the raw floor sends
the same 800,000 packed bytes (`array('d')`) and sums them from a memoryview.
*64 MiB*: one call carrying `bytes` of 64 MiB, answered with its length. Both after untimed
calls per subject (one; {BLOB_WARMUP} for 64 MiB): first-use costs (allocating and first touching
buffers) are not the steady state.{once_more}
*Spawn*: from starting the server process to the first answered call (the handshake included
where there is one); *idle RSS*: the server process, 0.2 s after that call.

{HEADER}
|---|---|---|---|---|---|---|---|
{table}

The go-plugin row comes from a Go host (`benchmarks/go/src/tetherbench/gohost`) timing its own
calls to a Go plugin, both built from Debian's go-plugin 1.0.1 sources; one host run per round
spawns the plugin, so its spawn, RSS, throughput (16 goroutines) and payload figures come
from those runs. The C floor is a C client and a forked C server on a socketpair.

Calculator example (`examples/calculator`, tether native, sync client), batches of 100:
{batches}.

## Ratios

tether native sync client ÷ each subject, same run (below 1{X} means tether is faster or
smaller; for throughput, above 1{X} means tether is faster). Throughput compares like with like:
the asyncio client against task-based subjects, the sync client against the others.

| subject | sequential | pinned | 16 callers | 100,000 floats | 64 MiB | spawn | idle RSS |
|---|---|---|---|---|---|---|---|
{ratios}

## Targets

| target | this run | verdict |
|---|---|---|
{targets}

{poll_note}

{bounds}
## Not measured

{nm}

## Reproduce

`make bench` on a fresh clone: it installs the peers (`pip install -e '.[dev,bench]'`:
Pyro5, RPyC), compiles the C floor with gcc into `.cache/bench`, generates the bench proto's
Python code with grpc_tools there, and builds the Go host and plugin with Debian's golang-go
and go-plugin (apt-installed if missing, as for the interop tests), then runs
`.venv/bin/python benchmarks/run.py` (a few minutes) and rewrites this file.
`python benchmarks/run.py --quick --output /tmp/p.md` is the smoke run `make test` does
(tests/test_bench_smoke.py), so the benchmark code cannot rot; it asserts no timings.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    parser.add_argument("--output", help="where to write the report")
    parser.add_argument("--pinned-phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    plan = Plan.make(args.quick)
    if args.pinned_phase:
        pinned_child(plan, Path(args.pinned_phase))
        return
    results = run(plan)
    text = report(results, plan)
    output = args.output or (None if args.quick else str(REPO / "docs/PERFORMANCE.md"))
    if output:
        Path(output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()

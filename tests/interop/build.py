"""Build the Go interop peers (go-plugin hosts and plugins) offline from Debian packages.

Debian 12 ships go-plugin 1.0.1 and its dependencies as Go source under /usr/share/gocode, so
everything builds in GOPATH mode without a module proxy:

    GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0 GOENV=off
    GOPATH=<dest>/_work/gopath:tests/interop/go:/usr/share/gocode GOCACHE=<dest>/_work/gocache
    protoc -I examples/kv/proto kv.proto \
        --go_out=plugins=grpc:<dest>/_work/gopath/src/tetherinterop/gen/kv   (same for counter)
    go build -o <dest>/ tetherinterop/kvhost tetherinterop/kvplugin ...

The generated Go code lives only in the build directory. A build is skipped when the stamp file
holds the hash of every input (Go sources, protos, this file, `go version`).

Run directly (`python tests/interop/build.py [DEST]`) to build and print the binaries' paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GO_SRC = HERE / "go"
PROTOS: dict[str, Path] = {
    "kv": REPO / "examples" / "kv" / "proto" / "kv.proto",
    "counter": REPO / "examples" / "counter" / "proto" / "counter.proto",
}
PROGRAMS = ("kvhost", "kvplugin", "counterhost", "counterplugin", "negotiatedhost")
DEFAULT_DEST = REPO / ".cache" / "interop"

GOCODE = Path("/usr/share/gocode/src")
# Source directories that must exist for an offline build; each is provided by the packages below.
REQUIRED_SOURCES = (
    GOCODE / "github.com/hashicorp/go-plugin",
    GOCODE / "github.com/hashicorp/go-hclog",
    GOCODE / "github.com/hashicorp/yamux",
    GOCODE / "github.com/golang/protobuf/proto",
    GOCODE / "google.golang.org/grpc",
)
REQUIRED_TOOLS = ("go", "gofmt", "protoc", "protoc-gen-go")
# go-plugin's remaining imports (hclog, yamux, go-testing-interface, oklog/run, x/net, genproto,
# ...) arrive as dependencies of golang-github-hashicorp-go-plugin-dev and golang-google-grpc-dev.
APT_PACKAGES = (
    "golang-go",
    "golang-github-hashicorp-go-plugin-dev",
    "golang-google-grpc-dev",
    "golang-goprotobuf-dev",
    "protobuf-compiler",
)

APT_TIMEOUT = 900.0
STEP_TIMEOUT = 60.0
# A cold build compiles the standard library for CGO_ENABLED=0 plus grpc: ~35 s on 2 cores.
GO_BUILD_TIMEOUT = 600.0


class BuildError(RuntimeError):
    """A toolchain install or build step failed; the message carries the command's output."""


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run cmd, returning its combined output; raise BuildError with that output on failure."""
    shown = " ".join(str(c) for c in cmd)
    try:
        proc = subprocess.run(
            [str(c) for c in cmd],
            env=None if env is None else dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode()
        raise BuildError(f"timed out after {timeout:.0f} s: {shown}\n{out}") from exc
    except OSError as exc:
        raise BuildError(f"cannot run {shown}: {exc}") from exc
    if proc.returncode != 0:
        raise BuildError(f"exit status {proc.returncode}: {shown}\n{proc.stdout}")
    return proc.stdout


def _missing() -> list[str]:
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    missing += [str(path) for path in REQUIRED_SOURCES if not path.is_dir()]
    return missing


def ensure_toolchain() -> None:
    """Install the Debian Go toolchain and go-plugin sources if anything is missing."""
    if not _missing():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *APT_PACKAGES]
    try:
        _run(install, env=env, timeout=APT_TIMEOUT)
    except BuildError:
        # Usually stale package lists; only then is the slow update worth it.
        _run(["apt-get", "update", "-q"], env=env, timeout=APT_TIMEOUT)
        _run(install, env=env, timeout=APT_TIMEOUT)
    if missing := _missing():
        raise BuildError(f"still missing after apt-get install: {', '.join(missing)}")


def _go_env(work: Path) -> dict[str, str]:
    gopath = os.pathsep.join([str(work / "gopath"), str(GO_SRC), str(GOCODE.parent)])
    return {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": gopath,
        "GOPROXY": "off",
        "GOFLAGS": "",
        # Static binaries; no C compiler needed.
        "CGO_ENABLED": "0",
        # Ignore any user go env file (e.g. one setting GOFLAGS=-mod=mod).
        "GOENV": "off",
        "GOCACHE": str(work / "gocache"),
    }


def _inputs() -> list[Path]:
    go_files = sorted(p for p in GO_SRC.rglob("*") if p.is_file())
    return [*go_files, *PROTOS.values(), Path(__file__).resolve()]


def source_hash() -> str:
    """Hash of everything a build depends on (including the Go toolchain version)."""
    digest = hashlib.sha256()
    digest.update(_run(["go", "version"], timeout=STEP_TIMEOUT).encode())
    for path in _inputs():
        digest.update(str(path.relative_to(REPO)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """Serialise concurrent builds into dest (parallel pytest workers, two sessions)."""
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(dest_dir: Path | str = DEFAULT_DEST) -> dict[str, Path]:
    """Build every Go program into dest_dir; return {program name: binary path}.

    Skipped when dest_dir's stamp matches the sources' hash and all binaries exist.
    """
    dest = Path(dest_dir).resolve()
    bins = {name: dest / name for name in PROGRAMS}
    with _locked(dest):
        ensure_toolchain()
        digest = source_hash()
        stamp = dest / "build.stamp"
        if (
            stamp.is_file()
            and stamp.read_text() == digest
            and all(os.access(p, os.X_OK) for p in bins.values())
        ):
            return bins
        stamp.unlink(missing_ok=True)

        work = dest / "_work"
        gen = work / "gopath" / "src" / "tetherinterop" / "gen"
        shutil.rmtree(gen, ignore_errors=True)
        env = _go_env(work)
        for name, proto in PROTOS.items():
            # go_package "./proto" makes protoc-gen-go 1.3 write <out>/proto/<name>.pb.go,
            # imported as tetherinterop/gen/<name>/proto.
            out = gen / name
            out.mkdir(parents=True)
            _run(
                ["protoc", f"-I{proto.parent}", f"--go_out=plugins=grpc:{out}", proto.name],
                env=env,
                timeout=STEP_TIMEOUT,
            )
        packages = [f"tetherinterop/{name}" for name in PROGRAMS]
        _run(["go", "build", "-o", f"{dest}/", *packages], env=env, timeout=GO_BUILD_TIMEOUT)
        stamp.write_text(digest)
    return bins


def main(argv: Sequence[str]) -> int:
    try:
        bins = build(argv[0] if argv else DEFAULT_DEST)
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    for name, path in bins.items():
        print(f"{name}={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

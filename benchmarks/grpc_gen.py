"""The bench proto's Python code, generated with grpc_tools at run time into .cache/bench/gen.

Imported by plain module name (bench_pb2, bench_pb2_grpc); returned as modules, since the
generated code is untyped.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from types import ModuleType
from typing import Any

from common import CACHE, HERE

PROTO = HERE / "bench.proto"
GRPC_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def generated() -> tuple[ModuleType, ModuleType]:
    """(bench_pb2, bench_pb2_grpc), generating them first when the proto changed."""
    digest = hashlib.sha256(PROTO.read_bytes()).hexdigest()[:16]
    out = CACHE / f"gen-{digest}"
    if not (out / "bench_pb2_grpc.py").exists():
        from grpc_tools import protoc  # type: ignore[import-untyped]

        tmp = CACHE / f"gen-{digest}.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        args = [
            "protoc",
            f"-I{HERE}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(PROTO),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("grpc_tools.protoc failed on bench.proto")
        tmp.rename(out)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return importlib.import_module("bench_pb2"), importlib.import_module("bench_pb2_grpc")


def servicer() -> Any:
    """A Bench servicer: add, total, length."""
    pb2, _ = generated()

    class BenchServicer:
        def Add(self, request: Any, context: Any) -> Any:
            return pb2.Sum(value=request.a + request.b)

        def Total(self, request: Any, context: Any) -> Any:
            return pb2.Sum(value=sum(request.values))

        def Length(self, request: Any, context: Any) -> Any:
            return pb2.Size(value=len(request.data))

    return BenchServicer()


def aio_servicer() -> Any:
    pb2, _ = generated()

    class AioBenchServicer:
        async def Add(self, request: Any, context: Any) -> Any:
            return pb2.Sum(value=request.a + request.b)

        async def Total(self, request: Any, context: Any) -> Any:
            return pb2.Sum(value=sum(request.values))

        async def Length(self, request: Any, context: Any) -> Any:
            return pb2.Size(value=len(request.data))

    return AioBenchServicer()

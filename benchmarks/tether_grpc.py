"""tether's go-plugin gRPC path: a Python gRPC plugin through tether.Client, plain and AutoMTLS."""

from __future__ import annotations

import time
from typing import Any

from common import HERE, PY, Subject, pin_prefix, rss_kib
from grpc_gen import generated

import tether


def plugin_cmd(pinned: bool) -> list[str]:
    return [*pin_prefix(pinned), PY, str(HERE / "grpc_plugin.py")]


class TetherGRPC(Subject):
    kind = "tether"

    def __init__(self, pinned: bool = False, auto_mtls: bool = False) -> None:
        super().__init__(pinned)
        self.auto_mtls = auto_mtls
        self.label = "tether gRPC path, AutoMTLS" if auto_mtls else "tether gRPC path, plaintext"
        self.pb2, _ = generated()
        self.client: tether.Client | None = None
        self.stub: Any = None
        self.request: Any = self.pb2.AddRequest(a=1.0, b=2.0)

    def _client(self) -> tether.Client:
        from grpc_plugin import HANDSHAKE, PLUGIN_NAME

        return tether.Client(
            plugin_cmd(self.pinned),
            handshake=HANDSHAKE,
            name=PLUGIN_NAME,
            auto_mtls=self.auto_mtls,
        )

    def start(self) -> None:
        from grpc_plugin import PLUGIN_NAME, BenchPlugin

        self.client = self._client()
        self.client.start()
        self.stub = self.client.dispense(PLUGIN_NAME, BenchPlugin)

    def close(self) -> None:
        if self.client is not None:
            self.client.kill()

    def call(self) -> float:
        return float(self.stub.Add(self.request).value)

    def bulk(self, values: list[float]) -> float:
        return float(self.stub.Total(self.pb2.Floats(values=values)).value)

    def blob(self, data: bytes) -> int:
        return int(self.stub.Length(self.pb2.Blob(data=data)).value)

    def spawn(self) -> tuple[float, float]:
        from grpc_plugin import PLUGIN_NAME, BenchPlugin

        t0 = time.perf_counter()
        with self._client() as client:
            client.dispense(PLUGIN_NAME, BenchPlugin).Add(self.request)
            elapsed = (time.perf_counter() - t0) * 1000
            time.sleep(0.2)
            assert client.pid is not None
            return elapsed, rss_kib(client.pid)

"""The `tether` command: small tools for plugin authors (the manager's commands come later).

tether --version
tether handshake 'LINE'      explain a go-plugin handshake line, or why a host rejects it
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import _handshake as hs
from ._errors import TetherError

__all__ = ["main"]


def _explain(line: str) -> str:
    parsed = hs.HandshakeLine.parse(line)
    rows = [
        ("core protocol version", str(parsed.core_version)),
        ("app protocol version", str(parsed.app_version)),
        ("network", parsed.network),
        ("address", parsed.address),
        ("protocol", parsed.protocol),
        (
            "server certificate",
            f"{len(parsed.server_cert)} base64 characters (AutoMTLS)"
            if parsed.server_cert
            else "none (no AutoMTLS)",
        ),
    ]
    if parsed.multiplex is not None:
        rows.append(("gRPC broker multiplexing", "yes" if parsed.multiplex else "no"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: Sequence[str] | None = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="tether", description="Out-of-process plugins, wire-compatible with go-plugin."
    )
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
    commands = parser.add_subparsers(dest="command")
    explain = commands.add_parser(
        "handshake", help="explain a plugin's handshake line (go-plugin's format)"
    )
    explain.add_argument("line", help="the first line the plugin printed on stdout")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        print(_explain(args.line))
    except TetherError as exc:
        print(f"tether: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The entry-point runner: `python -m tether._entry package.module:object`.

Entry-point plugins (the `tether.plugins` group, or `entry_point:` in the configuration) are
started with this runner: it imports the object the reference names and calls it with no
arguments. The object is a callable that serves, typically a `main()` calling `tether.serve`.
If it cannot be imported the runner prints one line on stderr and exits with code 1, which the
host reports with the plugin's last stderr lines.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Load and call the entry point named by the single argument; the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(
            "usage: python -m tether._entry package.module:object "
            "(the entry point of a plugin to serve)",
            file=sys.stderr,
        )
        return 2
    reference = args[0]
    try:
        target = EntryPoint(name="plugin", value=reference, group="tether.plugins").load()
    except Exception as exc:
        print(
            f"tether: cannot load plugin entry point {reference!r}: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    if not callable(target):
        print(
            f"tether: plugin entry point {reference!r} is a {type(target).__name__}, "
            "not a callable that serves the plugin",
            file=sys.stderr,
        )
        return 1
    result = target()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())

"""tether's own additions to go-plugin's host-to-plugin environment (a Go plugin ignores them)."""

from __future__ import annotations

__all__ = [
    "ENV_LOG_LEVEL",
    "ENV_SPEEDUPS",
    "ENV_SPIN_US",
    "ENV_TRANSPORT",
    "ENV_WATCH_STDIN",
    "TRACE",
]

# "1": the host gave the plugin a pipe as stdin that it never writes; EOF means the host died.
ENV_WATCH_STDIN = "TETHER_WATCH_STDIN"
# "tcp": listen on 127.0.0.1 (with AutoMTLS) instead of a Unix socket.
ENV_TRANSPORT = "TETHER_TRANSPORT"
# The host logger's level name, so the plugin does not format records nobody will show.
ENV_LOG_LEVEL = "TETHER_LOG_LEVEL"
# hclog's TRACE level (below DEBUG). Here, not in _hclog, so a plugin registers the level name
# at start-up without importing the formatter (TETHER_LOG_LEVEL may say TRACE).
TRACE = 5
# Microseconds a reader polls its socket before sleeping (0: never); read by host and plugin.
ENV_SPIN_US = "TETHER_SPIN_US"
# "0": run without the optional C extension (tether._speedups); read by host and plugin.
ENV_SPEEDUPS = "TETHER_SPEEDUPS"

"""How a plugin process logs: hclog lines on stderr, which the host parses (see _hclog).

Imported when serving sets logging up, not at start-up: logging costs a plugin several
milliseconds, paid after its first calls unless it logs sooner (see _server.serve).
"""

from __future__ import annotations

import logging
import os
import sys

from ._env import ENV_LOG_LEVEL, TRACE

__all__ = ["configure"]


class _HclogOnFirstRecord(logging.Formatter):
    """Formats like HclogFormatter, importing it only when a first record is formatted.

    Most plugins log nothing before their first call (often nothing at all), so start-up
    skips _hclog's imports.
    """

    def __init__(self) -> None:
        super().__init__()
        self._inner: logging.Formatter | None = None

    def format(self, record: logging.LogRecord) -> str:
        if self._inner is None:
            from ._hclog import HclogFormatter

            self._inner = HclogFormatter()
        return self._inner.format(record)


def configure() -> None:
    """Send the root logger's records to stderr as hclog lines, at the host's level (unless
    the plugin set up logging itself)."""
    logging.addLevelName(TRACE, "TRACE")  # as _hclog does, which is imported on a record only
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_HclogOnFirstRecord())
    root.addHandler(handler)
    level = os.environ.get(ENV_LOG_LEVEL, "INFO").upper()
    root.setLevel(level if level in logging.getLevelNamesMapping() else logging.INFO)

"""``LogEvents``: what Herald logged in this process, for tests to wait on.

Some states have no other window: a long poll that parked (``long poll
parked``, DEBUG, with ``project`` and ``queue`` extras) is visible only
through the log. ``LogEvents`` attaches a handler to Herald's loggers while
its ``with`` block runs (lowering their level to DEBUG for that time) and
counts the records whose message starts with a text and whose extras match,
so a test waits for the event (``wait_until(lambda: events.count(...))``)
instead of sleeping and hoping it happened.

Thread-safety: records are appended by whichever thread logs (the handler
holds its own lock); ``count`` may be called from any thread. This module
must not format, filter or keep anything but the records' message and
extras. For processes (``herald.testing.topology``) read the log files
instead (``Topology.debug_loggers``).
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._records_lock:
            self.records.append(record)

    def snapshot(self) -> list[logging.LogRecord]:
        with self._records_lock:
            return list(self.records)


class LogEvents:
    """Records the ``logger`` tree's events (DEBUG and up) inside ``with``."""

    def __init__(self, logger: str = "herald") -> None:
        self._logger = logging.getLogger(logger)
        self._recorder = _Recorder()
        self._old_level = logging.NOTSET

    def __enter__(self) -> LogEvents:
        self._old_level = self._logger.level
        self._logger.setLevel(logging.DEBUG)
        self._logger.addHandler(self._recorder)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._logger.removeHandler(self._recorder)
        self._logger.setLevel(self._old_level)

    def count(self, starts_with: str, **extras: Any) -> int:
        """How many records so far begin with ``starts_with`` and carry
        every given extra with that value."""
        return sum(
            1 for record in self._recorder.snapshot()
            if record.getMessage().startswith(starts_with)
            and all(getattr(record, key, None) == value for key, value in extras.items()))

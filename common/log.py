"""Logging for operators: one line per event on stdout.

Every line carries the time (UTC, ISO 8601), level, service name, member id,
request id and message, so ``grep req-...`` follows one request across the
api, the storage workers and the notifier. ``[DEFAULT] log_format = json``
switches to JSON lines for log shippers. The request id is read from
``herald.common.context``'s context variable at the moment of logging.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from herald.common.context import current_request_id


class _ContextFilter(logging.Filter):
    def __init__(self, service: str, member_id: str) -> None:
        super().__init__()
        self.service = service
        self.member_id = member_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.member_id = self.member_id
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class _UTCFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        base = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{base}.{int(record.msecs):03d}Z"


class _JsonFormatter(_UTCFormatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "service": record.service,
            "member_id": record.member_id,
            "request_id": record.request_id,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(service)s %(member_id)s %(request_id)s "
    "%(name)s: %(message)s"
)


def setup(service: str, member_id: str, log_format: str = "text",
          level: int = logging.INFO) -> None:
    """Send every log record of the process to stdout in Herald's format."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_ContextFilter(service, member_id))
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _UTCFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that narrate every connection at INFO drown the service's own lines.
    for noisy in ("oslo_messaging", "kombu", "amqp", "tornado.access", "tooz", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""Logging set-up: one line per record, as JSON or as text, on stderr.

The request line (logger `unicrm.request`) carries its fields in `record.event`; the JSON
formatter writes them as top-level keys, the text formatter as `key=value` pairs. Other
records (uvicorn's start-up, errors) get the same envelope: time, level, logger, message.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

LEVELS = ("critical", "error", "warning", "info", "debug")
FORMATS = ("text", "json")


_second: list[Any] = [None, ""]


def _timestamp(record: logging.LogRecord) -> str:
    second = int(record.created)
    if _second[0] != second:  # formatted once per second, not once per line
        _second[0], _second[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second[1]}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": _timestamp(record), "level": record.levelname.lower(), "logger": record.name}
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            out["msg"] = record.getMessage()
            out.update(event)
        else:
            out["msg"] = record.getMessage()
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message key=value ...`, for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name} {record.getMessage()}"
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            pairs = []
            for key, value in event.items():
                if key == "provider_calls":
                    value = ", ".join(
                        f"{c['method']} {c['url']} {c['status']} {c['duration_ms']}ms"
                        + (f" x{c['attempts']}" if "attempts" in c else "")
                        for c in value
                    )
                    value = f"[{value}]"
                pairs.append(f"{key}={value}")
            line += " " + " ".join(pairs)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Send every log record (unicrm's and uvicorn's) to stderr in the chosen format."""
    # Nothing we log uses the thread or process names: skip collecting them for every record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True

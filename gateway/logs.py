"""Log formats: readable text for a terminal, one JSON object per line for the journal and log shippers.

The service tags its records with `extra={"inc": 5, "table": "T12", ...}`; both formats show the tags, so
every line of one incident can be found with one filter. Only the names in FIELDS ever leave a record:
an accidental `extra={"key": ...}` (a device key, a password) is never written out."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

TEXT = "text"
JSON = "json"
FORMATS = (TEXT, JSON)

# Record attributes copied into a JSON line when present: incident, table, device, staff, event.
FIELDS = ("inc", "table", "device", "staff", "event")


class JsonFormatter(logging.Formatter):
    """One object per line: ts (UTC, ms), level, logger, msg, the FIELDS present, exc for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out: dict[str, Any] = {"ts": ts, "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """`12:00:00.123 INFO    redbutton.gateway [inc=5]: ...`: the incident tag right after the logger name."""

    def format(self, record: logging.LogRecord) -> str:
        inc = getattr(record, "inc", None)
        tag = "" if inc is None else f" [inc={inc}]"
        line = (f"{self.formatTime(record, '%H:%M:%S')}.{int(record.msecs):03d} {record.levelname:<7} "
                f"{record.name}{tag}: {record.getMessage()}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    return JsonFormatter() if fmt == JSON else TextFormatter()


def setup_logging(verbose: bool = False, fmt: str = TEXT) -> None:
    """Log to stderr (the journal, under systemd) in `fmt`. Like logging.basicConfig it leaves a root logger
    that already has handlers alone (pytest's capture, an embedding program), unless those are ours."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "redbutton", False)]
    if root.handlers and not ours:
        return
    if not ours:
        handler = logging.StreamHandler(sys.stderr)
        handler.redbutton = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        ours = [handler]
    for h in ours:
        h.setFormatter(formatter(fmt))
    root.setLevel(logging.DEBUG if verbose else logging.INFO)

"""What the gateway knows of device firmware versions: which of them read what.

A device reports its version (`fw`) in its retained status and in every heartbeat; the store keeps
the last one. A protocol addition that older firmware would refuse (its codec takes no field it
does not know) goes only to devices whose version has it: docs/protocol.md names each."""

from __future__ import annotations

import re

ECHO_SINCE = (0, 2)  # feedback that echoes the press it answers (pep/pseq)

_VERSION = re.compile(r"(\d+)\.(\d+)")


def version(fw: str | None) -> tuple[int, int] | None:
    """(major, minor) of a version such as "0.2.0" or "1.3-rc1"; None for anything else
    ("manual", a version never heard)."""
    m = _VERSION.match(fw or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def reads_echo(fw: str | None) -> bool:
    """True when firmware of this version takes a feedback with `pep`/`pseq`."""
    v = version(fw)
    return v is not None and v >= ECHO_SINCE

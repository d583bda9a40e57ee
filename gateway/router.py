"""Who is paged: on-duty, reachable staff of the level's role who cover the table's zone, best first."""

from __future__ import annotations

from collections.abc import Callable, Collection, Container, Mapping

from .venue import Staff, Venue


def candidates(venue: Venue, zone: str, role: str, available: Callable[[Staff], bool],
               exclude: Collection[str] = (), busy: Mapping[str, int] | None = None,
               prefer: str | None = None, online: Container[str] = ()) -> list[Staff]:
    """Staff of `role` covering `zone` that `available` accepts (on duty, pager not offline or
    silent), not in `exclude`; best first: the table's own responder (`prefer`), then pagers seen
    online, then the least busy, then by id so the order is stable."""
    load = busy or {}
    eligible = [s for s in venue.staff.values()
                if s.role == role and zone in s.zones and s.id not in exclude and available(s)]
    return sorted(eligible, key=lambda s: (s.id != prefer, s.pager not in online, load.get(s.id, 0), s.id))

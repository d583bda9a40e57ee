"""Who is paged for a table: the table's own responder first, then on-duty staff of its zone."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from .venue import Staff, Table, Venue


def candidates(venue: Venue, table: Table, device_state: Mapping[str, str],
               exclude: Collection[str] = (), duty: Mapping[str, bool] | None = None) -> list[Staff]:
    """On-duty staff who cover the table's zone and whose pager is not known to be offline, best
    first: the table's assigned responder, then pagers seen online, then the rest by id. `duty`
    holds the pagers' own on/off-duty toggles, which override the venue file's default."""
    toggles = duty or {}
    eligible = [s for s in venue.staff.values()
                if toggles.get(s.pager, s.on_duty) and table.zone in s.zones and s.id not in exclude
                and device_state.get(s.pager) != "offline"]
    return sorted(eligible, key=lambda s: (s.id != table.responder, device_state.get(s.pager) != "online", s.id))

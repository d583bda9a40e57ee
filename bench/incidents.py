"""Ten thousand open incidents, built through the gateway's store the way the gateway builds them.

For each table: open_incident (with the press that opened it), add_page and move to PAGED (level 0,
the table's responder), update(deadline, deadline_kind=ack): the store calls Gateway.on_press,
_escalate, _page and _set_deadline make, in their order. Not through Gateway.handle itself: each
press routes against every open incident (Store.busy), so building 10,000 that way takes ~45 s on
this machine, which the bench reports as a finding rather than paying twice a run."""

from __future__ import annotations

from gateway import escalation, incidents
from gateway.service import PRESS
from gateway.store import Store
from gateway.venue import Venue


def build_open_incidents(store: Store, venue: Venue, n: int, at: float, deadline_s: float) -> list[int]:
    """n paged incidents on the venue's first n tables, ack timers from at + deadline_s on, one
    millisecond apart; -> their ids in table order."""
    tables = list(venue.tables.values())
    if n > len(tables):
        raise ValueError(f"{n} incidents need {n} tables, the venue has {len(tables)}")
    ep = int(at)
    ids = []
    for i, table in enumerate(tables[:n]):
        if table.responder is None:
            raise ValueError(f"table {table.id} has no responder to page")
        staff = venue.staff[table.responder]
        inc = store.open_incident(venue.site, table.id, table.zone, table.button, "complaint", at, at, (ep, 1), PRESS,
                                  "press complaint")
        store.add_page(inc, staff.id, staff.pager, 0, at)
        store.move(inc, incidents.PAGED, at, "gateway", f"paged {staff.id}", level=0, paged_at=at)
        store.update(inc, deadline=at + deadline_s + i / 1000, deadline_kind=escalation.ACK)
        ids.append(inc)
    return ids

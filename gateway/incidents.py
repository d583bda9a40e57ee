"""The incident lifecycle as an explicit state machine: which transition is allowed from where."""

from __future__ import annotations

OPEN = "open"
PAGED = "paged"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
FOLLOWED_UP = "followed_up"
CLOSED = "closed"
CANCELLED = "cancelled"
EXPIRED = "expired"
UNREACHED = "unreached"  # nobody could be paged: an alarm, never a silent drop

# state -> states it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    OPEN: frozenset({PAGED, UNREACHED, CANCELLED, EXPIRED, CLOSED}),  # CLOSED: feedback, nothing to do
    UNREACHED: frozenset({PAGED, CANCELLED, EXPIRED}),
    PAGED: frozenset({PAGED, ACKNOWLEDGED, UNREACHED, CANCELLED, EXPIRED}),
    ACKNOWLEDGED: frozenset({RESOLVED, CANCELLED, PAGED}),  # PAGED: a manager reassigned it
    RESOLVED: frozenset({FOLLOWED_UP, CLOSED}),
    FOLLOWED_UP: frozenset({CLOSED}),
    CLOSED: frozenset(),
    CANCELLED: frozenset(),
    EXPIRED: frozenset(),
}

# A press at a table with an incident in one of these states joins it instead of opening another.
ACTIVE = frozenset({OPEN, UNREACHED, PAGED, ACKNOWLEDGED})


class TransitionError(ValueError):
    pass


def check(current: str, new: str) -> None:
    if new not in TRANSITIONS[current]:
        raise TransitionError(f"incident cannot go from {current} to {new}")

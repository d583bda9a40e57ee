"""Pushes incident changes to every open board as server-sent events.

The store tells the hub of each committed incident event on the gateway's own threads; the hub
hands the incident's id to each connected board's queue on that board's event loop. A board that
falls far behind is told to reload the whole board instead of being sent a backlog."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..store import IncidentEvent

QUEUE = 256
RESYNC = -1  # in a queue: too much happened, fetch the whole board
KEEPALIVE_S = 15.0


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boards: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[int]]] = set()

    def __call__(self, event: IncidentEvent) -> None:
        """A store watcher: never blocks the incident's own thread."""
        with self._lock:
            boards = list(self._boards)
        for loop, queue in boards:
            try:
                loop.call_soon_threadsafe(_offer, queue, event.incident)
            except RuntimeError:
                pass  # that board's loop has closed; it unsubscribes on its way out

    @property
    def boards(self) -> int:
        with self._lock:
            return len(self._boards)

    def subscribe(self) -> asyncio.Queue[int]:
        queue: asyncio.Queue[int] = asyncio.Queue(QUEUE)
        with self._lock:
            self._boards.add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[int]) -> None:
        with self._lock:
            self._boards = {b for b in self._boards if b[1] is not queue}


def _offer(queue: asyncio.Queue[int], inc_id: int) -> None:
    if queue.full():
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(RESYNC)
    else:
        queue.put_nowait(inc_id)


async def stream(hub: Hub, card: Callable[[int], Awaitable[dict[str, Any] | None]],
                 gone: Callable[[], Awaitable[bool]], stopping: Callable[[], bool]) -> AsyncIterator[str]:
    """The event stream of one board: `incident` events carrying the card of a changed incident
    (several changes to one incident in a burst are sent once), `resync` when the board must
    reload, and a comment now and then so proxies keep the connection open."""
    queue = hub.subscribe()
    try:
        yield "retry: 2000\n\n"
        while not stopping():
            try:
                first = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                if await gone():
                    return
                yield ": keepalive\n\n"
                continue
            ids = [first]
            while not queue.empty():
                ids.append(queue.get_nowait())
            if RESYNC in ids:
                yield "event: resync\ndata: {}\n\n"
                continue
            for inc_id in dict.fromkeys(ids):
                c = await card(inc_id)
                if c is not None:
                    yield f"event: incident\nid: {inc_id}\ndata: {json.dumps(c, separators=(',', ':'))}\n\n"
    finally:
        hub.unsubscribe(queue)

"""The venue's integrations attached to a running gateway: the outbound webhook and Home Assistant
discovery, both fed by the store's incident events, both off unless the venue file turns them on."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .homeassistant import HomeAssistant
from .service import Gateway
from .venue import Venue
from .webhook import Webhook

log = logging.getLogger("redbutton.gateway")


class Integrations:
    def __init__(self, gw: Gateway) -> None:
        """Built before the gateway starts; ValueError (a venue error) when the webhook's secret is
        named but missing, so the gateway never sends unsigned calls it was told to sign."""
        self.gw = gw
        self.webhook = Webhook.from_venue(gw.venue, gw.store.incident, gw.counters)
        self.ha: HomeAssistant | None = None

    def start(self) -> Integrations:
        if self.webhook is not None:
            self.gw.store.watchers.append(self.webhook.start())
            log.info("webhook on for incident events")
        self._ha_for(self.gw.venue)
        self.gw.reload_listeners.append(self.reload)
        return self

    def _ha_for(self, venue: Venue) -> None:
        if venue.integrations.home_assistant and self.ha is None:
            self.ha = HomeAssistant(venue, self.gw.io.publish, venue.integrations.discovery_prefix,
                                    lookup=self.gw.store.incident, counters=self.gw.counters)
            self.ha.announce(self.gw.store.active_incidents())
            self.gw.store.watchers.append(self.ha)
            log.info("Home Assistant discovery on (%s/...)", venue.integrations.discovery_prefix)

    def reload(self, venue: Venue) -> None:
        """An edited venue: Home Assistant's entities follow the new tables and devices; turning it
        off removes them. The webhook's address changes with a restart."""
        if self.ha is not None and not venue.integrations.home_assistant:
            self.ha.retract()
            self._unwatch(self.ha)
            self.ha = None
        elif self.ha is not None:
            self.ha.reload(venue, self.gw.store.active_incidents())
        else:
            self._ha_for(venue)

    def _unwatch(self, watcher: Callable[..., None] | None) -> None:
        if watcher is not None and watcher in self.gw.store.watchers:
            self.gw.store.watchers.remove(watcher)

    def stop(self) -> None:
        self._unwatch(self.ha)
        self._unwatch(self.webhook)
        if self.reload in self.gw.reload_listeners:
            self.gw.reload_listeners.remove(self.reload)
        if self.webhook is not None:
            self.webhook.stop()

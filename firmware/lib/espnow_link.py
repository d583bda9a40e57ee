# The ESP-NOW radio link (hal.Link): packets to and from a USB-attached base station.
import binascii
import random

import rbproto
from rbproto import air

SEND_TRIES = 2  # one retry: ESP-NOW already retries at the MAC layer, a second call covers a busy peer
RXBUF = 1024  # bytes of received packets the radio holds: a 3-packet config command with room to spare
_BACKOFF_MS = (200, 500, 1000, 2000, 5000)
_MAX_RX_PER_POLL = 8  # bounded work per loop pass; the rest waits in the radio's buffer


class EspNowLink:
    """hal.Link over ESP-NOW. There is no connection: the link is up while the base station
    acknowledges what is sent. When it stops acknowledging, poll() re-announces the device's
    online status with a backoff, and the first acknowledged announcement brings the link up again
    (the host publishes that status retained, as the broker keeps MqttLink's). Radio errors stay
    here: publish() answers False.

    cfg["espnow"] = {"base_mac": "aabbccddeeff", "channel": 1}. `radio` (an espnow.ESPNow) and
    `wlan` (the station interface) are made here on the board; the simulator passes its own."""

    def __init__(self, cfg, clock, status, log=print, radio=None, wlan=None):
        en = cfg["espnow"]
        self.base = binascii.unhexlify(en["base_mac"])
        self.channel = en.get("channel", 1)
        self.clock = clock
        self.status = status  # callable(state) -> (topic, payload), from device.Messenger.status
        self.log = log
        self.radio = radio
        self.wlan = wlan
        self.reasm = air.Reassembler(clock)
        self._on_message = None
        self._opened = False
        self._up = False
        self._announced = False
        self._fails = 0
        self._retry_at = clock.ms()
        # A random start: a button wakes from deep sleep for every press, always after about the same
        # number of ms, and the host drops a message whose id repeats the sender's last one (a re-send).
        self._msg_id = random.getrandbits(8)
        self.sent = 0
        self.failed = 0

    def start(self, on_message):
        self._on_message = on_message
        self._announce()

    def _open(self):
        if self.wlan is None:
            import network

            self.wlan = network.WLAN(network.STA_IF)
        self.wlan.active(True)
        try:
            self.wlan.config(channel=self.channel)  # the base station's; no access point is joined
        except (OSError, ValueError) as e:
            self.log("LINK channel %d not set: %s" % (self.channel, e))
        if self.radio is None:
            import espnow

            self.radio = espnow.ESPNow()
        self.radio.config(rxbuf=RXBUF)  # takes effect when the radio is made active
        self.radio.active(True)
        try:
            self.radio.add_peer(self.base)
        except OSError:  # ESP_ERR_ESPNOW_EXIST after a soft reboot
            pass
        self._opened = True
        self.log("LINK espnow mac=%s base=%s ch=%d" % (binascii.hexlify(self.wlan.config("mac")).decode(),
                                                       binascii.hexlify(self.base).decode(), self.channel))

    def is_up(self):
        return self._up

    def stop(self):
        """Radio off before deep sleep. Nothing is announced: the device sleeps, it is not lost."""
        try:
            if self.radio is not None:
                self.radio.active(False)
            if self.wlan is not None:
                self.wlan.active(False)  # off the air: the base station's sends now fail
        except OSError:
            pass
        self._opened = False
        self._up = False
        self._announced = False

    def rssi(self):
        """Signal strength of the base station's last packet, from the radio's peer table."""
        try:
            return self.radio.peers_table[self.base][0]
        except (AttributeError, KeyError, TypeError, IndexError):
            return 0

    def _send(self, packet):
        for _ in range(SEND_TRIES):
            try:
                if self.radio.send(self.base, packet, True):
                    self.sent += 1
                    return True
            except (OSError, ValueError, AttributeError) as e:
                self.log("LINK send error %s" % e)
        self.failed += 1
        return False

    def _publish(self, topic, payload):
        self._msg_id = (self._msg_id + 1) & 0xFF
        try:
            packets = air.fragment(self._msg_id, air.join(topic, payload))
        except ValueError as e:
            self.log("LINK drop %s" % e)
            return False
        for p in packets:
            if not self._send(p):
                self._down()
                return False
        if not self._up:
            self._up = True
            self._retry_at = self.clock.ms()  # announce (again) at the next poll
        return True

    def publish(self, topic, payload, retain=False):
        """Tried even while the link is down: a send is the only way to learn that the base
        station is back. `retain` is the host's business (it retains every status topic)."""
        return self._publish(topic, payload)

    def _announce(self):
        if not self._opened:
            try:
                self._open()
            except OSError as e:
                self.log("LINK espnow open failed %s" % e)
                self._down()
                return
        topic, online = self.status(rbproto.ONLINE)
        if self._publish(topic, online):
            self._announced = True
            self._fails = 0
            self.log("LINK up")

    def _down(self):
        was_up = self._up
        self._up = False
        self._announced = False
        delay = _BACKOFF_MS[min(self._fails, len(_BACKOFF_MS) - 1)]
        self._fails += 1
        self._retry_at = self.clock.add(self.clock.ms(), delay)
        if was_up or self._fails == 1:
            self.log("LINK down base not acknowledging; retry in %d ms" % delay)

    def poll(self):
        if not self._announced and self.clock.diff(self.clock.ms(), self._retry_at) >= 0:
            self._announce()
        if not self._opened:
            return
        for _ in range(_MAX_RX_PER_POLL):
            try:
                mac, packet = self.radio.irecv(0)
            except OSError as e:
                self.log("LINK recv error %s" % e)
                return
            if mac is None:
                break
            if mac != self.base:
                continue  # only the base station speaks for the gateway
            message = self.reasm.add(mac, packet)
            if message is None:
                continue
            try:
                topic, payload = air.split(message)
            except ValueError:
                self.log("DROP reason=malformed air message")
                continue
            self._on_message(topic, payload)  # type: ignore[misc]
        self.reasm.expire()

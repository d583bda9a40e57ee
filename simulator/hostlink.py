"""The firmware's radio-link interface (firmware/lib/hal.py Link) on paho-mqtt, for simulated devices.

The device's own mqtt_link.py needs a MicroPython socket; on the host the same interface is served by
paho, speaking MQTT 3.1.1 with QoS 1, a retained status and last-will as a device does. Received
commands are queued and handed to the firmware in poll(), on the device's own loop thread, just as
umqtt's check_msg() does on the board. Faults: `up` cleared (the radio is out), `delay_ms` (every
message each way arrives that much later), `loss` (the share of publish attempts that fail, as a
frame lost past the radio's retries would: the firmware's outbox keeps the event and sends it again),
and kill() (the board dies: the TCP connection drops without DISCONNECT, so the broker sends the will)."""

from __future__ import annotations

import collections
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

import rbproto
from gateway.mqtt_io import parse_broker_url, set_nodelay

StatusFn = Callable[[str], tuple[str, bytes]]


class HostLink:
    def __init__(self, cfg: dict[str, Any], broker_url: str, status: StatusFn) -> None:
        self.cfg = cfg
        self.host, self.port = parse_broker_url(broker_url)
        self.status = status
        self.inbox: collections.deque[tuple[float, str, bytes]] = collections.deque()  # (arrived, topic, payload)
        self.on_message: Callable[[str, bytes], None] | None = None
        self.connected = False
        self.on_up: Callable[[], None] | None = None  # told of every connection (the simulator's "seen")
        self.up = True  # False: the radio is out (fault injection); publish fails, nothing is received
        self.delay_ms = 0  # fault injection: one-way latency added to every message, both ways
        self.loss = 0.0  # fault injection: the share of publish attempts that fail
        self.rng = random.Random(cfg["device"])  # seeded per device: a lossy run is reproducible
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{cfg['device']}", protocol=mqtt.MQTTv311)
        c.on_socket_open = set_nodelay
        c.reconnect_delay_set(min_delay=1, max_delay=5)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = lambda _c, _u, m: self.inbox.append((time.monotonic(), m.topic, bytes(m.payload)))
        if cfg.get("mqtt_user"):
            c.username_pw_set(cfg["mqtt_user"], cfg.get("mqtt_password"))
        if cfg.get("broker_tls"):
            import mqtt_link  # the firmware's own TLS set-up, on the tls shim (CPython's ssl)

            c.tls_set_context(mqtt_link.tls_context(cfg))
        topic, will = status(rbproto.OFFLINE)
        c.will_set(topic, will, qos=1, retain=True)
        self.client = c

    def start(self, on_message: Callable[[str, bytes], None]) -> None:
        self.on_message = on_message
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def kill(self) -> None:
        """The board loses power: the socket closes with no DISCONNECT, so the broker publishes the
        last will ("offline") at once, as it would for a pager whose battery fell out."""
        self.up = False
        sock = self.client.socket()
        self.client.loop_stop()
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _on_connect(self, c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            return
        c.subscribe(rbproto.commands_filter(self.cfg["site"], self.cfg["device"]), qos=1)
        topic, online = self.status(rbproto.ONLINE)
        c.publish(topic, online, qos=1, retain=True)
        self.connected = True
        if self.on_up is not None:
            self.on_up()

    def _on_disconnect(self, *_args: Any) -> None:
        self.connected = False

    def is_up(self) -> bool:
        return self.up and self.connected

    def rssi(self) -> int:
        """A simulated radio at a typical venue distance."""
        return -55 if self.is_up() else 0

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        if not self.is_up():
            return False
        if self.loss and self.rng.random() < self.loss:
            return False
        if self.delay_ms:
            timer = threading.Timer(self.delay_ms / 1000, self.client.publish, (topic, payload, 1, retain))
            timer.daemon = True
            timer.start()
            return True
        return self.client.publish(topic, payload, qos=1, retain=retain).rc == mqtt.MQTT_ERR_SUCCESS

    def poll(self) -> None:
        due = time.monotonic() - self.delay_ms / 1000
        while self.inbox and self.inbox[0][0] <= due:
            _arrived, topic, payload = self.inbox.popleft()
            if self.up and self.on_message is not None:
                self.on_message(topic, payload)

"""The one module that touches the MQTT client: connection, last-will, subscriptions, publishing.

paho-mqtt 2.x with the VERSION2 callback API, speaking MQTT 5 (so an ACL denial comes back as a
reason code instead of silence). TCP_NODELAY is set in on_socket_open, so every reconnect gets it
too. The session is persistent (clean_start=False with a session expiry): while the gateway (or
the serial bridge) restarts, the broker queues the messages for it. By default a client subscribes
to the site's events and statuses and keeps a retained status with a last-will under
`rb/v1/<site>/gateway/status`; the serial bridge asks for the command filter and no status of its
own (it stands in for the devices, whose statuses it relays).

`mqtts://` is TLS, the broker's certificate checked against the venue CA (`ca.pem` of the broker's
folder, from $REDBUTTON_BROKER_CA or the CLI's --broker-ca; the system's CAs when none is given)
and its name or address: a gateway that cannot tell its broker from an impostor would page from
whatever a rogue broker sends."""

from __future__ import annotations

import errno
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

import rbproto

from .metrics import Counters

log = logging.getLogger("redbutton.mqtt")

SESSION_EXPIRY_S = 24 * 3600
KEEPALIVE_S = 15

Handler = Callable[[str, bytes], None]


class BrokerUrlError(ValueError):
    """A broker URL, its password or its CA that cannot be used: the command line says so in one line."""


def _parse(url: str) -> tuple[str, str, int]:
    """-> (scheme, host, port); a URL that names no usable broker is a BrokerUrlError."""
    u = urlparse(url if "://" in url else f"mqtt://{url}")
    if u.scheme not in ("mqtt", "tcp", "mqtts"):
        raise BrokerUrlError(f"unsupported broker URL scheme {u.scheme!r} (use mqtt://host:port or mqtts://host:port)")
    try:
        port = u.port
    except ValueError as e:  # out of range, or not a number (the URL is not repeated: it may hold a password)
        raise BrokerUrlError(f"the broker URL's port: {e}") from None
    return u.scheme, u.hostname or "127.0.0.1", port or (8883 if u.scheme == "mqtts" else 1883)


def parse_broker_url(url: str) -> tuple[str, int]:
    _scheme, host, port = _parse(url)
    return host, port


def uses_tls(url: str) -> bool:
    return _parse(url)[0] == "mqtts"


PASSWORD_ENV = "REDBUTTON_BROKER_PASSWORD"
PASSWORD_FILE_ENV = "REDBUTTON_BROKER_PASSWORD_FILE"
CA_ENV = "REDBUTTON_BROKER_CA"


def broker_login(url: str, environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """The user named in the URL (mqtt://gateway@host:port) and its password: from the URL, else
    from $REDBUTTON_BROKER_PASSWORD, else from the file $REDBUTTON_BROKER_PASSWORD_FILE names (what
    provisioning writes as gateway.password), so a password need not appear in the process list."""
    env = os.environ if environ is None else environ
    u = urlparse(url if "://" in url else f"mqtt://{url}")
    if not u.username:
        return None, None
    password = unquote(u.password) if u.password is not None else env.get(PASSWORD_ENV)
    if password is None and env.get(PASSWORD_FILE_ENV):
        path = env[PASSWORD_FILE_ENV]
        try:
            password = Path(path).read_text().strip()
        except OSError as e:
            raise BrokerUrlError(f"cannot read the broker password from {path}: {e.strerror}") from e
    return unquote(u.username), password


def broker_ca(url: str, ca: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The CA an mqtts:// broker's certificate must chain to: `ca`, else $REDBUTTON_BROKER_CA (read as
    the password file is, so a systemd unit sets both in one place); None for plain MQTT, or for
    TLS checked against the system's CAs (a broker with a public certificate)."""
    if not uses_tls(url):
        return None
    env = os.environ if environ is None else environ
    given = ca if ca is not None else env.get(CA_ENV) or None
    return Path(given) if given is not None else None


def set_tls(client: mqtt.Client, ca: Path | None) -> None:
    """TLS with the broker's certificate checked against `ca` (the system's CAs when None) and its
    host name or address against the URL's (paho's default once a CA is set)."""
    try:
        client.tls_set(ca_certs=str(ca) if ca is not None else None, cert_reqs=ssl.CERT_REQUIRED,
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
    except OSError as e:  # ssl.SSLError is one too: checked first
        if isinstance(e, ssl.SSLError):
            raise BrokerUrlError(f"{ca}: not a PEM CA certificate ({e.reason or e})") from e
        raise BrokerUrlError(f"cannot read the broker CA from {ca}: {e.strerror}") from e


def _tls_failure(host: str, port: int, ca: Path | None, e: ssl.SSLError) -> str:
    """One line for the operator: what failed, and what to do about it."""
    where = f"the broker at {host}:{port}"
    if not isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS with {where} failed: {e.reason or e} (is {port} the broker's TLS listener?)"
    why = f"{where} failed the TLS check: {e.verify_message or e.reason or e}"
    if "mismatch" in str(e.verify_message).lower():
        return (f"{why}: its certificate was not issued for {host} (use a name or address it names, or "
                f"`redbutton broker rotate-cert --host {host}` and every other name it needs)")
    if ca is None:
        return (f"{why}, checked against the system's CAs: give the venue CA (ca.pem in the broker's folder) "
                f"with --broker-ca or ${CA_ENV}")
    return f"{why}, checked against {ca}: is that the venue CA (ca.pem in the broker's folder)?"


def set_nodelay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """Nagle's algorithm would hold each small publish back for up to ~40 ms."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):  # websockets or TLS wrappers without setsockopt
        pass


class MqttIO:
    def __init__(self, broker_url: str, site: str, client_id: str, on_message: Handler,
                 subscriptions: Sequence[str] | None = None, status_id: str | None = "gateway",
                 counters: Counters | None = None, ca: str | Path | None = None) -> None:
        """`ca`: for an mqtts:// URL, the CA file (PEM) to check the broker against; default
        $REDBUTTON_BROKER_CA, else the system's CAs."""
        self.host, self.port = parse_broker_url(broker_url)
        self.tls = uses_tls(broker_url)
        self.ca = broker_ca(broker_url, ca)
        self.site = site
        self.on_message = on_message
        self.counters = counters or Counters()
        self._topics: dict[int, str] = {}  # message id -> topic, while its PUBACK is awaited
        self._early: set[int] = set()
        self._topics_lock = threading.Lock()
        self.subscriptions = (list(subscriptions) if subscriptions is not None
                              else [rbproto.events_filter(site), rbproto.status_filter(site)])
        self.connected = threading.Event()
        self._answered = threading.Event()  # the broker's CONNACK came, either way
        self.refused: str | None = None  # why the broker last refused the connection
        self._stopping = False
        self._network_thread = 0  # paho's loop thread, known from its first callback
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.on_socket_open = set_nodelay
        if self.tls:
            set_tls(c, self.ca)
        user, password = broker_login(broker_url)
        if user is not None:
            c.username_pw_set(user, password)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        c.reconnect_delay_set(min_delay=1, max_delay=5)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        self._status_topic = rbproto.status_topic(site, status_id) if status_id else None
        if self._status_topic:
            c.will_set(self._status_topic, rbproto.encode_status(rbproto.OFFLINE, "gateway", 0), qos=1, retain=True)
        self.client = c

    def start(self, timeout: float = 10.0) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        try:  # paho connects, and does the TLS handshake, right here: a refusal is known at once
            self.client.connect(self.host, self.port, keepalive=KEEPALIVE_S, clean_start=False, properties=props)
        except ssl.SSLError as e:
            self.counters.inc("mqtt.tls_failed")
            raise ConnectionError(_tls_failure(self.host, self.port, self.ca, e)) from e
        except OSError as e:
            hint = f" (is {self.port} the broker's TLS listener?)" if self.tls and e.errno == errno.ECONNRESET else ""
            raise ConnectionError(f"cannot reach the broker at {self.host}:{self.port}: {e.strerror or e}{hint}") from e
        self.client.loop_start()
        self._answered.wait(timeout)
        if not self.connected.is_set():
            self.stop()
            if self.refused is not None:
                raise ConnectionError(f"the broker at {self.host}:{self.port} refused the connection: {self.refused}"
                                      f"{' (check the user and password)' if 'authori' in self.refused else ''}")
            raise ConnectionError(f"no MQTT connection to {self.host}:{self.port} within {timeout} s")

    def stop(self) -> None:
        self._stopping = True
        if self._status_topic and self.connected.is_set():
            info = self.client.publish(self._status_topic, rbproto.encode_status(rbproto.OFFLINE, "gateway", 0),
                                       qos=1, retain=True)
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):  # the connection went just now: the last will says the same
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: ReasonCode, _props: Any) -> None:
        self._network_thread = threading.get_ident()
        if reason.is_failure:
            self.refused = str(reason)
            self.counters.inc("mqtt.connect_refused")
            log.error("broker refused the connection: %s", reason)
            self._answered.set()
            return
        # Subscribe on every connect: the broker may have lost the session.
        client.subscribe([(f, 1) for f in self.subscriptions])
        if self._status_topic:
            client.publish(self._status_topic, rbproto.encode_status(rbproto.ONLINE, "gateway", 0), qos=1,
                           retain=True)
        log.info("connected to %s:%d%s", self.host, self.port, " over TLS" if self.tls else "")
        self.refused = None
        self.connected.set()
        self._answered.set()

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: ReasonCode, _props: Any) -> None:
        self.connected.clear()
        (log.info if self._stopping else log.warning)("disconnected from the broker: %s", reason)

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.on_message(msg.topic, bytes(msg.payload))
        except Exception:  # a bug in one message's handling must not stop the gateway
            log.exception("handler failed on %s", msg.topic)

    def _on_publish(self, _c: mqtt.Client, _ud: Any, mid: int, reason: ReasonCode, _props: Any) -> None:
        """MQTT 5 says why a PUBACK refuses a message (an ACL denial, a quota): never let it pass silently."""
        with self._topics_lock:
            topic = self._topics.pop(mid, None)
            if topic is None and len(self._early) < 1000:
                self._early.add(mid)  # acknowledged before publish() could note its topic
        if reason.is_failure:
            self.counters.inc("mqtt.publish_refused")
            log.error("the broker refused a publish to %s: %s", topic or "(a topic)", reason)

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, _mid: int, reasons: list[ReasonCode], _props: Any) -> None:
        for f, reason in zip(self.subscriptions, reasons, strict=False):
            if reason.is_failure:
                self.counters.inc("mqtt.subscribe_refused")
                log.error("the broker refused the subscription %s: %s", f, reason)

    def flush(self) -> None:
        """Send what was published now, when called while handling a message on paho's thread.
        paho writes only after it has read up to one packet per message in flight, so under load
        an alert would wait behind hundreds of presses. Its writer is only ever run on this thread
        (publish() from another thread wakes the loop instead), and the gateway publishes at QoS 1,
        whose sending runs no callback."""
        if threading.get_ident() == self._network_thread:
            self.client.loop_write()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """QoS 1; the returned info lets a caller that is about to stop wait for the broker's PUBACK."""
        # Not under _topics_lock: paho calls on_publish holding its own lock, which publish() takes.
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._topics_lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
            elif len(self._topics) < 100_000:  # bounded, should PUBACKs stop coming
                self._topics[info.mid] = topic
        # paho keeps QoS 1 messages queued while disconnected; any other error is worth a line.
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.error("publish to %s failed: %s", topic, mqtt.error_string(info.rc))
        return info

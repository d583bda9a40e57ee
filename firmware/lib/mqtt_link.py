# The MQTT-over-WiFi radio link (hal.Link) on umqtt.simple: QoS 1, last-will, reconnect with backoff.
import socket

import rbproto

KEEPALIVE_S = 30
_BACKOFF_MS = (500, 1000, 2000, 5000, 10000)


def join_wifi(cfg, clock, timeout_ms=15000):
    """Join the venue WiFi; True once connected. Static IP (cfg "ip") saves ~1 s per wake."""
    import network

    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if cfg.get("ip"):
        wlan.ifconfig((cfg["ip"], cfg["netmask"], cfg["gateway_ip"], cfg["dns"]))
    if not wlan.isconnected():
        wlan.connect(cfg["wifi_ssid"], cfg["wifi_password"])
        t0 = clock.ms()
        while not wlan.isconnected() and clock.diff(clock.ms(), t0) < timeout_ms:
            clock.sleep_ms(50)
    return wlan.isconnected()


def tls_context(cfg):
    """TLS to the broker when the config asks for it ("broker_tls": true, port 8883), checking the
    broker's certificate against the venue CA written at provisioning (DER, "broker_ca")."""
    if not cfg.get("broker_tls"):
        return None
    import tls

    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    with open(cfg.get("broker_ca", "ca.der"), "rb") as f:
        ctx.load_verify_locations(cadata=f.read())
    # verify_mode is in MicroPython's documentation of tls.SSLContext but missing from the stubs
    ctx.verify_mode = tls.CERT_REQUIRED  # type: ignore[attr-defined]
    return ctx


class MqttLink:
    """Socket errors stay here: publish() answers False, poll() reconnects after a backoff."""

    def __init__(self, cfg, clock, status, log=print):
        self.cfg = cfg
        self.clock = clock
        self.status = status  # callable(state) -> (topic, payload), from device.Messenger.status
        self.log = log
        self._client = None
        self._on_message = None
        self._fails = 0
        self._retry_at = 0
        self._last_io = 0

    def start(self, on_message):
        self._on_message = on_message
        self._connect()

    def is_up(self):
        return self._client is not None

    def stop(self):
        """A clean disconnect before deep sleep: no last-will, the device is asleep, not lost."""
        if self._client is not None:
            try:
                self._client.disconnect()
            except OSError:
                pass
            self._client = None

    def rssi(self):
        import network

        try:
            return network.WLAN(network.STA_IF).status("rssi")
        except (OSError, ValueError):
            return 0

    def _deliver(self, topic, payload):
        # start() sets _on_message before _connect() registers this callback; mypy only sees None
        self._on_message(topic.decode(), payload)  # type: ignore[misc]

    def _connect(self):
        cfg = self.cfg
        will_topic, will = self.status(rbproto.OFFLINE)
        from umqtt.simple import MQTTClient  # here, so the host can import this module without it

        try:
            ctx = tls_context(cfg)
            c = MQTTClient(cfg["device"], cfg["broker_host"], cfg.get("broker_port", 8883 if ctx else 1883),
                           cfg.get("mqtt_user"), cfg.get("mqtt_password"), KEEPALIVE_S, ctx)
            c.set_callback(self._deliver)
            c.set_last_will(will_topic, will, True, 1)
            c.connect()
            if hasattr(socket, "TCP_NODELAY") and ctx is None:  # Nagle would hold small packets ~40 ms
                c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.subscribe(rbproto.commands_filter(cfg["site"], cfg["device"]), 1)
            topic, online = self.status(rbproto.ONLINE)
            c.publish(topic, online, True, 1)
        except OSError as e:
            self._down("connect failed %s" % e)
            return
        self._client = c
        self._fails = 0
        self._last_io = self.clock.ms()
        self.log("LINK up")

    def _down(self, why):
        if self._client is not None:
            try:
                self._client.sock.close()
            except OSError:
                pass
        self._client = None
        delay = _BACKOFF_MS[min(self._fails, len(_BACKOFF_MS) - 1)]
        self._fails += 1
        self._retry_at = self.clock.add(self.clock.ms(), delay)
        self.log("LINK down %s; retry in %d ms" % (why, delay))

    def publish(self, topic, payload, retain=False):
        if self._client is None:
            return False
        try:
            self._client.publish(topic, payload, retain, 1)
        except OSError as e:
            self._down("publish failed %s" % e)
            return False
        self._last_io = self.clock.ms()
        return True

    def poll(self):
        now = self.clock.ms()
        if self._client is None:
            if self.clock.diff(now, self._retry_at) >= 0:
                self._connect()
            return
        try:
            self._client.check_msg()
            if self.clock.diff(now, self._last_io) > KEEPALIVE_S * 500:
                self._client.ping()
                self._last_io = now
        except OSError as e:
            self._down("poll failed %s" % e)

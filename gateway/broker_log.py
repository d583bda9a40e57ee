"""mosquitto's log, followed: refusals that happen inside the broker become the gateway's log lines and counters.

A login refused, a publish the ACL denied, a subscription reaching past a device's own topics, a TLS
handshake that failed: the broker decides these alone and the gateway never sees the attempt, so
without this they would show nowhere but in mosquitto's own file. What mosquitto 2.0 writes for
each (checked against 2.0.11, log_type in parentheses; the leading timestamp is stripped first):

- broker.refused_connect: `Client <unknown> disconnected, not authorised.` (notice): no login, an
  unknown user or a wrong password;
- broker.denied_publish: `Denied PUBLISH from CLIENT (d0, q1, r0, m1, 'TOPIC', ... (N bytes))`
  (debug): a topic outside the user's ACL;
- broker.denied_subscribe: `Received SUBSCRIBE from CLIENT`, then a line per filter, a tab and
  `FILTER (QoS 1)` (debug), for a filter the ACL does not let the user read: mosquitto grants the
  subscription and then delivers nothing the ACL forbids, so only this check notices the attempt;
- broker.tls_failed: `OpenSSL Error[0]: error:0A000418:SSL routines::tlsv1 alert unknown ca`
  (error): a client that does not trust the broker's certificate (no or an old venue CA);
  `Client connection from HOST failed: error:0A00010B:SSL routines::wrong version number.`
  (notice): plain MQTT on the TLS port. The same line with "unexpected eof while reading" is a
  connection closed before any TLS (a port check): not counted.

The user behind a client id comes from `New client connected from ADDR as CLIENT (p5, c1, k60,
u'USER').`; the address of a refused login from the `New connection from ADDR on port N.` before
it, when only one connection was opening. Lines are read as the file grows, a partial line kept
until its end arrives; a log rotated by renaming (logrotate's create) is read to its end and the
new file from its start, one truncated in place (copytruncate) from its start."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .broker_access import SERVICE_USERS, acl_rules, may_read
from .metrics import Counters

log = logging.getLogger("redbutton.broker")

REFUSED_CONNECT = "broker.refused_connect"
DENIED_PUBLISH = "broker.denied_publish"
DENIED_SUBSCRIBE = "broker.denied_subscribe"
TLS_FAILED = "broker.tls_failed"

LINES_PER_MINUTE = 20  # log lines per counter; past that a flood is only counted, and summed up later
MAX_LINE = 256 * 1024  # a "line" longer than this (not mosquitto's log?) is dropped, not buffered forever
MAX_TRACKED = 1024  # clients (and opening connections) remembered

_STAMP = re.compile(r"^(?:\d+|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d[^:]*): ")
_NEW_CONNECTION = re.compile(r"^New connection from (?P<addr>\S+) on port \d+\.$")
_CONNECTED = re.compile(r"^New client connected from (?P<addr>\S+) as (?P<cid>.*) "
                        r"\(p\d+, c\d+, k\d+(?:, u'(?P<user>.*)')?\)\.$")
_NOT_AUTHORISED = re.compile(r"^Client (?P<cid>.*) disconnected, not authori[sz]ed\.$")
_GONE = re.compile(r"^Client (?P<cid>.*) (?:disconnected|closed its connection|has exceeded timeout)")
_DENIED_PUBLISH = re.compile(r"^Denied PUBLISH from (?P<cid>.*) \(d\d, q\d, r\d, m\d+, '(?P<topic>.*)', "
                             r"\.\.\. \(\d+ bytes\)\)$")
_SUBSCRIBE = re.compile(r"^Received SUBSCRIBE from (?P<cid>.*)$")
_FILTER = re.compile(r"^\t(?P<filter>.*) \(QoS \d\)$")
_OPENSSL = re.compile(r"^OpenSSL Error\[0\]: (?P<error>.*)$")
_TLS_ACCEPT = re.compile(r"^Client connection from (?P<host>\S+) failed: (?P<error>.*?)\.?$")

UNKNOWN = "<unknown>"


def _tls_hint(error: str) -> str:
    if "unknown ca" in error or "bad certificate" in error:
        return "a client that does not trust the broker's certificate: a device with an old or no ca.der?"
    if "wrong version number" in error or "http request" in error:
        return "a client speaking plain MQTT to the TLS port"
    return "a TLS handshake that failed"


class _Throttle:
    """Log lines per counter, at most LINES_PER_MINUTE a minute: a flood of refused logins must not
    become a flood of log lines (the counters count every one)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.window: dict[str, tuple[float, int, int]] = {}  # counter -> (window start, logged, held back)

    def allow(self, counter: str) -> tuple[bool, int]:
        """-> (log this one?, how many were held back before it)."""
        now = self.clock()
        start, logged, held = self.window.get(counter, (now, 0, 0))
        if now - start >= 60:
            start, logged = now, 0
        if logged < LINES_PER_MINUTE:
            self.window[counter] = (start, logged + 1, 0)
            return True, held
        self.window[counter] = (start, logged, held + 1)
        return False, 0


class BrokerLog:
    """Reads mosquitto's log one line at a time; `acl` gives the ACL in force (the text of the file
    the broker reads), for checking what a client subscribes to."""

    def __init__(self, counters: Counters, acl: Callable[[], str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.counters = counters
        self.acl = acl
        self._acl_text: str | None = None
        self._rules: dict[str | None, list[tuple[str, str]]] = {}
        self.users: OrderedDict[str, str | None] = OrderedDict()  # client id -> user
        self.opening: OrderedDict[str, None] = OrderedDict()  # addresses whose CONNECT is awaited
        self._subscriber: str | None = None  # the client whose SUBSCRIBE's filters follow
        self._throttle = _Throttle(clock)

    def feed(self, raw: str) -> None:
        line = _STAMP.sub("", raw.rstrip("\r\n"), count=1)
        if self._subscriber is not None:
            m = _FILTER.match(line)
            if m:
                self._check_subscription(self._subscriber, m.group("filter"))
                return
            self._subscriber = None
        for pattern, handle in self._handlers:
            m = pattern.match(line)
            if m:
                handle(self, m)
                return

    # -- what each line means -------------------------------------------------------------------

    def _new_connection(self, m: re.Match[str]) -> None:
        self._remember(self.opening, m.group("addr"), None)

    def _connected(self, m: re.Match[str]) -> None:
        self.opening.pop(m.group("addr"), None)
        self._remember(self.users, m.group("cid"), m.group("user"))

    def _not_authorised(self, m: re.Match[str]) -> None:
        cid = m.group("cid")
        who = f"client {cid}" if cid != UNKNOWN else self._opened()
        self._report(REFUSED_CONNECT, "BROKER REFUSED a connection %s: not authorised (no login, an unknown user "
                     "or a wrong password)", who)

    def _gone(self, m: re.Match[str]) -> None:
        cid = m.group("cid")
        if cid == UNKNOWN:
            self._opened()
        else:
            self.users.pop(cid, None)

    def _denied_publish(self, m: re.Match[str]) -> None:
        cid = m.group("cid")
        user = self.users.get(cid)
        self._report(DENIED_PUBLISH, "BROKER DENIED a publish by %s to %s: not in its ACL", self._who(cid, user),
                     m.group("topic")[:200], device=user)

    def _subscribe(self, m: re.Match[str]) -> None:
        self._subscriber = m.group("cid")

    def _openssl(self, m: re.Match[str]) -> None:
        error = m.group("error")
        self._report(TLS_FAILED, "BROKER TLS handshake failed %s: %s (%s)", self._opened(keep=True), error[:200],
                     _tls_hint(error))

    def _tls_accept(self, m: re.Match[str]) -> None:
        error = m.group("error")
        if "unexpected eof" in error:  # closed before a word of TLS: a port check, refused by nobody
            log.debug("broker: a connection from %s closed before its TLS handshake", m.group("host"))
            return
        self._report(TLS_FAILED, "BROKER TLS handshake failed from %s: %s (%s)", m.group("host"), error[:200],
                     _tls_hint(error))

    _handlers: list[tuple[re.Pattern[str], Callable[[BrokerLog, re.Match[str]], None]]] = [
        (_NEW_CONNECTION, _new_connection),
        (_CONNECTED, _connected),
        (_NOT_AUTHORISED, _not_authorised),
        (_DENIED_PUBLISH, _denied_publish),
        (_SUBSCRIBE, _subscribe),
        (_OPENSSL, _openssl),
        (_TLS_ACCEPT, _tls_accept),
        (_GONE, _gone),
    ]

    # -- helpers ------------------------------------------------------------------------------

    def _check_subscription(self, cid: str, topic_filter: str) -> None:
        if self.acl is None:
            return
        text = self.acl()
        if text != self._acl_text:
            self._acl_text, self._rules = text, acl_rules(text)
        user = self.users.get(cid)
        if not may_read(self._rules, user, topic_filter):
            self._report(DENIED_SUBSCRIBE, "BROKER DENIED a subscription by %s to %s: beyond its ACL, so none of "
                         "what it covers past the ACL is delivered", self._who(cid, user), topic_filter[:200],
                         device=user)

    def _opened(self, keep: bool = False) -> str:
        """The address of the connection a refusal concerns: certain only when one was opening. Unless
        `keep`, that connection is over (when several were opening, the log does not say which)."""
        n = len(self.opening)
        if n == 0:
            return "(address not in the log)"
        if n == 1:
            addr = next(iter(self.opening))
            if not keep:
                self.opening.clear()
            return f"from {addr}"
        if not keep:
            self.opening.popitem(last=False)
        return f"(one of {n} connections opening)"

    @staticmethod
    def _who(cid: str, user: str | None) -> str:
        return f"user {user} (client {cid})" if user else f"client {cid}"

    @staticmethod
    def _remember(table: OrderedDict[str, str | None] | OrderedDict[str, None], key: str, value: str | None) -> None:
        table.pop(key, None)
        table[key] = value  # type: ignore[assignment]  # None fits both tables
        while len(table) > MAX_TRACKED:
            table.popitem(last=False)

    def _report(self, counter: str, message: str, *args: object, device: str | None = None) -> None:
        self.counters.inc(counter)
        show, held = self._throttle.allow(counter)
        if not show:
            return
        if held:
            message += f" ({held} more not logged in the last minute, counted in {counter})"
        extra = {"device": device} if device and device not in SERVICE_USERS else None
        log.warning(message, *args, extra=extra)


DRAIN_POLLS = 10  # polls a rotated-away file is still read (mosquitto writes to it until its SIGHUP)


class _Tail:
    """One open log file and the partial line at its end."""

    def __init__(self, f: BinaryIO) -> None:
        st = os.fstat(f.fileno())
        self.f, self.ident, self.buf, self.idle = f, (st.st_dev, st.st_ino), b"", 0

    def lines(self) -> list[str]:
        out: list[str] = []
        while chunk := self.f.read(65536):
            self.buf += chunk
            *done, self.buf = self.buf.split(b"\n")
            out += [line.decode("utf-8", "replace") for line in done]
            if len(self.buf) > MAX_LINE:
                self.buf = b""
        self.idle = 0 if out else self.idle + 1
        return out

    def close(self) -> list[str]:
        """-> the line cut off at the end, which will never be finished."""
        self.f.close()
        return [self.buf.decode("utf-8", "replace")] if self.buf else []


class BrokerLogFollower:
    """Follows the log file at `path` as it grows, is rotated or truncated; poll() reads what is new,
    start() polls every `interval` seconds on a thread of its own. Lines already in the file when it
    is first found are not counted again (they were, by whoever followed the file then)."""

    def __init__(self, path: Path, counters: Counters, acl: Callable[[], str] | None = None,
                 interval: float = 0.2, parser: BrokerLog | None = None) -> None:
        self.path = Path(path)
        self.parser = parser or BrokerLog(counters, acl)
        self.interval = interval
        self._tail: _Tail | None = None
        self._draining: list[_Tail] = []  # rotated away, still read for a few polls
        self._first = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> BrokerLogFollower:
        self.poll()  # from here on, every line counts
        self._thread = threading.Thread(target=self._run, name="broker-log", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            for tail in [*self._draining, *([self._tail] if self._tail else [])]:
                tail.f.close()
            self._tail, self._draining = None, []

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # a file we cannot read now must not end the follower
                log.exception("reading the broker log %s failed", self.path)

    def poll(self) -> int:
        """Handle every complete line written since the last poll; -> how many."""
        with self._lock:
            n = 0
            for old in list(self._draining):
                n += self._feed(old.lines())
                if old.idle >= DRAIN_POLLS:
                    self._draining.remove(old)
                    n += self._feed(old.close())
            first, self._first = self._first, False
            if self._tail is None:
                self._tail = self._open(at_end=first)
                if self._tail is None:
                    return n
            n += self._feed(self._tail.lines())
            try:
                st = os.stat(self.path)
            except FileNotFoundError:  # rotated away and the new file not made yet: wait for it
                return n
            if (st.st_dev, st.st_ino) != self._tail.ident:  # replaced (logrotate's create)
                self._draining.append(self._tail)
                self._tail = self._open(at_end=False)
                if self._tail is not None:
                    n += self._feed(self._tail.lines())
            elif st.st_size < self._tail.f.tell():  # truncated in place (copytruncate)
                self._tail.buf = b""
                self._tail.f.seek(0)
                n += self._feed(self._tail.lines())
            return n

    def _open(self, at_end: bool) -> _Tail | None:
        try:
            f = open(self.path, "rb")  # noqa: SIM115  # kept open from poll to poll
        except FileNotFoundError:
            return None
        if at_end:
            f.seek(0, os.SEEK_END)
        return _Tail(f)

    def _feed(self, lines: list[str]) -> int:
        for line in lines:
            self.parser.feed(line)
        return len(lines)

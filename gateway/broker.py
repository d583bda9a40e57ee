"""Starts a private mosquitto on a free loopback port, configured the way Red Button needs it.

Used by `make demo`, the tests and the benchmarks, so all of them run the same broker settings
(mosquitto.conf is written by gateway/broker_config.py, the same text a venue's broker gets), or
runs a venue's own generated config (`config=`). `user` is whoever starts it: run as root,
mosquitto would otherwise switch to the `mosquitto` user, which cannot write its log and
persistence file into our private folder.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .broker_access import BrokerAccess
from .broker_config import BrokerSetup, Listener, mosquitto_conf
from .broker_log import BrokerLogFollower
from .metrics import Counters
from .tls import BrokerTls


class BrokerError(RuntimeError):
    pass


def find_mosquitto() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerError("mosquitto is not installed; run `make setup` (it installs it with apt-get)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """One mosquitto process; start() waits until it accepts connections, stop() reaps it."""

    def __init__(self, workdir: Path | None = None, port: int | None = None, tls: BrokerTls | None = None,
                 acl: str | None = None, access: BrokerAccess | None = None, audit: bool = False,
                 config: Path | None = None, tls_port: int | None = None) -> None:
        """`access`: the venue's password file and ACL, so no anonymous clients. `audit`: log at the
        level where mosquitto names denied publishes (for follow()). `config`: run that
        mosquitto.conf as it is (from `redbutton broker config`), listening on `port` and `tls_port`."""
        self.dir = Path(workdir or (config.parent if config else tempfile.mkdtemp(prefix="rb-broker-")))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.given = config
        self.port = port or free_port()
        self.tls = tls
        self.acl = acl  # the text of a mosquitto ACL file, or None for no ACL
        self.access = access
        self.audit = audit
        self.tls_port = tls_port if config is not None else (free_port() if tls else None)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        if self.tls_port is None:
            raise BrokerError("this broker has no TLS listener")
        return f"mqtts://127.0.0.1:{self.tls_port}"

    @property
    def conf(self) -> Path:
        return self.given or self.dir / "mosquitto.conf"

    @property
    def log_file(self) -> Path:
        """Where this broker logs (log_dest file in its mosquitto.conf)."""
        found = re.search(r"^log_dest file (.+)$", self.conf.read_text(), re.MULTILINE)
        if found is None:
            raise BrokerError(f"{self.conf} has no log_dest file")
        return Path(found.group(1).strip())

    def setup(self) -> BrokerSetup:
        listeners = [Listener(self.port, "127.0.0.1")]
        if self.tls is not None and self.tls_port is not None:
            listeners.append(Listener(self.tls_port, "127.0.0.1", self.tls))
        acl_file = None
        if self.acl is not None:
            acl_file = self.dir / "acl"
            acl_file.write_text(self.acl)
        return BrokerSetup(listeners, self.dir, self.dir / "mosquitto.log", getpass.getuser(), self.access,
                           acl_file=acl_file, audit=self.audit)

    def start(self, timeout: float = 10.0) -> Mosquitto:
        conf = self.conf
        if self.given is None:
            conf.write_text(mosquitto_conf(self.setup()))
        # A session of its own: Ctrl-C in a terminal reaches the process that owns the broker, which
        # stops its clients first and the broker last, instead of killing the broker under them.
        self.proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise BrokerError(f"mosquitto exited with {self.proc.returncode}: {err.strip()}")
            try:
                for port in self.ports:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    @property
    def ports(self) -> Sequence[int]:
        return [p for p in (self.port, self.tls_port) if p is not None]

    def follow(self, counters: Counters, acl: Callable[[], str] | None = None) -> BrokerLogFollower:
        """A follower of this broker's log, started: refusals inside the broker become log lines and
        `counters` (best with audit=True, the only level at which mosquitto names denied publishes)."""
        return BrokerLogFollower(self.log_file, counters, acl).start()

    def reload(self) -> None:
        """SIGHUP: mosquitto reads its password file and ACL again (what provisioning changes)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

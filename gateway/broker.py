"""Starts a private mosquitto on a free loopback port, configured the way Red Button needs it.

Used by `make demo`, the tests and the benchmarks, so all of them run the same broker settings:
- set_tcp_nodelay: without it a QoS 1 round trip costs ~88 ms instead of ~0.5 ms (Nagle);
- max_queued_messages 0: mosquitto's default of 1000 silently drops QoS 1 messages for a slow
  subscriber while still acknowledging the publisher, which would lose presses;
- persistence on, so queued messages survive a broker restart;
- `user` is whoever starts it: run as root, mosquitto would otherwise switch to the `mosquitto`
  user, which cannot write its log and persistence file into our private folder.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .broker_access import BrokerAccess
from .tls import BrokerTls

CONFIG = """\
user {user}
listener {port} 127.0.0.1
set_tcp_nodelay true
max_queued_messages 0
max_inflight_messages 0
persistence true
persistence_location {dir}/
log_dest file {dir}/mosquitto.log
log_type error
log_type warning
log_type notice
"""

# A second listener speaking TLS with a certificate from the venue CA (gateway/tls.py).
TLS_LISTENER = """\
listener {port} 127.0.0.1
cafile {tls.ca_pem}
certfile {tls.cert}
keyfile {tls.key}
tls_version tlsv1.2
"""


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
                 acl: str | None = None, access: BrokerAccess | None = None) -> None:
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="rb-broker-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls = tls
        self.acl = acl  # the text of a mosquitto ACL file, or None for no ACL
        self.access = access  # the venue's password file and ACL: no anonymous clients then
        self.tls_port = free_port() if tls else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        if self.tls_port is None:
            raise BrokerError("this broker has no TLS listener")
        return f"mqtts://127.0.0.1:{self.tls_port}"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        conf = self.dir / "mosquitto.conf"
        text = CONFIG.format(user=getpass.getuser(), port=self.port, dir=self.dir)
        if self.access is not None:
            text += f"allow_anonymous false\npassword_file {self.access.passwd}\nacl_file {self.access.acl}\n"
        else:
            text += "allow_anonymous true\n"
        if self.acl is not None:
            (self.dir / "acl").write_text(self.acl)
            text += f"acl_file {self.dir / 'acl'}\n"
        if self.tls is not None:
            text += TLS_LISTENER.format(port=self.tls_port, tls=self.tls)
        conf.write_text(text)
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
                for port in (self.port, self.tls_port):
                    if port is not None:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on port {self.port} within {timeout} s")

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

"""Who may use the venue's broker: mosquitto's password file and ACL, made from the venue file.

Each device logs in as its own id with a password of its own (separate from its HMAC key, so a
leaked broker password cannot sign a press), and the ACL lets it publish only its own events and
status and read only its own commands. The gateway and the serial bridge have users of their own.
The ACL is written whole from the venue each time, so it never drifts from the list of devices;
the password file is changed one user at a time through mosquitto's own `mosquitto_passwd`, fed a
file rather than the command line so no password shows in the process list. mosquitto reads both
files again on SIGHUP."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import rbproto

from .venue import Venue

GATEWAY_USER = "gateway"
BRIDGE_USER = "bridge"
SERVICE_USERS = (GATEWAY_USER, BRIDGE_USER)
PASSWORD_BYTES = 24


class BrokerAccessError(RuntimeError):
    pass


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def acl_text(venue: Venue) -> str:
    """The mosquitto ACL for `venue`: the gateway reads and writes the site, the bridge stands in for
    the ESP-NOW devices, each device reaches only its own topics. Nothing for anonymous clients."""
    site = venue.site
    root = f"{rbproto.ROOT}/{site}"
    lines = [f"# Red Button broker ACL for site {site!r}, written from the venue file: do not edit by hand.",
             "", f"user {GATEWAY_USER}", f"topic readwrite {root}/#"]
    if venue.integrations.home_assistant:
        lines.append(f"topic readwrite {venue.integrations.discovery_prefix.rstrip('/')}/#")
    lines += ["", f"user {BRIDGE_USER}", f"topic write {root}/+/{rbproto.EVT}/#", f"topic write {root}/+/status",
              f"topic read {root}/+/{rbproto.CMD}/#"]
    for dev in sorted(venue.devices):
        lines += ["", f"user {dev}", f"topic write {root}/{dev}/{rbproto.EVT}/#", f"topic write {root}/{dev}/status",
                  f"topic read {root}/{dev}/{rbproto.CMD}/#"]
    return "\n".join(lines) + "\n"


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` in one step (a reader sees the old file or the new), readable by its owner only.
    The owner of the file it replaces is kept: when root provisions a device, the password file
    mosquitto reads (as the `mosquitto` user) stays readable to mosquitto."""
    try:
        before: os.stat_result | None = path.stat()
    except FileNotFoundError:
        before = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        if before is not None and (before.st_uid, before.st_gid) != (os.geteuid(), os.getegid()):
            try:
                os.chown(tmp, before.st_uid, before.st_gid)
            except PermissionError:  # not root: the file becomes ours, as any edit by us would make it
                pass
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_private(path: Path, text: str) -> None:
    write_private(path, text.encode())


def _mosquitto_passwd() -> str:
    for candidate in (shutil.which("mosquitto_passwd"), "/usr/bin/mosquitto_passwd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerAccessError("mosquitto_passwd is not installed (it comes with mosquitto): run `make setup`")


def hash_password(user: str, password: str) -> str:
    """One password-file line, `user:$7$...` (PBKDF2-SHA512), made by mosquitto_passwd itself."""
    with tempfile.TemporaryDirectory(prefix="rb-passwd-") as d:
        plain = Path(d) / "passwd"
        _write_private(plain, f"{user}:{password}\n")
        done = subprocess.run([_mosquitto_passwd(), "-U", str(plain)], capture_output=True, text=True)
        if done.returncode != 0:
            raise BrokerAccessError(f"mosquitto_passwd failed: {(done.stderr or done.stdout).strip()}")
        line = plain.read_text().strip()
    if not line.startswith(f"{user}:$"):
        raise BrokerAccessError("mosquitto_passwd did not hash the password")
    return line


class BrokerAccess:
    """The folder holding the broker's `passwd` and `acl`, and the service users' passwords
    (`gateway.password`, `bridge.password`), which the gateway and bridge read at start."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.passwd = folder / "passwd"
        self.acl = folder / "acl"

    def password_file(self, user: str) -> Path:
        return self.dir / f"{user}.password"

    def users(self) -> dict[str, str]:
        """User -> hashed password line, in file order."""
        if not self.passwd.exists():
            return {}
        out: dict[str, str] = {}
        for line in self.passwd.read_text().splitlines():
            user, sep, _hash = line.partition(":")
            if sep and user and not line.startswith("#"):
                out[user] = line
        return out

    def _save(self, users: dict[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_private(self.passwd, "".join(line + "\n" for line in users.values()))

    def set_password(self, user: str, password: str) -> None:
        users = self.users()
        users[user] = hash_password(user, password)
        self._save(users)

    def remove(self, user: str) -> bool:
        users = self.users()
        if users.pop(user, None) is None:
            return False
        self._save(users)
        return True

    def ensure_service_users(self) -> list[str]:
        """The gateway's and the bridge's users, each with a new password kept beside the files,
        when missing; returns the users made."""
        made = []
        users = self.users()
        for user in SERVICE_USERS:
            if user in users and self.password_file(user).exists():
                continue
            password = new_password()
            self.dir.mkdir(parents=True, exist_ok=True)
            _write_private(self.password_file(user), password + "\n")
            self.set_password(user, password)
            made.append(user)
        return made

    def write_acl(self, venue: Venue) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_private(self.acl, acl_text(venue))

    def sync(self, venue: Venue) -> list[str]:
        """After the venue changed: the ACL written anew, users of devices no longer in the venue
        removed (their boards can no longer log in); returns the users removed."""
        self.write_acl(venue)
        gone = [u for u in self.users() if u not in venue.devices and u not in SERVICE_USERS]
        for user in gone:
            self.remove(user)
        return gone


def acl_rules(text: str) -> dict[str | None, list[tuple[str, str]]]:
    """A mosquitto ACL (as acl_text writes it) read back: user -> [(access, topic pattern)], None for
    the lines before the first `user` (anonymous clients). What the broker log follower checks a
    subscription against, so the ACL keeps one source: the file the broker itself reads."""
    rules: dict[str | None, list[tuple[str, str]]] = {None: []}
    user: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _sep, rest = line.partition(" ")
        if word == "user":
            user = rest.strip()
            rules.setdefault(user, [])
        elif word == "topic":
            access, _sep, pattern = rest.strip().partition(" ")
            if access not in ("read", "write", "readwrite", "deny"):
                access, pattern = "readwrite", rest.strip()  # `topic PATTERN` alone grants both
            rules[user].append((access, pattern.strip()))
    return rules


def filter_within(topic_filter: str, pattern: str) -> bool:
    """Whether every topic `topic_filter` can match is also matched by `pattern` (both may hold the
    MQTT wildcards + and #)."""
    f, p = topic_filter.split("/"), pattern.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(f) or f[i] == "#":
            return False
        if level != "+" and f[i] != level:  # a literal level covers only itself, never a wildcard
            return False
    return len(f) == len(p)


def may_read(rules: dict[str | None, list[tuple[str, str]]], user: str | None, topic_filter: str) -> bool:
    """Whether the ACL lets `user` read everything `topic_filter` asks for."""
    granted = rules.get(user, [])
    if any(access == "deny" and filter_within(topic_filter, p) for access, p in granted):
        return False
    return any(access in ("read", "readwrite") and filter_within(topic_filter, p) for access, p in granted)

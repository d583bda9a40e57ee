"""mosquitto.conf, written in one place: for a venue's broker (`redbutton broker config`) and for the
private brokers of the tests, the demo and the benchmarks (gateway/broker.py).

A venue's broker is made from the venue file into one folder: mosquitto.conf, the password file
and ACL (gateway/broker_access.py), the venue CA and the broker's certificate (gateway/tls.py),
persistence and the log. Every listener demands a login (per_listener_settings false: one set of
rules for all of them); only `--demo` lets anonymous clients in, and the file says so. Running it
again keeps the CA, the keys and the passwords (new ones would lock every device out) and writes
the ACL and mosquitto.conf anew from the venue and the options.

The broker's settings that matter for Red Button (measured, see docs/security.md and DESIGN.md):
- set_tcp_nodelay: without it a QoS 1 round trip costs ~88 ms instead of ~0.5 ms (Nagle);
- max_queued_messages 0: mosquitto's default of 1000 silently drops QoS 1 messages for a slow
  subscriber while still acknowledging the publisher, which would lose presses;
- persistence on, so queued messages survive a broker restart;
- log_type debug (`audit`): mosquitto 2.0 names a publish its ACL denied ("Denied PUBLISH from
  ...") and a client's subscriptions only at debug level; refused logins ("not authorised") are
  notices. gateway/broker_log.py turns those lines into the gateway's log and counters."""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .broker_access import SERVICE_USERS, BrokerAccess
from .tls import DEFAULT_HOSTS, BrokerTls, broker_hosts, ensure_broker_tls, not_after
from .venue import Venue

TLS_PORT = 8883
LOG_NAME = "mosquitto.log"


class BrokerConfigError(RuntimeError):
    pass


@dataclass(frozen=True)
class Listener:
    port: int
    address: str | None = None  # None: every interface
    tls: BrokerTls | None = None


@dataclass
class BrokerSetup:
    """Everything one mosquitto.conf says."""

    listeners: list[Listener]
    data_dir: Path  # persistence
    log_file: Path
    user: str  # the account mosquitto runs as (it drops to this one when started as root)
    access: BrokerAccess | None = None  # logins and ACL; None: anonymous clients (demo and tests only)
    acl_file: Path | None = None  # an ACL for anonymous clients (tests of the ACL itself)
    audit: bool = False  # debug logging, where mosquitto names denied publishes
    demo: bool = False
    header: list[str] = field(default_factory=list)  # comment lines at the top


def mosquitto_conf(setup: BrokerSetup) -> str:
    lines = [f"# {h}" if h else "#" for h in setup.header]
    if setup.header:
        lines.append("")
    lines += [f"user {setup.user}", "",
              "# One set of rules for every listener.", "per_listener_settings false"]
    if setup.access is None:
        if setup.demo:
            lines += ["# DEMO ONLY (--demo): anonymous clients may connect, publish and read everything.",
                      "# Never on a venue's network: run `redbutton broker config` without --demo."]
        lines.append("allow_anonymous true")
    else:
        lines += ["allow_anonymous false", f"password_file {setup.access.passwd}", f"acl_file {setup.access.acl}"]
    if setup.acl_file is not None:
        lines.append(f"acl_file {setup.acl_file}")
    lines += ["", "# Nagle off (~88 ms -> ~0.5 ms a round trip); never drop a queued QoS 1 message.",
              "set_tcp_nodelay true", "max_queued_messages 0", "max_inflight_messages 0",
              "persistence true", f"persistence_location {setup.data_dir}/", "",
              f"log_dest file {setup.log_file}", "log_type error", "log_type warning", "log_type notice"]
    if setup.audit:
        lines += ["log_type information",
                  "# debug: the only level at which mosquitto logs a publish its ACL denied and what a client",
                  "# subscribes to; gateway/broker_log.py counts them (redbutton gateway --broker-log).",
                  "log_type debug", "connection_messages true"]
    for listener in setup.listeners:
        lines += ["", f"listener {listener.port}" + (f" {listener.address}" if listener.address else "")]
        if listener.tls is not None:
            lines += [f"certfile {listener.tls.cert}", f"keyfile {listener.tls.key}", "tls_version tlsv1.2"]
    return "\n".join(lines) + "\n"


def default_user() -> str:
    """Whoever runs the command; as root, the `mosquitto` account when there is one, so the broker
    does not keep root's rights."""
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("mosquitto")
            return "mosquitto"
        except KeyError:
            return "root"
    return getpass.getuser()


@dataclass
class VenueBroker:
    """The options of `redbutton broker config`."""

    venue: Venue
    venue_path: Path
    out: Path
    hosts: Sequence[str] = ()
    port: int = TLS_PORT
    bind: str | None = None
    plain_port: int | None = None
    demo: bool = False
    user: str = field(default_factory=default_user)
    audit: bool = True


@dataclass
class Written:
    conf: Path
    tls: BrokerTls
    tls_made: bool
    users_made: list[str]
    removed: list[str]
    without_login: list[str]
    log_file: Path
    notes: list[str]


def _hand_over(paths: Sequence[Path], user: str) -> None:
    """As root, give mosquitto's own files to the account it runs as: mosquitto 2.0 reads its password
    file, ACL and TLS key after dropping root, and writes its persistence and log as that account.
    The CA's key and the service users' passwords stay with root."""
    if os.geteuid() != 0 or user == "root":
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise BrokerConfigError(f"--user {user}: no such account on this host") from None
    for path in paths:
        shutil.chown(path, entry.pw_uid, entry.pw_gid)
        if path.is_dir():  # a log or persistence file left by a broker that ran as someone else
            for inside in path.iterdir():
                shutil.chown(inside, entry.pw_uid, entry.pw_gid)


def write_venue_broker(opts: VenueBroker) -> Written:
    """The broker's folder for the venue; what exists is kept, mosquitto.conf and the ACL are written anew."""
    out = opts.out = opts.out.absolute()  # mosquitto is started from anywhere (systemd: from /)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o755)  # mosquitto, running as its own account, must reach its files in here
    tls = BrokerTls.in_folder(out)
    if not tls.exists() and not opts.hosts and not opts.demo:
        raise BrokerConfigError("--host is needed for the broker's certificate: the address or name devices "
                                "reach the broker by (broker_host in the network file)")
    tls, tls_made = ensure_broker_tls(out, opts.venue.site, tuple(opts.hosts) or DEFAULT_HOSTS)
    notes = []
    have = broker_hosts(tls)
    missing = [h for h in opts.hosts if h not in have]
    if missing:
        notes.append(f"the broker certificate does not name {', '.join(missing)} (it names {', '.join(have)}): "
                     f"run `redbutton broker rotate-cert --venue {opts.venue_path} --out {out} --host ...` "
                     "with every name devices use")
    access = BrokerAccess(out)
    users_made = access.ensure_service_users()
    removed = access.sync(opts.venue)
    users = access.users()
    without_login = sorted(d for d, dev in opts.venue.devices.items() if d not in users)
    data, log_dir = out / "data", out / "log"
    data.mkdir(exist_ok=True)
    log_dir.mkdir(exist_ok=True)
    listeners = [Listener(opts.port, opts.bind, tls)]
    if opts.plain_port is not None:
        listeners.append(Listener(opts.plain_port, "127.0.0.1"))
    setup = BrokerSetup(listeners, data, log_dir / LOG_NAME, opts.user, None if opts.demo else access,
                        audit=opts.audit, demo=opts.demo,
                        header=[f"Red Button broker for site {opts.venue.site!r}, written by `redbutton broker config` "
                                f"from {opts.venue_path}.",
                                "Written anew each time the command runs: change its options, not this file.",
                                "Run it: mosquitto -c " + str(out / "mosquitto.conf") + "  (docs/security.md)"])
    conf = out / "mosquitto.conf"
    tmp = out / ".mosquitto.conf.new"
    tmp.write_text(mosquitto_conf(setup))
    os.replace(tmp, conf)
    _hand_over([access.passwd, access.acl, tls.key, data, log_dir], opts.user)
    return Written(conf, tls, tls_made, users_made, removed, without_login, log_dir / LOG_NAME, notes)


def report(opts: VenueBroker, w: Written) -> list[str]:
    """What the technician reads after the command: what was made, kept, and what to do next."""
    tls_where = f"{opts.bind or '*'}:{opts.port}"
    lines = [f"broker for site {opts.venue.site!r} in {opts.out}:",
             f"  {w.conf.name}: TLS on {tls_where}"
             + (f", plain on 127.0.0.1:{opts.plain_port} (this host's gateway and bridge)" if opts.plain_port else "")
             + (", ANONYMOUS ACCESS (--demo)" if opts.demo else ", logins and ACL required"),
             f"  venue CA: {'made' if w.tls_made else 'kept'} ({w.tls.ca_der.name} goes onto each device); "
             f"broker certificate for {', '.join(broker_hosts(w.tls))} until {not_after(w.tls.cert):%Y-%m-%d}",
             f"  logins: {', '.join(SERVICE_USERS)} ({'made' if w.users_made else 'kept'}), their passwords in "
             f"{', '.join(f'{u}.password' for u in SERVICE_USERS)}"]
    if w.removed:
        lines.append(f"  removed the logins of devices no longer in the venue: {', '.join(w.removed)}")
    if w.without_login:
        lines.append(f"  no broker login yet (provision them): {', '.join(w.without_login)}")
    lines += [f"  note: {n}" for n in w.notes]
    env = f"REDBUTTON_BROKER_PASSWORD_FILE={opts.out / 'gateway.password'}"
    if opts.plain_port:
        gw_url = f"mqtt://gateway@127.0.0.1:{opts.plain_port}"
    else:  # no loopback listener: the gateway goes over TLS, checking the broker as the devices do
        gw_url = f"mqtts://gateway@{_tls_host(opts, broker_hosts(w.tls))}:{opts.port}"
        env += f" REDBUTTON_BROKER_CA={w.tls.ca_pem}"
    return [*lines, f"run:     mosquitto -c {w.conf}",
            f"gateway: {env} redbutton gateway --venue {opts.venue_path} --broker {gw_url} --broker-log {w.log_file}"]


def _tls_host(opts: VenueBroker, names: Sequence[str]) -> str:
    """A name the gateway can reach the TLS listener by that its certificate names (the check is by
    name): the listener's own address, else a loopback name, else the certificate's first."""
    if opts.bind in names:
        return str(opts.bind)
    loopback = [n for n in names if n in ("127.0.0.1", "localhost")]
    return loopback[0] if loopback and opts.bind is None else names[0]

"""Dashboard accounts: argon2id password hashes, server-side sessions, CSRF tokens, login throttling.

A session is a random token in an HttpOnly cookie; the store keeps only its SHA-256, so a copy of
the database opens no session. Each session has its own CSRF token, which every write must echo
(form field or header). Failed logins are counted per account and per client address; past the
limit the login is refused for the rest of the window, so a password cannot be guessed online."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError

from ..clock import Clock
from ..metrics import Counters
from ..noise import RateLimiter
from ..store import Store

log = logging.getLogger("redbutton.web")

MANAGER, STAFF = "manager", "staff"
ROLES = (MANAGER, STAFF)
USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
MIN_PASSWORD = 10
SESSION_S = 12 * 3600  # one shift and a bit: a dashboard left open overnight asks again
LOGIN_FAILURES = 5  # per account and per address ...
LOGIN_WINDOW_S = 15 * 60  # ... within this window, then refused until the window has passed


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message is safe to show."""


class LoginThrottled(AccountError):
    pass


@dataclass(frozen=True)
class User:
    username: str
    role: str
    staff_id: str | None
    csrf: str

    @property
    def manager(self) -> bool:
        return self.role == MANAGER


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, store: Store, clock: Clock, counters: Counters) -> None:
        self.store = store
        self.clock = clock
        self.counters = counters
        self.hasher = PasswordHasher()  # argon2id with the library's current parameters
        self._failures = RateLimiter(LOGIN_FAILURES - 1, LOGIN_WINDOW_S)
        # A hash to verify against when the name is unknown, so both cases take as long.
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    def add(self, username: str, password: str, role: str, staff_id: str | None = None) -> None:
        check_new(username, password, role, staff_id)
        try:
            self.store.add_account(username, self.hasher.hash(password), role, staff_id, self.clock.now())
        except IntegrityError as e:
            raise AccountError(f"an account named {username!r} exists already") from e
        log.info("ACCOUNT %s added (%s%s)", username, role, f", staff {staff_id}" if staff_id else "")

    def set_password(self, username: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
        if not self.store.set_account(username, password_hash=self.hasher.hash(password)):
            raise AccountError(f"no account named {username!r}")
        log.info("ACCOUNT %s: password changed, its sessions ended", username)

    def disable(self, username: str) -> None:
        if not self.store.set_account(username, disabled=1):
            raise AccountError(f"no account named {username!r}")
        log.info("ACCOUNT %s disabled, its sessions ended", username)

    def login(self, username: str, password: str, client: str) -> tuple[str, User]:
        """-> (session token for the cookie, the user). AccountError for a wrong name or password
        (one message for both), LoginThrottled after too many failures."""
        now = self.clock.now()
        if self._failures.flagged(f"user:{username}", now) or self._failures.flagged(f"addr:{client}", now):
            self.counters.inc("login.throttled")
            log.warning("LOGIN refused for %r from %s: too many failed attempts", username[:40], client)
            raise LoginThrottled("too many failed logins: try again in a few minutes")
        row = self.store.account(username) if USERNAME.match(username) else None
        ok = self._verify(str(row["password_hash"]) if row else self._dummy, password)
        if row is None or not ok or row["disabled"]:
            self._failures.press(f"user:{username}", now)
            self._failures.press(f"addr:{client}", now)
            self.counters.inc("login.failed")
            log.warning("LOGIN failed for %r from %s", username[:40], client)
            raise AccountError("wrong name or password")
        if self.hasher.check_needs_rehash(str(row["password_hash"])):
            self.store.set_account(username, password_hash=self.hasher.hash(password))
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.store.add_session(token_hash(token), username, csrf, now, now + SESSION_S)
        self.counters.inc("login.ok")
        log.info("LOGIN %s from %s", username, client)
        return token, User(username, str(row["role"]), row["staff_id"], csrf)

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self.hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    def user(self, token: str | None) -> User | None:
        """The user of a session cookie, if the session is live and the account enabled."""
        if not token:
            return None
        found = self.store.session(token_hash(token), self.clock.now())
        if found is None:
            return None
        username, csrf = found
        row = self.store.account(username)
        if row is None:
            return None
        return User(username, str(row["role"]), row["staff_id"], csrf)

    def logout(self, token: str | None) -> None:
        if token:
            self.store.end_session(token_hash(token))


def check_new(username: str, password: str, role: str, staff_id: str | None) -> None:
    if not USERNAME.match(username):
        raise AccountError("a user name is 1-32 of a-z 0-9 _ . -, starting with a letter or digit")
    if role not in ROLES:
        raise AccountError(f"a role is one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
    if role == STAFF and not staff_id:
        raise AccountError("a staff account names the venue's staff member it is (--staff ID)")


def csrf_ok(user: User, given: str | None) -> bool:
    """Constant-time comparison of the token a write carries with the session's own."""
    return given is not None and secrets.compare_digest(user.csrf.encode(), given.encode())

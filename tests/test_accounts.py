"""Dashboard accounts: the `redbutton account` commands on a real SQLite file, and what a login,
a password change and a disabled account do to sessions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.metrics import Counters
from gateway.store import Store
from gateway.web.accounts import AccountError, Accounts, LoginThrottled

BIN = Path(sys.executable).parent
GOOD = "correct horse battery"


def account(db: Path, *args: str, password: str = GOOD) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "redbutton"), "account", *args, "--db", str(db)], input=password + "\n",
                          capture_output=True, text=True, timeout=60)


def test_account_commands(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    r = account(db, "add", "mia", "--role", "manager", "--password-stdin")
    assert (r.returncode, r.stdout.strip()) == (0, "mia: manager account added"), r.stderr
    assert account(db, "add", "ana", "--role", "staff", "--staff", "ana", "--password-stdin").returncode == 0
    assert account(db, "list").stdout.splitlines() == ["ana\tstaff\tana", "mia\tmanager\t-"]

    for args, password, error in (
        (("add", "mia", "--role", "manager"), GOOD, "an account named 'mia' exists already"),
        (("add", "ben", "--role", "manager"), "short", "a password has at least 10 characters"),
        (("add", "ben", "--role", "staff"), GOOD, "a staff account names the venue's staff member it is"),
        (("add", "Ben Smith", "--role", "manager"), GOOD, "a user name is 1-32 of"),
        (("passwd", "nobody"), GOOD, "no account named 'nobody'"),
    ):
        r = account(db, *args, password=password)
        assert r.returncode == 2 and error in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)

    assert account(db, "disable", "ana").returncode == 0
    assert account(db, "list").stdout.splitlines()[0] == "ana\tstaff\tana\tdisabled"


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    a = Accounts(Store(tmp_path / "gw.db"), ManualClock(), Counters())
    a.add("mia", GOOD, "manager")
    return a


def test_hash_is_argon2id_and_never_the_password(accounts: Accounts) -> None:
    row = accounts.store.account("mia")
    assert row is not None and str(row["password_hash"]).startswith("$argon2id$") and GOOD not in str(row)


def test_sessions_end_with_a_password_change_or_a_disable(accounts: Accounts) -> None:
    token, user = accounts.login("mia", GOOD, "10.0.0.1")
    assert accounts.user(token) == user and user.manager
    accounts.set_password("mia", "another good password")
    assert accounts.user(token) is None
    with pytest.raises(AccountError, match="wrong name or password"):
        accounts.login("mia", GOOD, "10.0.0.1")
    token, _ = accounts.login("mia", "another good password", "10.0.0.1")
    accounts.disable("mia")
    assert accounts.user(token) is None
    with pytest.raises(AccountError):
        accounts.login("mia", "another good password", "10.0.0.1")


def test_session_expires_and_logout_ends_it(accounts: Accounts) -> None:
    clock = accounts.clock
    assert isinstance(clock, ManualClock)
    token, _ = accounts.login("mia", GOOD, "10.0.0.1")
    clock.advance(11 * 3600)
    assert accounts.user(token) is not None
    clock.advance(2 * 3600)
    assert accounts.user(token) is None
    token, _ = accounts.login("mia", GOOD, "10.0.0.1")
    accounts.logout(token)
    assert accounts.user(token) is None


def test_guessing_from_one_address_is_throttled_across_names(accounts: Accounts) -> None:
    for name in ("a1", "a2", "a3", "a4", "a5"):
        with pytest.raises(AccountError):
            accounts.login(name, "guess", "10.0.0.9")
    with pytest.raises(LoginThrottled):
        accounts.login("mia", GOOD, "10.0.0.9")
    assert accounts.login("mia", GOOD, "10.0.0.2")[1].username == "mia"  # another address is not held
    assert accounts.counters.get("login.failed") == 5 and accounts.counters.get("login.throttled") == 1

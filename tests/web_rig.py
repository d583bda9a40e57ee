"""The dashboard over real HTTP: uvicorn on a free loopback port in front of a gateway, and logged-in
clients for a manager and a staff member."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.web.server import WebServer, dashboard

PASSWORD = "correct horse battery"  # the accounts of these tests
MANAGER = "mia"  # the demo venue's manager; her account is a staff member of the venue too
STAFF = "ana"


def serve(gateway: Any) -> WebServer:
    server = dashboard(gateway, "127.0.0.1", 0).start()
    server.web.accounts.add(MANAGER, PASSWORD, "manager", "mia")
    server.web.accounts.add(STAFF, PASSWORD, "staff", "ana")
    return server


class Client:
    """An API client with a session: the cookie is kept by httpx, the CSRF token sent on writes."""

    def __init__(self, base: str, username: str | None = None, password: str = PASSWORD) -> None:
        self.http = httpx.Client(base_url=base, timeout=10, follow_redirects=False)
        self.csrf = ""
        if username is not None:
            r = self.http.post("/api/v1/session", json={"username": username, "password": password})
            r.raise_for_status()
            self.csrf = r.json()["csrf"]

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, body: dict[str, Any] | None = None, csrf: bool = True, **kw: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        headers.update(kw.pop("headers", {}))
        return self.http.post(path, json=body if body is not None else {}, headers=headers, **kw)

    def close(self) -> None:
        self.http.close()

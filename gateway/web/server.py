"""The dashboard's HTTP server: uvicorn on its own thread inside the gateway process, so the board
reads the same store and is told of the same incident events as the gateway that makes them."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import uvicorn

from ..prometheus import GatewayMetrics
from ..service import Gateway
from .accounts import Accounts
from .app import Web, create_app

log = logging.getLogger("redbutton.web")
STOP_S = 5.0


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT, :PORT or PORT -> (host, port); the host defaults to loopback."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT for the dashboard, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class WebServer:
    def __init__(self, web: Web, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.web = web
        self.app = create_app(web)
        # Bound here, so port 0 gives a free port known before the thread starts, and a port in use
        # is an error the caller sees at once.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise OSError(f"the dashboard cannot listen on {host}:{port}: {e.strerror}") from e
        self.sock.listen(128)
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1, ws="none")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="dashboard", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> WebServer:
        self.web.gateway.store.watchers.extend(self.web.watchers)
        self._thread.start()
        log.info("dashboard on %s", self.url)
        return self

    def stop(self) -> None:
        self.web.stopping = True
        self.server.should_exit = True
        self._thread.join(STOP_S)
        for watcher in self.web.watchers:
            if watcher in self.web.gateway.store.watchers:
                self.web.gateway.store.watchers.remove(watcher)
        self.sock.close()


def dashboard(gateway: Gateway, host: str = "127.0.0.1", port: int = 8080, secure_cookies: bool = False) -> WebServer:
    """The dashboard of a gateway, with its accounts and metrics, not yet started."""
    accounts = Accounts(gateway.store, gateway.clock, gateway.counters)
    metrics = GatewayMetrics(gateway)
    web = Web(gateway, accounts, metrics=metrics.exposition, secure_cookies=secure_cookies, watchers=[metrics])
    return WebServer(web, host, port)

"""`tls` for the simulator: MicroPython's TLS module, served by CPython's ssl.

Difference covered: MicroPython calls the module `tls` (its `ssl` is a thin layer over it) and has
a subset of ssl's SSLContext; the calls the firmware makes (SSLContext(PROTOCOL_TLS_CLIENT),
load_verify_locations(cadata=<DER bytes>), verify_mode = CERT_REQUIRED, wrap_socket(sock,
server_hostname=...)) mean the same on both, so CPython's own class stands in unchanged."""

from __future__ import annotations

import ssl

PROTOCOL_TLS_CLIENT = ssl.PROTOCOL_TLS_CLIENT
PROTOCOL_TLS_SERVER = ssl.PROTOCOL_TLS_SERVER
CERT_NONE = ssl.CERT_NONE
CERT_OPTIONAL = ssl.CERT_OPTIONAL
CERT_REQUIRED = ssl.CERT_REQUIRED
SSLContext = ssl.SSLContext

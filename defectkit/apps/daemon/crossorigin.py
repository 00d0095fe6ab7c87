"""Refuse browsers' cross-site requests on the routes that change something.

On 127.0.0.1 without a token, any web page the operator opens could otherwise make
the browser POST to the daemon: a ``text/plain`` form to ``/v1/reload``, a multipart
upload that adds rows. Browsers label such requests: they send ``Origin`` (on every
cross-origin and every POST request) and ``Sec-Fetch-Site``. Tools (curl, cameras,
Python clients) send neither, so they are unaffected.

A mutating request is refused when it comes from another site (``Sec-Fetch-Site:
cross-site``/``same-site``), from an opaque origin (``Origin: null``: sandboxed frames,
files), or from an origin whose host and port are not the request's own ``Host``.
For a daemon bound to loopback the origin must also be a loopback name, which stops
DNS rebinding (a page at ``evil.example`` whose name was re-pointed to 127.0.0.1 sends
matching ``Origin`` and ``Host``, both ``evil.example``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _is_loopback_name(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_port(value: str, default_port: int | None) -> tuple[str, int | None] | None:
    parts = urlsplit(value if "//" in value else f"//{value}")
    try:
        port = parts.port or default_port
    except ValueError:
        return None
    return (parts.hostname or "").lower(), port


def cross_site_reason(
    method: str, headers: Mapping[str, str], *, loopback_only: bool
) -> str | None:
    """Why a request must be refused as a browser's cross-site request, or None."""
    if method.upper() in SAFE_METHODS:
        return None
    fetch_site = (headers.get("sec-fetch-site") or "").lower()
    if fetch_site in ("cross-site", "same-site"):
        return f"a browser request from another site (Sec-Fetch-Site: {fetch_site})"
    origin = headers.get("origin")
    if origin is None:
        return None  # not a browser, or a browser on a same-origin GET-like request
    if origin.strip().lower() == "null":
        return "a browser request from an opaque origin (Origin: null)"
    scheme = urlsplit(origin).scheme.lower()
    source = _host_port(origin, {"http": 80, "https": 443}.get(scheme))
    target = _host_port(headers.get("host") or "", 80 if scheme == "http" else 443)
    if source is None or target is None or source != target:
        return f"a browser request from another origin ({origin})"
    if loopback_only and not _is_loopback_name(source[0]):
        return f"a browser request from {origin}, which is not this machine (DNS rebinding?)"
    return None

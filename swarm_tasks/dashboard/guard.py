"""Who may talk to the dashboard: the addresses it binds, the Host names it answers to, the credential
it asks for.

The dashboard shows every run's transcripts and findings, so:

* It binds 127.0.0.1 by default. Any other address needs ``SWARM_DASHBOARD_BASIC_AUTH`` (user:password,
  HTTP basic auth, which browsers ask for themselves); without it :func:`check_bind` refuses to start.
* Every request must name a Host it serves: an IP address, ``localhost``, the name it was bound to or
  one of ``SWARM_DASHBOARD_HOSTS``. A web page that rebinds its own DNS name to 127.0.0.1 (DNS
  rebinding) still sends its own name, and gets a 421 instead of the swarm's data.
* ``/healthz`` answers ``ok`` to anyone (probes), and says nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from coordination.errors import ConfigurationError
from swarm_tasks.settings import SwarmSettings

HEALTH_PATH = "/healthz"
REALM = 'Basic realm="swarm dashboard", charset="UTF-8"'
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    address = _ip(host)
    return host.lower().rstrip(".") == "localhost" if address is None else address.is_loopback


def check_bind(host: str, settings: SwarmSettings) -> None:
    """Refuse to serve beyond loopback without a credential (:class:`ConfigurationError`)."""
    if is_loopback(host) or settings.dashboard_basic_auth is not None:
        return
    raise ConfigurationError(
        f"refusing to serve the dashboard on {host} without authentication: anyone who reaches that address "
        "would read every run's transcripts and findings. Set SWARM_DASHBOARD_BASIC_AUTH=user:password, or "
        "bind 127.0.0.1 and reach it through an SSH tunnel or an authenticating proxy")


def host_name(header: str) -> str:
    """The name part of a Host header (no port, lower case, no trailing dot)."""
    if header.startswith("["):
        return header[1:header.find("]")].lower() if "]" in header else ""
    name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    return name.lower().rstrip(".")


class Guard:
    """The Host check and the credential check of one dashboard, as aiohttp middleware."""

    def __init__(self, settings: SwarmSettings, bind_host: str = "127.0.0.1") -> None:
        names = {"localhost", *(n.lower().rstrip(".") for n in settings.dashboard_hosts)}
        if _ip(bind_host) is None:
            names.add(bind_host.lower().rstrip("."))
        self.names = frozenset(names)
        auth = settings.dashboard_basic_auth
        self.credential = auth.get_secret_value().encode("utf-8") if auth is not None else None

    def serves(self, header: str | None) -> bool:
        """True when a request with this Host header is for this dashboard."""
        if not header:
            return False
        name = host_name(header)
        return _ip(name) is not None or name in self.names

    def authorized(self, header: str | None) -> bool:
        if self.credential is None:
            return True
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self.credential)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == HEALTH_PATH:
            return await handler(request)
        if not self.serves(request.headers.get("Host")):
            return web.json_response(
                {"error": f"this dashboard does not answer to Host {request.headers.get('Host', '')!r}; "
                          "add the name to SWARM_DASHBOARD_HOSTS if it is yours"}, status=421)
        if not self.authorized(request.headers.get("Authorization")):
            return web.json_response({"error": "authentication required"}, status=401,
                                     headers={"WWW-Authenticate": REALM})
        return await handler(request)


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


__all__ = ["HEALTH_PATH", "Guard", "check_bind", "health", "host_name", "is_loopback"]

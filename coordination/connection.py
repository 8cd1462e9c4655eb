"""Turn settings into a Redis connection: the configured URL, or an embedded server we own."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis

from coordination.embedded import EmbeddedRedis
from coordination.errors import ConfigurationError
from coordination.settings import CoordinationSettings

# Up to the *last* '@' of the URL: redis-py accepts a raw '@' in a password (the host follows the last
# one), so stopping at the first would log the rest of the password. Over-redacting is the safe side.
_PASSWORD_IN_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):\S*@")


def redact_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (safe to log)."""
    return _PASSWORD_IN_URL.sub(r"\1:***@", text)


def _without_password(detail: str, url: str) -> str:
    """An error message about ``url``, or a generic one if it quotes any piece of the URL's password."""
    found = _PASSWORD_IN_URL.search(url)
    password = url[found.end(1) + 1:found.end() - 1] if found else ""
    if any(piece and piece in detail for piece in re.split(r"[/?#@:]", password)):
        return "it does not parse; percent-encode reserved characters (/ ? # @ :) in the password"
    return detail


def client_options(settings: CoordinationSettings, url: str) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url`` (timeouts, TLS files)."""
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout_s,
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "health_check_interval": 15,
    }
    if urlsplit(url).scheme == "rediss":
        for name, path in (("ssl_ca_certs", settings.redis_ssl_ca_certs),
                           ("ssl_certfile", settings.redis_ssl_certfile),
                           ("ssl_keyfile", settings.redis_ssl_keyfile)):
            if path is not None:
                if not path.exists():
                    raise ConfigurationError(f"{name} file {path} does not exist")
                options[name] = str(path)
    return options


def make_client(settings: CoordinationSettings, url: str) -> redis.Redis:
    """A client on a blocking pool: hundreds of agent threads share it, and redis-py's default pool
    raises "Too many connections" past 100 where waiting a moment for a free one is right."""
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=settings.redis_max_connections,
                                                 timeout=settings.redis_socket_timeout_s,
                                                 **client_options(settings, url))
    return redis.Redis.from_pool(pool)


@dataclass
class RedisHandle:
    """A connected client, the URL other processes can use, and the embedded server if we own one."""

    url: str
    client: redis.Redis
    embedded: EmbeddedRedis | None
    settings: CoordinationSettings

    def new_client(self) -> redis.Redis:
        """Another client on the same server (for a thread or a blocking reader)."""
        return make_client(self.settings, self.url)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.embedded is not None:
            self.embedded.stop()

    def __enter__(self) -> RedisHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(settings: CoordinationSettings | None = None, *, check: bool = True) -> RedisHandle:
    """Connect to ``SWARM_REDIS_URL``, or start an embedded server when none is configured."""
    settings = settings or CoordinationSettings()
    embedded: EmbeddedRedis | None = None
    if settings.redis_url is not None:
        url = settings.redis_url.get_secret_value()
    else:
        embedded = EmbeddedRedis(settings.embedded_dir, appendonly=settings.embedded_appendonly).start()
        url = embedded.url
    try:
        client = make_client(settings, url)
    except ValueError as exc:
        if embedded:
            embedded.stop()
        # Not chained: redis-py's message can quote a piece of a password that holds '/', '?' or '#'.
        raise ConfigurationError(f"bad Redis URL {redact_url(url)}: {_without_password(str(exc), url)}") from None
    if check:
        try:
            client.ping()
        except redis.RedisError as exc:
            if embedded:
                embedded.stop()
            raise ConfigurationError(
                f"cannot reach Redis at {redact_url(url)}: {exc}. Start Redis there, fix SWARM_REDIS_URL, "
                "or unset it to run an embedded server") from exc
    return RedisHandle(url=url, client=client, embedded=embedded, settings=settings)

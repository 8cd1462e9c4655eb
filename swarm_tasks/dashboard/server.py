"""The dashboard's web server: the page, its static files, the JSON API and the event streams, behind
the Host and credential checks of :mod:`swarm_tasks.dashboard.guard`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from coordination.connection import connect, make_async_client, redact_url
from coordination.errors import ConfigurationError
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.dashboard import api, sse
from swarm_tasks.dashboard.guard import HEALTH_PATH, Guard, check_bind, health
from swarm_tasks.dashboard.views import Views
from swarm_tasks.settings import SwarmSettings, get_settings

STATIC = Path(__file__).parent / "static"
NO_REDIS = "create_app needs the swarm's Redis: pass redis_url (the URL connect() returned) or set SWARM_REDIS_URL"


def create_app(settings: SwarmSettings, client: SwarmClient, *, redis_url: str | None = None,
               heartbeat_s: float = 15.0, bind_host: str = "127.0.0.1") -> web.Application:
    """The dashboard over ``client`` (read-only is enough). Event streams read ``redis_url``
    (default: the settings' URL) with their own asyncio client. ``bind_host`` is one more name it
    answers to (when it is a name)."""
    url = redis_url or (settings.redis_url.get_secret_value() if settings.redis_url else None)
    if url is None:
        raise ConfigurationError(NO_REDIS)
    app = web.Application(middlewares=[Guard(settings, bind_host).middleware, api.json_errors])
    app[api.VIEWS] = Views(client)
    app[sse.HEARTBEAT_S] = heartbeat_s
    app[sse.STREAMS] = set()

    async def stream_client(app: web.Application) -> AsyncIterator[None]:
        app[sse.AREDIS] = make_async_client(settings, url)  # one server or a cluster
        yield
        await app[sse.AREDIS].aclose()

    app.cleanup_ctx.append(stream_client)
    app.on_shutdown.append(sse.cancel_streams)
    app.router.add_get("/", index)
    app.router.add_get(HEALTH_PATH, health)
    api.add_routes(app)
    sse.add_routes(app)
    app.router.add_static("/static/", STATIC, append_version=False)
    return app


async def index(_request: web.Request) -> web.FileResponse:
    response = web.FileResponse(STATIC / "index.html")
    response.headers["Cache-Control"] = "no-cache"
    return response


def serve(settings: SwarmSettings, host: str = "127.0.0.1", port: int = 8765,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the dashboard until interrupted: the swarm at ``SWARM_REDIS_URL``, or without it the embedded
    Redis of the state directory (started if no other process runs it), and ``SWARM_DASHBOARD_BASIC_AUTH``
    on any address but loopback. ``on_ready(redis_url)`` is called once Redis answered, before the page is
    served (so nobody is pointed at a page that cannot work)."""
    check_bind(host, settings)
    handle = connect(settings)
    try:
        if on_ready is not None:
            on_ready(handle.url)
        client = SwarmClient.create(settings, handle.client)  # no scheduler: the dashboard only reads
        web.run_app(create_app(settings, client, redis_url=handle.url, bind_host=host), host=host, port=port,
                    print=None, access_log=None)
    finally:
        handle.close()


def main(argv: list[str] | None = None, settings: SwarmSettings | None = None) -> int:
    """``swarm dashboard [--host H] [--port P] [--run RUN]``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="swarm dashboard", description="The live view of the swarm in a browser.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--run", default=None, help="run to show first (default: the newest)")
    args = parser.parse_args(argv)
    settings = settings or get_settings()
    url = f"http://{args.host}:{args.port}/" + (f"#run={args.run}" if args.run else "")
    try:
        check_bind(args.host, settings)
        serve(settings, host=args.host, port=args.port, on_ready=lambda redis_url: print(
            f"swarm dashboard on {url} (Redis {redact_url(redis_url)})", file=sys.stderr))
    except ConfigurationError as exc:
        print(f"swarm dashboard: {exc}", file=sys.stderr)
        return 2
    return 0

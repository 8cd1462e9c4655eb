"""A run's event stream pushed to the page as server-sent events.

Each SSE message is one entry of the run's Redis stream, and its ``id:`` is the entry id, so a
browser that reconnects (EventSource sends ``Last-Event-ID``) resumes exactly where it left off.
The stream is read with a blocking XREAD on redis.asyncio: no thread per open page, no polling.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import redis
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from coordination.events import Event
from swarm_tasks.dashboard.api import VIEWS, error
from swarm_tasks.dashboard.views import Views

log = logging.getLogger("swarm_tasks.dashboard")

AREDIS = web.AppKey("aredis", aioredis.Redis)
HEARTBEAT_S = web.AppKey("heartbeat_s", float)
# The handler tasks of open streams, cancelled at shutdown.
STREAMS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("streams")

BLOCK_MS = 5_000  # one XREAD waits this long at most, then the loop looks whether the page is still there
BATCH = 500
_ENTRY_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")


def _parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def start_id(request: web.Request) -> str | None:
    """Where to resume: ``Last-Event-ID`` (a reconnect) over ``?after=``; "0-0" replays what is kept."""
    raw = request.headers.get("Last-Event-ID") or request.query.get("after") or "0-0"
    return raw if _ENTRY_ID.match(raw) else None


async def _gap(client: aioredis.Redis, key: str, after: str) -> bool:
    """True when entries after ``after`` were trimmed away (the page must reload its snapshot)."""
    if after in ("0", "0-0"):
        return False
    first = await client.xrange(key, count=1)
    if not first:
        return False
    first_id = first[0][0].decode() if isinstance(first[0][0], bytes) else str(first[0][0])
    if _parse_id(first_id) <= _parse_id(after):
        return False
    return not await client.xrange(key, min=after, max=after)


async def events(request: web.Request) -> web.StreamResponse:
    views, run_id = request.app[VIEWS], request.match_info["run"]
    ctx, _record = await asyncio.to_thread(views.context, run_id)  # unknown run: a 404 before streaming starts
    after = start_id(request)
    if after is None:
        return error(400, "after / Last-Event-ID must be a stream entry id like 1700000000000-0")
    key = ctx.state.keys.events()
    client = request.app[AREDIS]
    task = asyncio.current_task()
    streams = request.app[STREAMS]
    if task is not None:
        streams.add(task)
    try:
        async with sse_response(request, ping_interval=request.app[HEARTBEAT_S]) as resp:
            if await _gap(client, key, after):
                await resp.send(json.dumps({"type": "stream.gap", "subject": run_id, "data": {"after": after}}))
            await _pump(resp, client, key, after, views)
        return resp
    finally:
        if task is not None:
            streams.discard(task)


async def _pump(resp: EventSourceResponse, client: aioredis.Redis, key: str, last: str, views: Views) -> None:
    """Send every entry after ``last`` and then each new one, until the page goes away."""
    closed = asyncio.ensure_future(resp.wait())  # ends when a write (data or heartbeat) fails
    read: asyncio.Future[Any] | None = None
    try:
        while resp.is_connected():
            read = pending = asyncio.ensure_future(client.xread({key: last}, block=BLOCK_MS, count=BATCH))
            await asyncio.wait({pending, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not pending.done():
                return
            reply: Any = pending.result() or []
            # [[stream, entries]] (RESP2 shape) or {stream: entries}, depending on the client's protocol setting
            for _stream, entries in reply.items() if isinstance(reply, dict) else reply:
                for entry_id, fields in entries:
                    event = Event.from_entry(entry_id, fields)
                    shown = views.event({"type": event.type, "subject": event.subject, "ts": event.ts,
                                         "data": event.data})
                    await resp.send(json.dumps(shown, separators=(",", ":")), id=event.id)
                    last = event.id
    except (ConnectionResetError, TimeoutError):
        return  # the page went away mid-write
    except redis.RedisError as exc:  # the page's EventSource reconnects and resumes from its last id
        log.warning("event stream of %s ended: %s", key, exc)
    finally:
        closed.cancel()
        if read is not None and not read.done():  # the page left, or the server is stopping
            read.cancel()
            await asyncio.gather(read, return_exceptions=True)


async def cancel_streams(app: web.Application) -> None:
    """At shutdown: end open streams now rather than waiting for their pages to leave."""
    for task in app[STREAMS].copy():
        task.cancel()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/runs/{run}/events", events)

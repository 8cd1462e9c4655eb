"""The dashboard's JSON endpoints, and the middleware that turns every failure into a JSON error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, JsonValue

from coordination.errors import InvalidIdentifier, NotFound
from swarm_tasks.dashboard.views import Views
from swarm_tasks.errors import RecordSignatureError, RunNotFound

log = logging.getLogger("swarm_tasks.dashboard")

VIEWS = web.AppKey("views", Views)
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown runs and agents are 404s with a message; nothing ever answers with a traceback."""
    try:
        return await handler(request)
    except RunNotFound as exc:
        return error(404, str(exc))
    except RecordSignatureError as exc:  # changed in Redis since it was signed: say so, show nothing of it
        return error(409, str(exc))
    except NotFound as exc:
        return error(404, str(exc.args[0]) if exc.args else "not found")
    except InvalidIdentifier:
        # An id that cannot exist is as absent as one that does not.
        return error(404, f"no such run or agent: {request.match_info.get('agent') or request.match_info.get('run')!r}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if isinstance(exc, web.HTTPNotFound):  # no route matched
            return error(404, f"no endpoint {request.path}")
        return error(exc.status, exc.text or exc.reason)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("dashboard request %s failed", request.path)
        return error(500, f"internal error ({type(exc).__name__}); see the dashboard's log")


async def _off_loop(fn: Callable[[], T]) -> T:
    """Run a blocking Redis read on a worker thread, keeping the loop free for the event streams."""
    return await asyncio.to_thread(fn)


def _json(value: BaseModel | dict[str, JsonValue] | list[JsonValue]) -> web.Response:
    body = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return web.json_response(body)


def _int_query(request: web.Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be between {low} and {high}")
    return value


async def list_runs(request: web.Request) -> web.Response:
    views = request.app[VIEWS]
    limit = _int_query(request, "limit", 100, low=1, high=1000)
    runs = await _off_loop(lambda: views.runs(limit))
    return _json({"runs": [r.model_dump(mode="json") for r in runs]})


async def run_detail(request: web.Request) -> web.Response:
    views, run_id = request.app[VIEWS], request.match_info["run"]
    return _json(await _off_loop(lambda: views.run_detail(run_id)))


async def agents(request: web.Request) -> web.Response:
    views, run_id = request.app[VIEWS], request.match_info["run"]
    after = request.query.get("after") or None
    limit = _int_query(request, "limit", 20_000, low=1, high=100_000)
    response = _json(await _off_loop(lambda: views.agents(run_id, after=after, limit=limit)))
    response.enable_compression()  # thousands of agents: a few hundred kB of JSON, a tenth of it gzipped
    return response


async def agent_detail(request: web.Request) -> web.Response:
    views = request.app[VIEWS]
    run_id, agent_id = request.match_info["run"], request.match_info["agent"]
    response = _json(await _off_loop(lambda: views.agent(run_id, agent_id)))
    response.enable_compression()
    return response


async def board(request: web.Request) -> web.Response:
    views, run_id = request.app[VIEWS], request.match_info["run"]
    limit = _int_query(request, "limit", 5_000, low=1, high=100_000)
    response = _json(await _off_loop(lambda: views.board(run_id, limit=limit)))
    response.enable_compression()
    return response


async def findings(request: web.Request) -> web.Response:
    views, run_id = request.app[VIEWS], request.match_info["run"]
    response = _json(await _off_loop(lambda: views.findings(run_id)))
    response.enable_compression()
    return response


REPORT_TYPES = {"md": "text/markdown", "json": "application/json", "sarif": "application/sarif+json"}


async def report(request: web.Request) -> web.Response:
    views, run_id, fmt = request.app[VIEWS], request.match_info["run"], request.match_info["fmt"]
    if fmt not in REPORT_TYPES:
        raise web.HTTPNotFound()
    text = await _off_loop(lambda: views.report(run_id, fmt))
    response = web.Response(text=text, content_type=REPORT_TYPES[fmt], charset="utf-8")
    response.headers["Content-Disposition"] = f'inline; filename="report.{fmt}"'
    response.enable_compression()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/runs/{run}/findings", findings)
    app.router.add_get("/api/runs/{run}/report.{fmt}", report)
    app.router.add_get("/api/runs", list_runs)
    app.router.add_get("/api/runs/{run}", run_detail)
    app.router.add_get("/api/runs/{run}/agents", agents)
    app.router.add_get("/api/runs/{run}/agents/{agent}", agent_detail)
    app.router.add_get("/api/runs/{run}/board", board)

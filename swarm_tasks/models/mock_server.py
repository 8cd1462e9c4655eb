"""A local OpenAI-compatible chat server for tests, demos and benchmarks (aiohttp; no litellm import).

Endpoints: POST /v1/chat/completions (JSON or SSE), GET /v1/models, /healthz, /stats (counters).
Reach it through litellm's normal OpenAI route: ``model="openai/mock-model", api_base=server.url``.
Replies follow a :class:`~swarm_tasks.models.script.Script` (same stateless selection as the
``scripted`` provider) or, by default, a short text with a call to ``finish`` so agents end.
Latency (fixed or uniform) and an injected error rate (429/500, seeded) are configurable; with
``api_key`` set, a request without that bearer key is refused with 401, as a provider refuses a bad key. Built for
thousands of concurrent connections: no per-request logging, a large backlog, RLIMIT_NOFILE raised.

Provider behaviours for conformance tests: a script step can fail (429 with ``Retry-After`` and
``retry-after-ms``, 500, 408, 400, a context-length error) for its first ``fail_times`` calls of a
conversation, be slow, or send malformed tool-call JSON; ``context_window`` refuses longer prompts as
OpenAI does (400 ``context_length_exceeded``); replies stream (SSE) when asked. Every request is recorded
(:attr:`MockServer.received`, ``GET /received``: arrival time, Authorization header, model, size,
``max_tokens``, tools, the agent and turn it belongs to, the status answered) for assertions.

    python -m swarm_tasks.models.mock_server --port 8901 --latency 2 --error-rate 0 [--script FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import random
import resource
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from pydantic import JsonValue

from swarm_tasks.models.script import (
    Rendered,
    Script,
    ScriptedCall,
    Step,
    base_variables,
    load_callable,
    render_step,
)
from swarm_tasks.models.types import ChatMessage, ToolCallDict

Latency = float | tuple[float, float]
BACKLOG = 8192  # the kernel caps it at net.core.somaxconn
DEFAULT_STEP = Step(content="Done.", tool_calls=[ScriptedCall(name="finish", arguments={"summary": "done"})])
_ERRORS: dict[str, tuple[int, str]] = {
    "rate_limit": (429, "rate_limit_error"), "timeout": (408, "timeout"),
    "server_error": (500, "server_error"), "bad_request": (400, "invalid_request_error"),
    "context_length": (400, "invalid_request_error"),
}
RECEIVED_KEPT = 100_000


def raise_nofile_limit() -> int:
    """Raise this process's open-file soft limit to the hard limit (each connection is a file)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


@dataclass
class Counters:
    """Chat completion requests seen, by outcome. Written only by the server's event loop."""

    requests: int = 0
    replies: int = 0
    injected_errors: int = 0
    unauthorized: int = 0
    script_errors: int = 0
    bad_requests: int = 0
    streamed: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


@dataclass(frozen=True, slots=True)
class Received:
    """One chat request as the server saw it, and what it answered."""

    at: float  # time.time() on arrival
    status: int
    authorization: str | None
    model: str
    messages: int
    prompt_tokens: int  # the server's own estimate
    max_tokens: int | None
    tools: tuple[str, ...]
    stream: bool
    agent: str  # from "agent_id: X" in the system message
    turn: int  # 1-based: the reply being asked for


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)  # cheap on purpose: the server must not be the benchmark's bottleneck


def _prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    return sum(4 + len(str(m.get("content") or "")) // 4 for m in messages)  # ~OpenAI's per-message overhead


class MockServer:
    """The server: in a background thread (``with MockServer(...) as s:``) or awaited (:meth:`serve`)."""

    def __init__(self, latency_s: Latency = 0.0, error_rate: float = 0.0, script: Script | str | None = None,
                 host: str = "127.0.0.1", port: int = 0, seed: int = 0, api_key: str | None = None,
                 context_window: int | None = None) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError("error_rate must be within [0, 1]")
        self.latency_s = latency_s
        self.error_rate = error_rate
        self.script = script
        self.api_key = api_key
        self.context_window = context_window
        self.received: deque[Received] = deque(maxlen=RECEIVED_KEPT)
        self._failures: dict[bytes, int] = {}  # conversation digest -> scripted failures played (fail_times)
        self.host = host
        self.port = port
        self.counters = Counters()
        self.last_request: JsonValue = None
        self._rng = random.Random(seed)
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL for OpenAI clients (``api_base``), ending in /v1."""
        return f"http://{self.host}:{self.port}/v1"

    # -- lifecycle --------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/received", self._received)
        return app

    async def start_async(self) -> None:
        """Bind and serve on the running loop (the port is known when this returns)."""
        raise_nofile_limit()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        # No access log: at thousands of requests per second logging would cost more than serving.
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, backlog=BACKLOG).start()

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve(self) -> None:
        """Serve until cancelled (or SIGINT/SIGTERM when run as the CLI)."""
        await self.start_async()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop_async()

    def start(self) -> MockServer:
        """Serve from a background thread with its own event loop; returns once the port is bound."""
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"mock-llm-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        self._loop = self._thread = None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- handlers ---------------------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(asdict(self.counters))

    async def _received(self, _request: web.Request) -> web.Response:
        return web.json_response([asdict(r) for r in list(self.received)])

    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": "mock-model", "object": "model", "created": 0, "owned_by": "swarm-tasks"}]})

    def _delay(self) -> float:
        if isinstance(self.latency_s, tuple):
            return self._rng.uniform(*self.latency_s)
        return self.latency_s

    def _step(self, messages: list[ChatMessage], tools: list[dict[str, Any]] | None) -> tuple[Step, Rendered]:
        if isinstance(self.script, str):  # py:module:function, a stateless function of the conversation
            step = load_callable(self.script)(messages, tools)
            return step, render_step(step, base_variables(messages))
        if self.script is not None:
            step = self.script.select(messages)
            return step, render_step(step, self.script.variables(messages))
        names = {str(t.get("function", {}).get("name")) for t in tools or () if isinstance(t, dict)}
        step = DEFAULT_STEP if tools is None or "finish" in names else Step(content="Done.")
        return step, render_step(step, base_variables(messages))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        counters = self.counters
        counters.requests += 1
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        arrived, status, seen = time.time(), 500, dict[str, Any]()
        try:
            response = await self._answer(request, seen)
            status = response.status
            return response
        finally:
            counters.in_flight -= 1
            self._record(request, arrived, status, seen)

    def _record(self, request: web.Request, arrived: float, status: int, seen: dict[str, Any]) -> None:
        body = seen.get("body")
        body = body if isinstance(body, dict) else {}
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        names = tuple(str((t.get("function") or {}).get("name")) for t in body.get("tools") or ()
                      if isinstance(t, dict))
        values = base_variables(messages) if messages else {"turn": "0", "agent": ""}
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        self.received.append(Received(
            at=arrived, status=status, authorization=request.headers.get("Authorization"),
            model=str(body.get("model") or ""), messages=len(messages),
            prompt_tokens=int(seen.get("prompt_tokens") or 0),
            max_tokens=max_tokens if isinstance(max_tokens, int) else None, tools=names,
            stream=bool(body.get("stream")), agent=values["agent"], turn=int(values["turn"])))

    def _fails_now(self, step: Step, model: str, messages: list[ChatMessage]) -> bool:
        """A scripted failure plays always, or only for the first ``fail_times`` calls of a conversation."""
        if step.fail_times is None:
            return True
        key = hashlib.blake2b(json.dumps([model, messages], sort_keys=True).encode(), digest_size=16).digest()
        played = self._failures.get(key, 0)
        if played >= step.fail_times:
            return False
        self._failures[key] = played + 1
        return True

    async def _answer(self, request: web.Request, seen: dict[str, Any]) -> web.StreamResponse:
        counters = self.counters
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            counters.unauthorized += 1  # OpenAI's answer to a wrong key
            return _error(401, "invalid_request_error", "Incorrect API key provided.", code="invalid_api_key")
        try:
            body = json.loads(await request.read())
            seen["body"] = body
            messages: list[ChatMessage] = body["messages"]
            if not isinstance(messages, list) or not messages:
                raise ValueError("messages must be a non-empty list")
        except (ValueError, KeyError, TypeError) as exc:
            counters.bad_requests += 1
            return _error(400, "invalid_request_error", f"bad request: {exc}")
        self.last_request = body
        prompt = seen["prompt_tokens"] = _prompt_tokens(messages)
        if self.context_window is not None and prompt > self.context_window:
            counters.script_errors += 1
            return _context_error(self.context_window, prompt)
        if self.error_rate and self._rng.random() < self.error_rate:
            counters.injected_errors += 1  # answered at once, as real rate limiters do
            if self._rng.random() < 0.5:
                return _error(429, "rate_limit_error", "mock rate limit")
            return _error(500, "server_error", "mock server error")
        step, rendered = self._step(messages, body.get("tools"))
        model = str(body.get("model") or "mock-model")
        failing = step.error is not None and self._fails_now(step, model, messages)
        delay = self._delay() + step.delay_s
        if delay > 0 and (failing or step.error is None):
            await asyncio.sleep(delay)
        if failing:
            counters.script_errors += 1
            if step.error == "context_length":
                return _context_error(self.context_window or prompt - 1, prompt)
            status, kind = _ERRORS[str(step.error)]
            headers = {}
            if step.error == "rate_limit" and step.retry_after_s is not None:
                headers = {"Retry-After": str(math.ceil(step.retry_after_s)),
                           "retry-after-ms": str(int(step.retry_after_s * 1000))}
            return _error(status, kind, f"scripted {step.error}", headers=headers)
        self._seq += 1
        reply_id = f"chatcmpl-mock{self._seq:x}"
        completion = _estimate_tokens((rendered.content or "") + "".join(
            c.name + c.arguments for c in rendered.tool_calls))
        if step.usage is not None:  # the script says what the provider reports
            prompt, completion = step.usage.prompt_tokens, step.usage.completion_tokens
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        counters.replies += 1
        if body.get("stream"):
            counters.streamed += 1
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await _stream(request, reply_id, model, rendered, usage if include_usage else None)
        return web.Response(body=json.dumps(_completion(reply_id, model, rendered, usage)).encode(),
                            content_type="application/json")


def _tool_calls(rendered: Rendered, reply_id: str) -> list[ToolCallDict]:
    return [{"id": f"call_{reply_id.removeprefix('chatcmpl-')}_{i}", "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for i, c in enumerate(rendered.tool_calls)]


def _completion(reply_id: str, model: str, rendered: Rendered, usage: dict[str, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": rendered.content}
    if rendered.tool_calls:
        message["tool_calls"] = _tool_calls(rendered, reply_id)
    return {"id": reply_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": rendered.finish_reason}],
            "usage": usage, "system_fingerprint": None}


async def _stream(request: web.Request, reply_id: str, model: str, rendered: Rendered,
                  usage: dict[str, int] | None) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        data = {"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(data)}\n\n".encode()

    parts = [chunk({"role": "assistant", "content": rendered.content or ""}, None)]
    for i, call in enumerate(_tool_calls(rendered, reply_id)):
        parts.append(chunk({"tool_calls": [{"index": i, **call}]}, None))
    parts.append(chunk({}, rendered.finish_reason))
    if usage is not None:
        data = {"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [], "usage": usage}
        parts.append(f"data: {json.dumps(data)}\n\n".encode())
    parts.append(b"data: [DONE]\n\n")
    await response.write(b"".join(parts))
    await response.write_eof()
    return response


def _error(status: int, kind: str, message: str, code: str | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code or kind}}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json",
                        headers=headers)


def _context_error(window: int, prompt: int) -> web.Response:
    """OpenAI's answer to a prompt longer than the window (litellm maps it to ContextWindowExceededError)."""
    return _error(400, "invalid_request_error", f"This model's maximum context length is {window} tokens. "
                  f"However, your messages resulted in {prompt} tokens. Please reduce the length of the messages.",
                  code="context_length_exceeded")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m swarm_tasks.models.mock_server",
                                     description="Local OpenAI-compatible chat server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8901, help="0 picks a free port (printed at start)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds per reply (the minimum with --latency-max)")
    parser.add_argument("--latency-max", type=float, default=None, help="uniform latency between the two")
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered 429/500")
    parser.add_argument("--script", default=None, help="a Script JSON file to play, or py:module:function")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="refuse (401) any request without this bearer key")
    parser.add_argument("--context-window", type=int, default=None, help="refuse (400) longer prompts, in tokens")
    args = parser.parse_args(argv)
    latency: Latency = (args.latency, args.latency_max) if args.latency_max is not None else args.latency
    script: Script | str | None = None
    if args.script and args.script.startswith("py:"):
        script = args.script
    elif args.script:
        script = Script.load(Path(args.script).absolute())
    server = MockServer(latency_s=latency, error_rate=args.error_rate, script=script, host=args.host,
                        port=args.port, seed=args.seed, api_key=args.api_key, context_window=args.context_window)

    async def run() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            if task is not None:
                loop.add_signal_handler(sig, task.cancel)
        await server.start_async()
        print(f"mock server listening on {server.url}", flush=True)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        finally:
            await server.stop_async()

    asyncio.run(run())


if __name__ == "__main__":
    main()

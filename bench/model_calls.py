"""How much CPU a model call costs us: bare ``litellm.acompletion`` vs :class:`ModelGateway` on the mock server.

Not a test. Run the mock server in another process so its CPU is not counted here:

    python -m bench.model_calls --n 1000 --concurrency 1000 --latency 0.5

(without ``--url`` it starts ``python -m swarm_tasks.models.mock_server`` itself on a free port).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypedDict

from pydantic import SecretStr

from swarm_tasks.models.gateway import ModelGateway, litellm
from swarm_tasks.models.mock_server import raise_nofile_limit
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.settings import SwarmSettings

MODEL = "openai/mock-model"
_MESSAGES: list[ChatMessage] = [
    {"role": "system", "content": "You are a careful agent. agent_id: bench"},
    {"role": "user", "content": "Summarise the repository and then call finish."},
]
_WARMUP = 20  # the first calls build litellm's HTTP client and caches; not what we measure


class Measurement(TypedDict):
    path: str
    calls: int
    ok: int
    errors: int
    concurrency: int
    wall_s: float
    calls_per_s: float
    cpu_s: float
    cpu_ms_per_call: float


async def _run(path: str, call: Callable[[], Awaitable[object]], n: int, concurrency: int) -> Measurement:
    await asyncio.gather(*(call() for _ in range(_WARMUP)))
    gate = asyncio.Semaphore(concurrency)
    errors = 0

    async def one() -> None:
        nonlocal errors
        async with gate:
            try:
                await call()
            except Exception:
                errors += 1

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Measurement(path=path, calls=n, ok=n - errors, errors=errors, concurrency=concurrency,
                       wall_s=round(wall, 3), calls_per_s=round(n / wall, 1), cpu_s=round(cpu, 3),
                       cpu_ms_per_call=round(cpu * 1000 / n, 3))


async def measure_bare_litellm(url: str, n: int, concurrency: int) -> Measurement:
    """``n`` plain ``litellm.acompletion`` calls to the mock server at ``url``, ``concurrency`` at once."""
    raise_nofile_limit()

    async def call() -> object:
        return await litellm.acompletion(model=MODEL, messages=_MESSAGES, api_base=url, api_key="mock",
                                         max_retries=0)

    return await _run("litellm.acompletion", call, n, concurrency)


async def measure_gateway(url: str, n: int, concurrency: int, settings: SwarmSettings | None = None) -> Measurement:
    """The same through :meth:`ModelGateway.complete` (guard, retries, reply extraction, cost)."""
    raise_nofile_limit()
    base = settings or SwarmSettings(model_guard="local-only")
    gateway = ModelGateway(base.model_copy(update={"api_base": url, "api_key": SecretStr("mock")}))

    async def call() -> object:
        return await gateway.complete(MODEL, _MESSAGES)

    return await _run("ModelGateway.complete", call, n, concurrency)


@contextmanager
def spawned_server(latency_s: float) -> Iterator[str]:
    """A mock server in a child process on a free port; yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "swarm_tasks.models.mock_server", "--port", "0", "--latency", str(latency_s)],
        stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "listening on " not in line:
            raise RuntimeError(f"mock server did not start: {line!r}")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="CPU per model call: bare litellm vs ModelGateway.")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.5, help="mock server latency (when spawned)")
    parser.add_argument("--url", default=None, help="an already running mock server (…/v1)")
    args = parser.parse_args(argv)

    async def both(url: str) -> None:
        print(json.dumps(await measure_bare_litellm(url, args.n, args.concurrency)), flush=True)
        print(json.dumps(await measure_gateway(url, args.n, args.concurrency)), flush=True)

    if args.url:
        asyncio.run(both(args.url))
    else:
        with spawned_server(args.latency) as url:
            asyncio.run(both(url))


if __name__ == "__main__":
    main()

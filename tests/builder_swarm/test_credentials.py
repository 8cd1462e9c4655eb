"""A build on an HTTP remote that demands a password: the password reaches git, never the run record,
the events, any other Redis value, or the dashboard's API."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.api import RunHandle
from swarm_tasks.builder.job import BuildJob
from swarm_tasks.builder.workflow import submit_build
from swarm_tasks.dashboard import create_app
from swarm_tasks.runs import RunStatus
from swarm_tasks.settings import SwarmSettings
from tests.builder_swarm.helpers import drive, make_remote, show

SECRET = "s3cr3t-pw"
USER = "bot"


@pytest.fixture
def swarm_settings(swarm_settings: SwarmSettings, request: pytest.FixtureRequest) -> SwarmSettings:
    """The test settings; with ``env``, the credential comes from SWARM_GIT_USERNAME / SWARM_GIT_PASSWORD."""
    if getattr(request, "param", "url") == "env":
        return swarm_settings.model_copy(update={"git_username": USER, "git_password": SecretStr(SECRET)})
    return swarm_settings


class GitServer:
    """Smart HTTP git (``git http-backend``) over ``root``, behind basic auth as USER:SECRET."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.handle(self)

            def do_POST(self) -> None:
                server.handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def body(self, req: BaseHTTPRequestHandler) -> bytes:
        if req.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while size := int(req.rfile.readline().strip() or b"0", 16):
                data += req.rfile.read(size)
                req.rfile.readline()
            req.rfile.readline()
            return data
        return req.rfile.read(int(req.headers.get("Content-Length") or 0))

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        header = req.headers.get("Authorization", "")
        given = base64.b64decode(header.split()[1]).decode() if header.startswith("Basic ") else None
        if given is not None:
            self.seen.append(given)
        if given != f"{USER}:{SECRET}":
            req.send_response(401)
            req.send_header("WWW-Authenticate", 'Basic realm="git"')
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        body = self.body(req)
        path, _, query = req.path.partition("?")
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "REQUEST_METHOD": req.command, "PATH_INFO": path, "QUERY_STRING": query, "REMOTE_USER": USER,
               "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": req.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "GIT_PROTOCOL": req.headers.get("Git-Protocol", ""),
               "HTTP_CONTENT_ENCODING": req.headers.get("Content-Encoding", "")}
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False,
                              timeout=60)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        req.send_response(status)
        for name, value in headers:
            req.send_header(name, value)
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    server = GitServer(tmp_path / "served")
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def redis_values(client: SwarmClient) -> dict[str, str]:
    """Every key of the test Redis and what it holds, as text."""
    r = client.client
    out: dict[str, str] = {}
    for raw in r.scan_iter(count=1000):
        kind = r.type(raw).decode()
        value: object
        if kind == "string":
            value = r.get(raw)
        elif kind == "hash":
            value = r.hgetall(raw)
        elif kind == "list":
            value = r.lrange(raw, 0, -1)
        elif kind == "set":
            value = r.smembers(raw)
        elif kind == "zset":
            value = r.zrange(raw, 0, -1)
        elif kind == "stream":
            value = r.xrange(raw)
        else:
            value = kind
        out[raw.decode()] = repr(value)
    return out


def served(settings: SwarmSettings, client: SwarmClient, run_id: str) -> str:
    """What the dashboard's API answers about the run, its agents and its board, concatenated."""
    async def go() -> str:
        async with TestClient(TestServer(create_app(settings, client))) as http:
            texts = []
            for path in ("/api/runs", f"/api/runs/{run_id}", f"/api/runs/{run_id}/agents",
                         f"/api/runs/{run_id}/board"):
                resp = await http.get(path)
                assert resp.status == 200, path
                texts.append(await resp.text())
            for agent in json.loads(texts[2])["agents"]:
                resp = await http.get(f"/api/runs/{run_id}/agents/{agent['id']}")
                assert resp.status == 200
                texts.append(await resp.text())
            return "\n".join(texts)
    return asyncio.run(asyncio.wait_for(go(), 60))


@pytest.mark.parametrize("swarm_settings", ["url", "env"], indirect=True)
def test_a_build_on_a_password_protected_remote_never_stores_or_shows_the_password(
        local, swarm_settings: SwarmSettings, git_server: GitServer, tmp_path: Path) -> None:
    where = "env" if swarm_settings.git_password is not None else "url"
    make_remote(tmp_path / "served", {"a.py": "a = 1\n", "b.py": "b = 1\n", "README.md": "hi\n"})
    base = f"http://127.0.0.1:{git_server.port}/remote.git"
    url = f"http://{USER}:{SECRET}@127.0.0.1:{git_server.port}/remote.git" if where == "url" else base
    job = BuildJob(repo=url, goal="bump", codemod="sed -i 's/ = 1/ = 2/' {path}", files=("*.py",), builders=2,
                   max_cycles=1)
    services: SwarmClient = local.services
    run = submit_build(services, job)

    stored = services.runs.get(run.id)
    assert stored.spec["repo"] == (f"http://{USER}@127.0.0.1:{git_server.port}/remote.git" if where == "url" else base)
    values = redis_values(services)
    holding = sorted(k for k, v in values.items() if SECRET in v)
    # Only the run's own secret key holds a password from the URL; one from the settings is never stored.
    assert holding == ([services.run(run.id).state.keys.record("secret", "git")] if where == "url" else [])
    assert SECRET not in served(swarm_settings, services, run.id)

    record = drive(local, run.id)
    assert record.status is RunStatus.COMPLETED, record.reason
    assert show(tmp_path / "served" / "remote.git", "a.py") == "a = 2"  # the workers pushed through the auth
    assert show(tmp_path / "served" / "remote.git", "b.py") == "b = 2"
    assert git_server.seen and set(git_server.seen) == {f"{USER}:{SECRET}"}
    assert [k for k, v in redis_values(services).items() if SECRET in v] == []  # the ended build forgot it
    events = services.client.xrange(services.run(run.id).state.keys.events())
    assert events and SECRET not in repr(events)
    text = served(swarm_settings, services, run.id)
    assert SECRET not in text and f"127.0.0.1:{git_server.port}/remote.git" in text


def test_a_cancelled_build_forgets_the_password_from_its_url(local, swarm_settings: SwarmSettings,
                                                            git_server: GitServer, tmp_path: Path) -> None:
    make_remote(tmp_path / "served", {"a.py": "a = 1\n"})
    url = f"http://{USER}:{SECRET}@127.0.0.1:{git_server.port}/remote.git"
    job = BuildJob(repo=url, goal="bump", codemod="sed -i 's/ = 1/ = 2/' {path}", builders=1, max_cycles=1)
    services: SwarmClient = local.services
    run = submit_build(services, job)
    assert [k for k, v in redis_values(services).items() if SECRET in v]
    assert RunHandle(services, run.id).cancel("stop")
    assert services.runs.get(run.id).status is RunStatus.CANCELLED
    assert [k for k, v in redis_values(services).items() if SECRET in v] == []

"""Who may talk to the dashboard: a foreign Host is refused (DNS rebinding), a credential is asked for
when one is set, and `swarm dashboard` refuses any address but loopback without one. The last part runs
the real command as a user would and talks to it over HTTP."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from coordination.errors import ConfigurationError
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.dashboard.guard import check_bind, host_name, is_loopback
from swarm_tasks.settings import SwarmSettings
from tests.dashboard.test_api import with_client

CREDENTIAL = "ops:dashboard-pw-4c1e"


def basic(credential: str) -> str:
    return "Basic " + base64.b64encode(credential.encode()).decode()


def test_a_foreign_host_is_refused_and_local_names_and_addresses_are_served(staged, swarm_settings, dash_client):
    run_id = staged.run.id

    async def check(http: TestClient) -> dict[str, int]:
        statuses = {}
        for host in ("127.0.0.1:8765", "localhost:8765", "LOCALHOST.", "[::1]:8765", "10.1.2.3", "swarm.example",
                     "evil.example:8765", "127.0.0.1.evil.example", "localhost.evil.example", ""):
            for path in ("/", "/api/runs", f"/api/runs/{run_id}", f"/api/runs/{run_id}/events?after=0-0"):
                if path.endswith("0-0") and host in ("127.0.0.1:8765", "localhost:8765"):
                    continue  # an event stream stays open: the refusals are what matter here
                resp = await http.get(path, headers={"Host": host})
                statuses[f"{host} {path}"] = resp.status
                if resp.status == 421:
                    assert "does not answer to Host" in (await resp.json())["error"]
                resp.release()
        health = await http.get("/healthz", headers={"Host": "evil.example"})
        statuses["healthz"] = health.status
        assert await health.text() == "ok"
        return statuses

    settings = swarm_settings.model_copy(update={"dashboard_hosts": ["swarm.example"]})
    statuses = with_client(settings, SwarmClient.create(settings, dash_client.client), check)
    refused = {k for k, v in statuses.items() if v == 421}
    assert refused == {k for k in statuses if k.split(" ")[0] in (
        "evil.example:8765", "127.0.0.1.evil.example", "localhost.evil.example", "")}
    assert all(v == 200 for k, v in statuses.items() if k not in refused)


def test_a_set_credential_is_asked_for_even_on_loopback(staged, swarm_settings, dash_client):
    async def check(http: TestClient) -> None:
        for path in ("/", "/static/app.js", "/api/runs", f"/api/runs/{staged.run.id}/board"):
            bare = await http.get(path)
            assert bare.status == 401 and bare.headers["WWW-Authenticate"].startswith("Basic ")
            wrong = await http.get(path, headers={"Authorization": basic("ops:wrong")})
            assert wrong.status == 401
            right = await http.get(path, headers={"Authorization": basic(CREDENTIAL)})
            assert right.status == 200, path
        foreign = await http.get("/api/runs", headers={"Host": "evil.example", "Authorization": basic(CREDENTIAL)})
        assert foreign.status == 421  # a credential does not make a foreign Host acceptable
        assert (await http.get("/healthz")).status == 200

    settings = swarm_settings.model_copy(update={"dashboard_basic_auth": SecretStr(CREDENTIAL)})
    with_client(settings, SwarmClient.create(settings, dash_client.client), check)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
    ("::", False), ("10.0.0.5", False), ("192.0.2.10", False), ("dashboard.internal", False)])
def test_only_loopback_binds_go_without_a_credential(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    bare = SwarmSettings(redis_url="redis://127.0.0.1:1/0")
    if loopback:
        check_bind(host, bare)
    else:
        with pytest.raises(ConfigurationError, match=r"refusing to serve the dashboard on .* without authentication"):
            check_bind(host, bare)
    check_bind(host, bare.model_copy(update={"dashboard_basic_auth": SecretStr(CREDENTIAL)}))


@pytest.mark.parametrize(("header", "name"), [("Example.COM:80", "example.com"), ("[::1]:8765", "::1"),
                                              ("::1", "::1"), ("host.", "host"), ("[bad", "")])
def test_host_header_names(header: str, name: str) -> None:
    assert host_name(header) == name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, **headers: str) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_swarm_dashboard_command_needs_a_credential_off_loopback_and_answers_its_hosts(
        redis_url: str, tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SWARM_")},
           "SWARM_REDIS_URL": redis_url, "SWARM_STATE_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "swarm_tasks.cli", "dashboard", "--host", "0.0.0.0", "--port"]
    refused = subprocess.run([*command, str(_free_port())], env=env, capture_output=True, text=True, timeout=60,
                             check=False)
    assert refused.returncode == 2 and "without authentication" in refused.stderr, refused
    assert "SWARM_DASHBOARD_BASIC_AUTH" in refused.stderr and "Traceback" not in refused.stderr

    port = _free_port()
    server = subprocess.Popen([*command, str(port)], env={**env, "SWARM_DASHBOARD_BASIC_AUTH": CREDENTIAL,
                                                       "SWARM_DASHBOARD_HOSTS": '["swarm.internal"]'},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"{url}/healthz") == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, server.communicate()[1]
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.1)
        assert _get(f"{url}/api/runs") == 401
        assert _get(f"{url}/api/runs", Authorization=basic(CREDENTIAL)) == 200
        assert _get(f"{url}/api/runs", Authorization=basic(CREDENTIAL), Host="attacker.example") == 421
        # SWARM_DASHBOARD_HOSTS: the names it answers to besides addresses and localhost
        assert _get(f"{url}/api/runs", Authorization=basic(CREDENTIAL), Host="swarm.internal:8765") == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stderr:
            server.stderr.close()

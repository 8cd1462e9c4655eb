"""The quickstart's runs are still there after its command exited: with no SWARM_REDIS_URL, `swarm status`,
`watch`, `report`, `workers` and `dashboard` start the state directory's embedded Redis again on its data
(or join the one a running command keeps), and a cancelled review has its partial report."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.cli.scripts import HOLD_FILE
from tests.cli.test_cli import swarm
from tests.deploy.conftest import Proc, free_port, http_get, wait_for
from tests.review.helpers import EXAMPLE
from tests.review.test_reports import validate_sarif

# Two reviews each (75 s alone on an idle 2-core box): the default 120 s ran out under CI's three test processes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]
SLOW_MODEL = "scripted/py:tests.cli.scripts:uneven_scanner"  # scans of shop/ take 4 s a reply: mid-run for a while


def quickstart_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}  # as the README's quickstart
    env.update(SWARM_STATE_DIR=str(tmp_path / "state"), SWARM_MODEL_GUARD="local-only", COLUMNS="120")
    return env


def servers_of(state: Path) -> list[int]:
    """redis-server processes serving this state directory's data (Redis works in its data directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"redis-server" in (entry / "cmdline").read_bytes() \
                    and Path(os.readlink(entry / "cwd")) == state / "redis":
                found.append(int(entry.name))
        except OSError:  # gone, or a zombie
            continue
    return found


def in_chromium(url: str, snapshot: dict) -> None:
    """The ended run in the live view, in headless Chromium (where Debian's chromium is installed): its
    outcome in the header, every agent drawn, the report's merged findings, linked to the report."""
    from tests.dashboard.test_browser import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        return  # tests/dashboard skip themselves then too; the API answers were checked above
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            expect(page.locator("#run-status")).to_have_text("completed", timeout=30_000)
            agents = sum(snapshot["agents"].values())
            page.wait_for_function(f"window.__swarm && window.__swarm.nodeCount === {agents}", timeout=30_000)
            findings = snapshot["result"]["findings"]
            expect(page.locator("#findings-head")).to_contain_text(f"{findings} findings (merged", timeout=30_000)
            expect(page.locator("a[href$='report.sarif']")).to_have_count(1)
            assert errors == []
        finally:
            chromium.close()


def test_a_quickstart_run_is_read_reported_and_shown_after_its_command_exited(tmp_path: Path) -> None:
    env = {**quickstart_env(tmp_path), "COLUMNS": "80"}
    done = swarm("review", str(EXAMPLE), env=env)  # the README's quickstart, on an 80-column terminal
    assert done.returncode == 0, done.stderr
    found = re.search(r"^review (review-\S+) completed$", done.stdout, re.M)  # the id whole, on its own line
    assert found, done.stdout
    run_id = found.group(1)
    summary = [line for line in done.stdout.splitlines() if not line.startswith("report: ")]
    assert all(len(line) <= 80 for line in summary), done.stdout  # no title broken over lines
    assert re.search(r"^report: \S+/report\.md ", done.stdout, re.M)  # the path unbroken, to copy

    status = swarm("status", run_id, "--json", env=env)  # the command and its Redis are gone: started again
    assert status.returncode == 0, status.stderr
    snapshot = json.loads(status.stdout)
    assert snapshot["status"] == "completed" and f"{snapshot['result']['findings']} findings (merged)" in done.stdout
    assert snapshot["findings"] == {"merged": True, "by_severity": snapshot["result"]["by_severity"]}
    assert run_id in {r["id"] for r in json.loads(swarm("status", "--json", env=env).stdout)}
    watched = swarm("watch", run_id, "--json", env=env)
    assert watched.returncode == 0 and json.loads(watched.stdout)["status"] == "completed"
    sarif = swarm("report", run_id, "--format", "sarif", env=env)
    assert sarif.returncode == 0, sarif.stderr
    validate_sarif(sarif.stdout)
    assert json.loads(swarm("workers", "--json", env=env).stdout) == []  # its workers ended with it

    port = free_port()
    dashboard = Proc([sys.executable, "-m", "swarm_tasks.cli", "dashboard", "--port", str(port)], env,
                     tmp_path / "dashboard.log")
    try:
        body = wait_for(lambda: (r := http_get(f"http://127.0.0.1:{port}/api/runs"))[0] == 200 and r[1], 60,
                        "the dashboard", alive=dashboard.dead)
        assert run_id in body
        in_chromium(f"http://127.0.0.1:{port}/#run={run_id}", snapshot)
        # While the dashboard keeps the server, another command joins it instead of starting its own.
        assert json.loads(swarm("status", run_id, "--json", env=env).stdout)["status"] == "completed"
        url = swarm("redis-url", env=env)  # what a worker elsewhere, or Flower, needs: the whole URL
        assert url.returncode == 0 and "server.json, mode 0600" in url.stderr
        client = redis.Redis.from_url(url.stdout.strip())
        assert client.ping()
        client.close()
        password = url.stdout.strip().split(":")[2].split("@")[0]
        # A worker started with nothing set joins the same server, and says how others can find it.
        worker = Proc([sys.executable, "-m", "celery", "-A", "swarm_tasks", "worker", "-n", "joiner@%h", "-Q",
                       "control", "--without-gossip", "--without-mingle", "-l", "WARNING"], env,
                      tmp_path / "joiner.log")
        try:
            wait_for(lambda: "joiner@" in " ".join(w["worker"] for w in json.loads(
                swarm("workers", "--json", env=env).stdout)), 90, "the worker to join", alive=worker.dead)
        finally:
            worker.stop()
        said = (tmp_path / "joiner.log").read_text()
        assert "`swarm redis-url` prints its URL with the password" in said and "server.json" in said
        assert "redis://:***@127.0.0.1:" in said and password not in said
    finally:
        dashboard.stop(signal.SIGINT)
    assert "swarm dashboard on http://127.0.0.1:" in dashboard.tail()
    deadline = time.monotonic() + 30
    while servers_of(tmp_path / "state") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not servers_of(tmp_path / "state"), "the embedded Redis outlived the last command using it"


def test_a_cancelled_quickstart_review_has_its_partial_report(tmp_path: Path) -> None:
    env = quickstart_env(tmp_path)
    hold = tmp_path / "state" / HOLD_FILE  # the shop scans wait until the run is interrupted
    hold.parent.mkdir(parents=True, exist_ok=True)
    hold.write_text("hold")
    # Ctrl-C as a terminal sends it: a signal the test process happens to ignore (something earlier in the
    # suite set SIGINT to SIG_IGN) would stay ignored in the child, and the review would run to its end.
    cli = subprocess.Popen([sys.executable, "-m", "swarm_tasks.cli", "review", str(EXAMPLE), "--json",
                            "--scanner-model", SLOW_MODEL], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    try:
        deadline = time.monotonic() + 120
        while not any((tmp_path / "state" / "workspaces").glob("*/*")):  # a model agent used a tool: mid-run
            assert cli.poll() is None and time.monotonic() < deadline, cli.communicate(timeout=5)
            time.sleep(0.2)
        listing = json.loads(swarm("status", "--json", env=env).stdout)  # joins the running command's Redis
        (running,) = [r for r in listing if r["status"] == "running"]
        totals: dict[str, int] = {}  # a phase's total, once final, never moves (no bar whose end jumps)
        while True:
            snapshot = json.loads(swarm("status", running["id"], "--json", env=env).stdout)
            for phase in snapshot["phases"]:
                if phase["final"]:
                    assert totals.setdefault(phase["phase"], phase["total"]) == phase["total"], snapshot["phases"]
            scanned = sum(p["done"] for p in snapshot["phases"] if p["phase"] == "scan")
            if snapshot["agents"]["done"] >= 4 and scanned >= 3:  # the files outside shop/ (shop's are held)
                break
            assert cli.poll() is None and time.monotonic() < deadline  # some scans done, the rest under way
            time.sleep(0.2)
        assert totals.get("scan") == 13 and snapshot["findings"]["merged"] is False
        assert snapshot["live_tokens"] > 0  # the scanners' replies, counted as they arrive
        mid = swarm("status", running["id"], env={**env, "COLUMNS": "80"}).stdout  # the view, mid-run
        assert all(len(line) <= 80 for line in mid.splitlines()), mid
        assert "findings so far (raw, not merged)" in mid and "agents/s" in mid and "ETA" in mid, mid
        assert re.search(r"^\W*scan\s+\d+/13\b", mid, re.M) and " tokens" in mid, mid
        cli.send_signal(signal.SIGINT)
        _out, err = cli.communicate(timeout=90)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        hold.write_text("go")  # the retry below finishes them quickly
    assert cli.returncode == 130 and f"cancelled run {running['id']}" in err, err
    assert f"swarm report {running['id']}" in err  # it says where the partial report is

    report = swarm("report", running["id"], "--format", "json", env=env)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["outcome"]["status"] == "partial" and "cancelled" in data["outcome"]["reason"]
    assert data["files_scanned"] >= 3 and data["agents"] and data["findings"]
    assert {a["status"] for a in data["agents"]} <= {"done", "cancelled"}  # none left "ready" for a dead worker
    markdown = swarm("report", running["id"], env=env)
    assert "PARTIAL review" in markdown.stdout and "was cancelled (interrupted from the terminal)" in markdown.stdout
    again = json.loads(swarm("report", running["id"], "--format", "json", env=env).stdout)
    assert again["finished_at"] == data["finished_at"]  # built once, then read back: every reader gets the same

    # Listed, read and finished later: the cancelled agents are started over in the same run.
    stopped = json.loads(swarm("agents", running["id"], "--stopped", "--json", env=env).stdout)
    assert stopped and {(a["status"], a["reason_class"]) for a in stopped} == {("cancelled", "cancelled")}
    assert json.loads(swarm("agents", running["id"], "--failed", "--json", env=env).stdout) == []
    shown = swarm("logs", running["id"], stopped[0]["agent_id"], env=env)
    assert shown.returncode == 0 and f"agent {stopped[0]['agent_id']}" in shown.stdout
    assert "transcript (" in shown.stdout and "agent.cancelled" in shown.stdout
    nothing = swarm("retry", running["id"], "--failed", env=env)
    assert nothing.returncode == 1 and "no agent failed, nothing to retry" in nothing.stderr  # cancelled is not failed

    finished = swarm("retry", running["id"], "--json", env=env, timeout=400)
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)
    assert result["status"] == "completed" and result["files_scanned"] == result["files_inventoried"]
    rebuilt = json.loads(swarm("report", running["id"], "--format", "json", env=env).stdout)
    assert rebuilt["outcome"]["status"] == "completed" and len(rebuilt["findings"]) == result["findings"]
    everyone = json.loads(swarm("agents", running["id"], "--json", env=env).stdout)
    assert {a["status"] for a in everyone} == {"done"} and {a["retries"] for a in everyone} == {0, 1}


def test_a_quickstart_review_killed_mid_run_is_resumed_to_its_end_later(tmp_path: Path) -> None:
    env = quickstart_env(tmp_path)
    cli = subprocess.Popen([sys.executable, "-m", "swarm_tasks.cli", "review", str(EXAMPLE), "--json",
                            "--scanner-model", SLOW_MODEL], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        deadline = time.monotonic() + 120
        while not any((tmp_path / "state" / "workspaces").glob("*/*")):
            assert cli.poll() is None and time.monotonic() < deadline, cli.communicate(timeout=5)
            time.sleep(0.2)
        (run,) = json.loads(swarm("status", "--json", env=env).stdout)
        cli.kill()  # kill -9: no cancel, its workers and Redis die with it; the run stays "running"
        cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
    stalled = json.loads(swarm("status", run["id"], "--json", env=env).stdout)
    assert stalled["status"] == "running"  # and nothing runs it: its command is gone
    resumed = swarm("resume", run["id"], "--json", env=env, timeout=400)  # local workers carry it on
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["status"] == "completed" and result["files_scanned"] == result["files_inventoried"] == 13

"""The live view in a real headless browser: Debian's chromium, driven by Playwright (its own browser
builds are never downloaded). A scripted run grows while the page is open; the page must follow it
over its event stream, open an agent's transcript on a real mouse click, and stay smooth with 5,000
agents. Screenshots and frame times are kept in test-artifacts/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from swarm_tasks.agents.children import ChildRequest, spawn
from swarm_tasks.agents.state import AgentStatus, Usage
from tests.dashboard.conftest import tree_specs
from tests.dashboard.scripts import LEADS, WORKERS_PER_LEAD

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOTAL = 1 + LEADS + LEADS * WORKERS_PER_LEAD
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-extensions",
                 "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed here "
                                "(apt-get install -y chromium): the dashboard's browser tests need a real browser")


@dataclass
class Browser:
    page: object
    errors: list[str] = field(default_factory=list)

    def wait(self, expression: str, timeout_s: float = 30.0) -> object:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            return self.page.wait_for_function(expression, timeout=timeout_s * 1000)  # type: ignore[attr-defined]
        except PlaywrightTimeout:
            state = self.js("""() => ({notice: (document.querySelector('#notice') || {}).textContent,
                nodes: window.__swarm && window.__swarm.nodeCount, live: window.__swarm && window.__swarm.live,
                panel: window.__swarm && window.__swarm.panelAgent})""")
            raise AssertionError(f"page never reached {expression!r} in {timeout_s}s: {state}, "
                                 f"errors {self.errors}") from None

    def js(self, expression: str, arg: object = None) -> object:
        return self.page.evaluate(expression, arg)  # type: ignore[attr-defined]


@pytest.fixture
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = chromium.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        b = Browser(page)
        page.on("pageerror", lambda exc: b.errors.append(f"page error: {exc}"))
        page.on("console", lambda msg: b.errors.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" else None)
        yield b
        context.close()
        chromium.close()


def test_graph_grows_live_and_a_click_shows_the_transcript(staged, dashboard, browser):
    other = staged.local.start(tree_specs(), [ChildRequest("planner", "another review", key="root")],
                               title="another run")
    page = browser.page
    page.goto(f"{dashboard.url}/#run={staged.run.id}")
    browser.wait("window.__swarm && window.__swarm.nodeCount === 1 && window.__swarm.live")
    browser.js("window.__marker = 'same page'")  # gone if the page ever reloads

    staged.step()  # the planner's first turn spawns the leads
    browser.wait("window.__swarm.nodeCount === 4")
    staged.steps(LEADS)  # each lead spawns its workers
    browser.wait(f"window.__swarm.nodeCount === {TOTAL}")
    staged.drain()  # everyone finishes: statuses change, nodes recolour
    browser.wait(f"window.__swarm.statuses().done === {TOTAL}")
    # Findings arrive as events (the review workflow emits them): the counters follow.
    events = staged.local.services.run(staged.run.id).state.events
    for i, severity in enumerate(("high", "high", "low")):
        events.emit("finding", f"f-{i}", {"severity": severity, "file": "pkg/a.py", "line": i, "rule": "r"})
    browser.wait("document.querySelector('#counters').textContent.includes('high2')")
    assert browser.js("window.__marker") == "same page"
    assert page.locator("#node-count").get_attribute("data-count") == str(TOTAL)
    assert "done" in page.locator("#counters").inner_text()

    # A real mouse click on a worker's node, once the layout has settled.
    browser.wait("window.__swarm.settled()", timeout_s=60)
    target = browser.js("window.__swarm.clearNode('worker')")
    pos = browser.js("(id) => window.__swarm.screenPosition(id)", target["id"])
    assert browser.js("([x, y]) => window.__swarm.nodeAtScreen(x, y)", [pos["x"], pos["y"]]) == target["id"]
    page.mouse.move(pos["x"], pos["y"])
    page.mouse.click(pos["x"], pos["y"])
    browser.wait(f"window.__swarm.panelAgent === {json.dumps(target['id'])}")
    assert page.locator("#agent-id").inner_text() == target["id"]
    transcript = page.locator("#transcript").inner_text()
    assert "inspect module" in transcript and "list_files" in transcript
    panel = page.locator("#agent-panel").inner_text()
    assert "suspicious call in module" in panel and "findings (1)" in panel.lower()  # headings are upper-cased by CSS

    ARTIFACTS.mkdir(exist_ok=True)
    page.mouse.move(5, 880)  # no hover tooltip over the picture
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"))

    # The test hook selects too: the root shows its sub-agents.
    root = next(a for a in browser.js("window.__swarm.nodeIds()")
                if staged.agents().get(a).parent is None)
    browser.js("(id) => window.__swarm.select(id)", root)
    browser.wait(f"window.__swarm.panelAgent === {json.dumps(root)}")
    assert f"sub-agents ({LEADS})" in page.locator("#agent-panel").inner_text().lower()

    # Several runs: pick the other one in the selector; the page follows it without reloading.
    others = sum(staged.local.agents(other.id).counts().values())  # the drain above ran it too
    page.select_option("#runs", other.id)
    browser.wait(f"window.__swarm.run === {json.dumps(other.id)} && window.__swarm.nodeCount === {others}")
    assert browser.js("window.__marker") == "same page" and "#run=" + other.id in page.url
    assert browser.errors == []


def test_unknown_run_in_the_page_shows_a_clear_message(staged, dashboard, browser):
    browser.page.goto(f"{dashboard.url}/#run=no-such-run")
    browser.wait("document.querySelector('#notice') && !document.querySelector('#notice').hidden")
    assert "no run 'no-such-run'" in browser.page.locator("#notice").inner_text()
    assert [e for e in browser.errors if "404" not in e] == []  # the failed fetch itself is logged by chromium


def _big_run(local, n_leads: int = 25, per_lead: int = 199):
    """1 + 25 + 25 * 199 = 5,001 agent records made directly (no model), with mixed statuses and usage."""
    services = local.services
    run = services.runs.create("load", title="5,000 agents")
    ctx = services.run(run.id)
    ctx.specs.put_all(tree_specs())
    (root,) = spawn(ctx.agents, ctx.specs.get, [ChildRequest("planner", "root", key="root")], limits=run.limits,
                    parent=None).started
    leads = spawn(ctx.agents, ctx.specs.get, [ChildRequest("lead", f"lead area {i}") for i in range(n_leads)],
                  limits=run.limits, parent=root, call_id="c0").started
    workers = []
    for lead in leads:
        workers += spawn(ctx.agents, ctx.specs.get, [ChildRequest("worker", f"inspect module {j}")
                                                     for j in range(per_lead)],
                         limits=run.limits, parent=lead, call_id="c1").started
    for i, worker in enumerate(workers[: len(workers) * 2 // 3]):
        agent, version = ctx.agents.load(worker.id)
        used = Usage(prompt_tokens=500 + 37 * (i % 200), completion_tokens=50, model_calls=2, cost_usd=0.0)
        status = AgentStatus.FAILED if i % 23 == 0 else AgentStatus.RUNNING if i % 7 == 0 else AgentStatus.DONE
        ctx.agents.save(agent, version, agent.evolve(status=status, usage=used), usage=used)
    return run, ctx, leads


def test_five_thousand_agents_render_and_stay_responsive(local, dashboard, browser):
    started = time.monotonic()
    run, ctx, leads = _big_run(local)
    created_s = time.monotonic() - started
    total = sum(ctx.agents.counts().values())
    assert total == 5001

    started = time.monotonic()
    browser.page.goto(f"{dashboard.url}/#run={run.id}")
    browser.wait(f"window.__swarm.nodeCount === {total} && window.__swarm.live", timeout_s=90)
    loaded_s = time.monotonic() - started

    # Frames while the layout settles from its first placement.
    browser.js("window.__swarm.resetFrameStats()")
    browser.page.wait_for_timeout(3000)
    settling = browser.js("window.__swarm.frameStats()")

    # Frames while 200 more agents spawn into the open page.
    browser.js("window.__swarm.resetFrameStats()")
    spawn(ctx.agents, ctx.specs.get, [ChildRequest("worker", f"late module {j}") for j in range(200)],
          limits=run.limits, parent=leads[0], call_id="late")
    browser.wait(f"window.__swarm.nodeCount === {total + 200}", timeout_s=60)
    browser.page.wait_for_timeout(1500)
    growing = browser.js("window.__swarm.frameStats()")

    some = browser.js("window.__swarm.clearNode('worker')")["id"]
    browser.js("(id) => window.__swarm.select(id)", some)
    browser.wait(f"window.__swarm.panelAgent === {json.dumps(some)}")

    ARTIFACTS.mkdir(exist_ok=True)
    browser.page.screenshot(path=str(ARTIFACTS / "dashboard-5000.png"))
    report = {"agents": total + 200, "create_records_s": round(created_s, 2), "page_load_s": round(loaded_s, 2),
              "settling_frame_ms": settling, "growing_frame_ms": growing}
    (ARTIFACTS / "dashboard-frames.json").write_text(json.dumps(report, indent=2))
    print("\ndashboard with 5,000 agents:", json.dumps(report))
    # Generous bounds: the machine is shared and chromium renders in software here.
    assert settling["frames"] > 5 and growing["frames"] > 5
    assert settling["median"] < 100 and growing["median"] < 100
    assert browser.errors == []


def test_the_page_works_behind_its_credential(staged, swarm_settings, dash_client):
    """With SWARM_DASHBOARD_BASIC_AUTH the browser asks once; the page, its API calls and its event
    stream all carry the credential, and the graph still follows the run live."""
    from pydantic import SecretStr

    from swarm_tasks.agents.services import SwarmClient
    from swarm_tasks.dashboard import create_app
    from tests.dashboard.conftest import ServerThread

    settings = swarm_settings.model_copy(update={"dashboard_basic_auth": SecretStr("ops:browser-pw-77")})
    server = ServerThread(lambda: create_app(settings, SwarmClient.create(settings, dash_client.client))).start()
    sync_api = pytest.importorskip("playwright.sync_api")
    try:
        with sync_api.sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            anonymous = chromium.new_context()
            assert anonymous.request.get(f"{server.url}/").status == 401
            anonymous.close()
            context = chromium.new_context(http_credentials={"username": "ops", "password": "browser-pw-77"})
            browser = Browser(context.new_page())
            browser.page.on("pageerror", lambda exc: browser.errors.append(f"page error: {exc}"))
            browser.page.goto(f"{server.url}/#run={staged.run.id}")
            browser.wait("window.__swarm && window.__swarm.nodeCount === 1 && window.__swarm.live")
            staged.step()  # the planner spawns its leads: they arrive over the authenticated event stream
            browser.wait("window.__swarm.nodeCount === 4")
            assert browser.errors == []
            chromium.close()
    finally:
        server.stop()

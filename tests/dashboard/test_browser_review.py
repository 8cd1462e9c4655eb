"""A review in the live view, in headless Chromium: a banner while it waits on a queue nobody consumes,
each node's file on hover, state colours that no role colour can be taken for, search and filters, the
findings (raw while it runs, merged once the report is written) linked to the nodes that found them and
to the report, the outcome and reason in the header, and the task board's note for reviews; a review whose
security reviewers all failed: its outcome and reason in the header (not a grey "completed"), a banner that
counts the failed agents and shows them, the state filter, and the selected node's file and state beside it."""

from __future__ import annotations

import json

from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.review.job import ReviewJob
from swarm_tasks.review.workflow import on_idle, submit_review
from swarm_tasks.sources import SourceSpec
from tests.dashboard.conftest import SCRIPTS
from tests.dashboard.test_browser import ARTIFACTS, browser, pytestmark  # noqa: F401 - a fixture, and the chromium skip
from tests.review.helpers import write_tree

SCRIPTED = "scripted/py:swarm_tasks.review.scripted:reviewer"

FILES = {
    "app/db.py": '"""Orders."""\n\n\ndef find(cur, name):\n    """Find."""\n'
                 '    cur.execute("SELECT * FROM o WHERE n = \'%s\'" % name)\n',
    "app/run.py": '"""Runner."""\nimport os\n\n\ndef run(cmd):\n    """Run."""\n    os.system(cmd)\n',
    "app/util.py": '"""Helpers."""\n\n\ndef add(a, b):\n    """Add."""\n    return a + b\n',
}


def _distance(a: str, b: str) -> float:
    x, y = (tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in (a, b))
    return sum((p - q) ** 2 for p, q in zip(x, y, strict=True)) ** 0.5


def test_a_review_in_the_live_view(local, dashboard, browser, tmp_path):  # noqa: F811 - browser is the fixture
    from playwright.sync_api import expect  # each panel is drawn on its own (throttled) schedule: wait on its text

    repo = write_tree(tmp_path / "repo", FILES)
    # a model in the review (the sub-reviewers' here) makes each scan and reviewer a node of its own
    run = submit_review(local.services, ReviewJob(source=SourceSpec(location=str(repo)), title="review of app",
                                                  models={"subreviewer": SCRIPTED}))
    page = browser.page
    page.goto(f"{dashboard.url}/#run={run.id}")
    browser.wait("window.__swarm && window.__swarm.nodeCount === 1 && window.__swarm.live")
    # No worker anywhere: the inventory waits on the scan queue, and the banner says so.
    browser.wait("!document.querySelector('#banner').hidden", timeout_s=30)
    expect(page.locator("#banner")).to_contain_text("queue scan has no consumer")
    expect(page.locator("#board")).to_contain_text("A review does not use the task board")
    early = page.request.get(f"{dashboard.url}/api/runs/{run.id}/report.md")
    assert early.status == 404 and "no report yet" in early.json()["error"]

    local.drain(max_steps=2000)  # every agent runs; the findings arrive raw, as the reviewers report them
    browser.wait("document.querySelector('#findings-head') && "
                 "document.querySelector('#findings-head').textContent.includes('raw findings so far')")
    expect(page.locator("#counters")).to_contain_text("findings so far (raw, not merged)")

    # Labels: which file a node works on, on hover.
    browser.wait("window.__swarm.settled()", timeout_s=60)
    scan = next(i for i in browser.js("window.__swarm.nodeIds()")
                if browser.js("(id) => window.__swarm.label(id)", i) == "app/db.py")
    pos = browser.js("(id) => window.__swarm.screenPosition(id)", scan)
    page.mouse.move(pos["x"], pos["y"])
    browser.wait("!document.querySelector('#tooltip').hidden")
    assert page.locator("#tooltip-label").inner_text() == "app/db.py"

    # State colours are not role colours: nothing finished can be read as waiting or stopped.
    colours = browser.js("window.__swarm.colours()")
    states = [c for c in colours["states"].values() if c]
    assert min(_distance(r, s) for r in colours["roles"].values() for s in states) > 60

    # Search and filters dim what they leave out.
    page.fill("#search", "app/run.py")
    matching = browser.js("window.__swarm.matching()")
    assert matching and all(browser.js("(id) => window.__swarm.label(id)", i) == "app/run.py" for i in matching)
    page.fill("#search", "")
    page.select_option("#filter-role", "reviewer")
    reviewers = browser.js("window.__swarm.matching()")
    assert reviewers and len(reviewers) < browser.js("window.__swarm.nodeCount")
    page.select_option("#filter-role", "")
    assert len(browser.js("window.__swarm.matching()")) == browser.js("window.__swarm.nodeCount")

    # The end: the header says how it ended, the findings are the report's merged ones, linked both ways.
    on_idle(local.services, local.services.runs.get(run.id))
    record = local.services.runs.get(run.id)
    browser.wait(f"document.querySelector('#run-status').textContent === {json.dumps(record.status.value)}")
    browser.wait("document.querySelector('#findings-head').textContent.includes('merged, as in the report')")
    result = record.result if isinstance(record.result, dict) else {}
    expect(page.locator("#findings-head")).to_contain_text(f"{result['findings']} findings (merged")
    browser.wait("!document.querySelector('#findings-count').textContent.includes('raw')")
    counts = page.locator("#findings-count").inner_text()
    assert f"high{result['by_severity']['high']}" in counts.replace("\n", "")  # the report's merged count
    if record.reason:  # the reason comes with the run's detail, read after its status event
        expect(page.locator("#run-reason")).to_contain_text(record.reason[:40])
    first = page.locator("#findings-list li").first
    agent = first.get_attribute("data-agents").split()[0]
    first.locator("button.agent-link").first.click()
    browser.wait(f"window.__swarm.panelAgent === {json.dumps(agent)}")
    for fmt in ("md", "json", "sarif"):
        href = page.locator(f"a[href$='report.{fmt}']").get_attribute("href")
        assert page.request.get(f"{dashboard.url}{href}").status == 200
    markdown = page.request.get(f"{dashboard.url}/api/runs/{run.id}/report.md").text()
    assert "SELECT" in markdown or "sql" in markdown.lower()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-review.png"))
    assert browser.errors == []


def test_a_review_whose_reviewers_failed_says_so_and_shows_them(local, dashboard, browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    repo = write_tree(tmp_path / "repo", FILES)
    job = ReviewJob(source=SourceSpec(location=str(repo)), title="refused review",
                    models={"reviewer": f"{SCRIPTS}:refusing_reviewer"})  # every security reviewer: a 400
    run = submit_review(local.services, job)
    local.drain(max_steps=2000)
    on_idle(local.services, local.services.runs.get(run.id))
    record = local.services.runs.get(run.id)
    store = local.agents(run.id)
    failed = [store.get(i) for i in store.ids(AgentStatus.FAILED)]
    assert record.status.value in ("failed", "partial") and record.reason, record
    assert len(failed) == 2 and all(a.spec == "review.security" for a in failed)  # db.py and run.py are flagged

    page = browser.page
    page.goto(f"{dashboard.url}/#run={run.id}")
    browser.wait("window.__swarm && window.__swarm.nodeCount > 1")
    # The header: how it ended and why, where the eye lands first.
    expect(page.locator("#run-status")).to_have_text(record.status.value)
    expect(page.locator(f"#run-status .st-{record.status.value}")).to_be_visible()
    expect(page.locator("#run-reason")).to_contain_text(record.reason[:40])
    # The banner counts the failed agents and its button shows them (the state filter, set for the user).
    expect(page.locator("#banner")).to_contain_text("2 agents failed")
    page.click("#show-failed")
    expect(page.locator("#filter-state")).to_have_value("failed")
    assert sorted(browser.js("window.__swarm.matching()")) == sorted(a.id for a in failed)
    page.select_option("#filter-state", "done")
    done = browser.js("window.__swarm.matching()")
    assert done and not set(done) & {a.id for a in failed}
    page.select_option("#filter-state", "")

    # The selected node says which file it worked on and how it ended, beside it on the graph.
    target = failed[0]
    browser.js("(id) => window.__swarm.select(id)", target.id)
    browser.wait(f"window.__swarm.panelAgent === {json.dumps(target.id)}")
    label = browser.js("(id) => window.__swarm.label(id)", target.id)
    assert label in FILES
    browser.wait(f"window.__swarm.drawnLabels().some((l) => l.selected && l.id === {json.dumps(target.id)} "
                 f"&& l.text === {json.dumps(f'review.security · {label} · failed')})")
    expect(page.locator("#agent-panel")).to_contain_text("failed")
    assert browser.errors == []

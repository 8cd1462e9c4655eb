"""The review swarm, run in-process (real Redis, real runner, no Celery): same findings as the serial
reference, every planted problem at its line, the agent tree follows the rules."""

from __future__ import annotations

import json
from collections import Counter

from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.review.enums import ReviewerKind, ReviewReason, Severity
from swarm_tasks.review.job import ReviewJob
from swarm_tasks.review.pipeline import review_locally
from swarm_tasks.review.report import AgentRole, ReviewMode
from swarm_tasks.review.workflow import load_report, on_idle, submit_review
from swarm_tasks.runs import RunStatus
from swarm_tasks.sources import SourceSpec
from tests.review.helpers import EXAMPLE
from tests.review.test_reports import validate_sarif

EXPECTED = json.loads((EXAMPLE / "EXPECTED.json").read_text())


def review(local, **job_fields):
    job = ReviewJob(source=SourceSpec(location=str(EXAMPLE)), **job_fields)
    run = submit_review(local.services, job)
    local.drain(max_steps=5000)
    on_idle(local.services, local.services.runs.get(run.id))
    record = local.services.runs.get(run.id)
    assert record.status is RunStatus.COMPLETED, record.reason
    return record, load_report(local.services, run.id)


def assert_planted_problems_at_their_severity(report, *, keywords: bool = True):
    for expected in EXPECTED["findings"]:
        keyword = str(expected["keyword"]).lower() if keywords else ""
        matches = [f for f in report.findings if f.occurs_at(expected["file"], expected["line"])
                   and (not keywords or (f.category.value == expected["category"]
                                         and keyword in f"{f.rule} {f.title} {f.cwe or ''}".lower()))]
        assert matches, f"{expected['id']} missing"
        if "min_severity" in expected:
            assert max(f.severity.rank for f in matches) >= Severity(expected["min_severity"]).rank, expected["id"]


def test_deterministic_swarm_matches_the_serial_reference(local):
    record, report = review(local)
    assert report.mode is ReviewMode.DETERMINISTIC
    assert_planted_problems_at_their_severity(report)
    reference = review_locally(EXAMPLE)
    ours = {(f.file, f.start_line, f.rule, f.severity) for f in report.findings}
    theirs = {(f.file, f.start_line, f.rule, f.severity) for f in reference.findings}
    assert ours == theirs
    assert {r.path for r in report.reviewed} == {r.path for r in reference.reviewed}
    # found by roles and analyzers, as in the serial review, never by the swarm's opaque agent ids
    assert {r.label() for f in report.findings for r in f.reporters} == {
        r.label() for f in reference.findings for r in f.reporters}
    assert not any(r.label().startswith("a-") for f in report.findings for r in f.reporters)
    validate_sarif((local.settings.state_dir / "reports" / record.id / "report.sarif").read_text())
    # honest counts: every agent in the report ran, and the run's records agree; without models the files are
    # reviewed in groups, and each analyzer run names the group agent it ran inside
    agents = local.agents(record.id)
    own = [a for a in report.agents if not a.inside_agent_id]
    assert len(own) == sum(agents.counts().values()) == record.result["agents"]
    assert {a.kind for a in own} == {"inventory", "group"}
    assert {a.inside_agent_id for a in report.agents if a.inside_agent_id} <= {a.agent_id for a in own}
    assert all(a.source.value == "analyzer" for a in report.agents)
    roles = Counter(a.role for a in report.agents)
    assert roles[AgentRole.REVIEWER] == 4 * len(report.reviewed)
    assert roles[AgentRole.SUBREVIEWER] >= 3


def test_every_agent_ended_before_the_report(local):
    record, report = review(local)
    counts = local.agents(record.id).counts()
    live = sum(n for status, n in counts.items() if not status.terminal)
    assert live == 0 and counts[AgentStatus.FAILED] == 0
    # every inventoried file scanned; the scans listed are those of the files reviewed (a dependency's names the
    # scan of the file that imports it)
    assert report.files_scanned == report.files_inventoried == 13
    flagged = {r.path for r in report.reviewed if r.reason is ReviewReason.FLAGGED}
    assert sorted(a.file for a in report.agents if a.kind == "scan" and not a.parent_agent_id) == sorted(flagged)


def test_four_reviewers_ran_for_every_reviewed_file(local):
    _record, report = review(local)
    reviewed = {r.path for r in report.reviewed}
    for kind in ReviewerKind:
        assert {a.file for a in report.agents if a.role is AgentRole.REVIEWER and a.kind == kind.value} == reviewed


SCRIPTED = "scripted/py:swarm_tasks.review.scripted:reviewer"


def test_model_review_agent_tree_follows_the_rules_and_counts_are_honest(local):
    record, report = review(local, models={"scanner": SCRIPTED, "reviewer": SCRIPTED, "subreviewer": SCRIPTED})
    assert report.mode is ReviewMode.MODEL
    agents = [a for a in map(local.agents(record.id).get, sorted(
        {i for s in AgentStatus for i in local.agents(record.id).ids(s)}))]
    assert len(report.agents) == len(agents)
    by_id = {a.id: a for a in agents}
    # every agent in the report really ran, as a model agent except the inventory program
    for run in report.agents:
        state = by_id[run.agent_id]
        assert state.status is AgentStatus.DONE
        if run.kind == "inventory":
            assert run.source.value == "analyzer" and state.kind == "program"
        else:
            assert run.source.value == "model" and run.model == SCRIPTED and state.usage.model_calls >= 2
    usage = local.agents(record.id).usage("run")
    assert usage["model_calls"] == sum(a.usage.model_calls for a in agents)
    assert report.usage.prompt_tokens == usage["prompt_tokens"] > 0
    # the tree: inventory -> scans; flagged scans -> 4 reviewers; high findings -> sub-reviewers
    scans = [a for a in agents if a.spec == "review.scan"]
    reviewers = [a for a in agents if a.spec.startswith("review.") and a.spec.count(".") == 1
                 and a.spec not in ("review.scan", "review.inventory")]
    subs = [a for a in agents if a.spec.startswith("review.sub.")]
    assert all(by_id[a.parent].spec == "review.scan" for a in reviewers)
    assert all(by_id[a.parent].spec in ("review.inventory", "review.scan") for a in scans)
    assert subs and all(by_id[a.parent].spec.startswith("review.") for a in subs)
    assert any(a.depth >= 2 and a.input.get("depth", 0) >= 1 for a in scans if isinstance(a.input, dict))  # deps
    # the model reported what the tools showed: the planted problems are there, at the severity the table
    # gives them (a model sub-reviewer's confirmation makes an injection reachable: critical)
    assert_planted_problems_at_their_severity(report, keywords=False)
    assert all(r.source.value == "model" for f in report.findings for r in f.reporters if r.tool != "imports")


def test_secrets_found_in_code_are_reported_but_never_republished(local):
    record, report = review(local)
    assert any(f.file == "shop/config.py" and f.start_line == 4 for f in report.findings)
    directory = local.settings.state_dir / "reports" / record.id
    for name in ("report.md", "report.json", "report.sarif"):
        text = (directory / name).read_text()
        assert "pk-shop-7f3a9c1e5b2d4f60a8" not in text and "hunter2-prod" not in text, name


UNDOCUMENTED_ONLY = {
    "app/db.py": '"""Orders."""\n\n\ndef find(cur, name):\n    """Find."""\n'
                 '    cur.execute("SELECT * FROM o WHERE n = \'%s\'" % name)\n',
    "app/util.py": "def add(a, b):\n    return a + b\n",  # its scan raises only "undocumented"
}


def test_a_file_flagged_only_as_undocumented_gets_the_analyzers_not_four_model_reviewers(local, tmp_path):
    from swarm_tasks.review.config import ReviewConfig
    from swarm_tasks.review.enums import RiskLevel
    from tests.review.helpers import write_tree

    repo = write_tree(tmp_path / "repo", UNDOCUMENTED_ONLY)
    models = {"scanner": SCRIPTED, "reviewer": SCRIPTED, "subreviewer": SCRIPTED}

    def run(config: ReviewConfig):
        job = ReviewJob(source=SourceSpec(location=str(repo)), models=models, config=config)
        submitted = submit_review(local.services, job)
        local.drain(max_steps=5000)
        on_idle(local.services, local.services.runs.get(submitted.id))
        record = local.services.runs.get(submitted.id)
        assert record.status is RunStatus.COMPLETED, record.reason
        store = local.agents(record.id)
        agents = [store.get(i) for s in AgentStatus for i in store.ids(s)]
        reviewers = {(a.labels.get("file"), a.spec): a for a in agents if a.role == "reviewer"}
        return load_report(local.services, record.id), reviewers

    report, reviewers = run(ReviewConfig())
    util = {spec: a for (file, spec), a in reviewers.items() if file == "app/util.py"}
    assert sorted(util) == sorted(f"review.analyzer.{k.value}" for k in ReviewerKind)
    assert all(a.kind == "program" and a.usage.model_calls == 0 for a in util.values())  # no tokens spent
    db = {spec: a for (file, spec), a in reviewers.items() if file == "app/db.py"}
    assert sorted(db) == sorted(f"review.{k.value}" for k in ReviewerKind)  # a risky file: the models
    assert all(a.kind == "llm" and a.usage.model_calls >= 1 for a in db.values())
    # what the models would have restated, the analyzers report: found by the documentation reviewer (ruff)
    docs = [f for f in report.findings if "app/util.py" in f.files and f.category.value == "documentation"]
    assert docs and any(r.label() == "documentation reviewer (ruff)" for f in docs for r in f.reporters), docs
    assert {r.path for r in report.reviewed} >= {"app/db.py", "app/util.py"} and not report.outcome.left_out
    kinds = {(a.file, a.kind) for a in report.agents if a.role is AgentRole.REVIEWER}
    assert {("app/util.py", k.value) for k in ReviewerKind} <= kinds  # named by kind, as any reviewer

    # Asked to send every file to the models (a low risk threshold), it does.
    _, everyone = run(ReviewConfig(risk_threshold=RiskLevel.LOW))
    assert sorted(spec for (file, spec) in everyone if file == "app/util.py") == sorted(
        f"review.{k.value}" for k in ReviewerKind)


def test_a_report_stored_before_reports_were_versioned_records_is_still_read(local):
    """A state directory kept from an earlier version holds the report as a plain compressed value."""
    record, report = review(local)
    key = local.services.run(record.id).state.keys.record("report", "json")
    blob = local.services.client.hget(key, "d")
    local.services.client.delete(key)
    local.services.client.set(key, blob)
    again = load_report(local.services, record.id)
    assert again is not None and len(again.findings) == len(report.findings)

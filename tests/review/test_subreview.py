"""Sub-review rules as data, planning with depth limits, and the deterministic sub-reviewers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarm_tasks.errors import ReviewError
from swarm_tasks.review.analyzers import run_reviewer
from swarm_tasks.review.code_index import CodeIndex
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, ReviewerKind, ScanFlag, Severity, SubReviewerKind
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.inventory import build_inventory
from swarm_tasks.review.merge import merge_findings
from swarm_tasks.review.subreview_rules import SubreviewRequest, load_subreview_rules, plan_subreviews
from swarm_tasks.review.subreviewers import run_subreviewer
from tests.review.helpers import write_tree

RULES = load_subreview_rules()


def finding(rule: str, cwe: str | None, severity: Severity = Severity.HIGH, file: str = "a.py", line: int = 3,
            category: Category = Category.SECURITY) -> Finding:
    return Finding(file=file, start_line=line, end_line=line, rule=rule, cwe=cwe, severity=severity,
                   category=category, title=rule, confidence=0.6, tool="t", agent_id="reviewer:security:a.py")


def test_shipped_rules_load_and_match() -> None:
    kinds = {r.reviewer for r in RULES.rules}
    assert kinds == set(SubReviewerKind)
    plan = plan_subreviews([finding("B608", "CWE-89")], RULES, {}, depth=1, max_depth=2)
    assert [(p.reviewer, p.depth, p.max_depth) for p in plan] == [(SubReviewerKind.TAINT_TRACE, 1, 2)]
    assert plan_subreviews([finding("B608", "CWE-89", Severity.MEDIUM)], RULES, {}, 1, 2) == []
    assert plan_subreviews([finding("F401", None, category=Category.QUALITY)], RULES, {}, 1, 2) == []
    secret = plan_subreviews([finding("PY-HARDCODED-SECRET", "CWE-798")], RULES, {}, 1, 2)
    assert [p.reviewer for p in secret] == [SubReviewerKind.SECRET_EXPOSURE]
    deser = plan_subreviews([finding("B301", "CWE-502")], RULES, {}, 1, 2)
    assert [p.reviewer for p in deser] == [SubReviewerKind.DESERIALIZATION_SOURCE]


def test_auth_rule_by_flag_or_path_once_per_file() -> None:
    weak = [finding("B324", "CWE-327", line=3), finding("B324", "CWE-327", line=9)]
    assert plan_subreviews(weak, RULES, {}, 1, 2) == []
    by_flag = plan_subreviews(weak, RULES, {"a.py": {ScanFlag.AUTH}}, 1, 2)
    assert [p.reviewer for p in by_flag] == [SubReviewerKind.AUTH_FLOW]  # once for the file
    by_path = plan_subreviews([finding("B324", "CWE-327", file="app/login_view.py")], RULES, {}, 1, 2)
    assert [p.reviewer for p in by_path] == [SubReviewerKind.AUTH_FLOW]


def test_depth_limits() -> None:
    sql = [finding("B608", "CWE-89")]
    assert plan_subreviews(sql, RULES, {}, depth=3, max_depth=5) == []  # the rule's own max_depth is 2
    assert plan_subreviews(sql, RULES, {}, depth=1, max_depth=0) == []  # config switches sub-review off
    secret = [finding("B105", "CWE-798")]
    assert plan_subreviews(secret, RULES, {}, depth=2, max_depth=2) == []  # secrets: one level


def test_rules_file_errors_and_custom_rules(tmp_path: Path) -> None:
    with pytest.raises(ReviewError, match="cannot read"):
        load_subreview_rules(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"version": 1, "rules": [{"name": "x", "reviewer": "nope"}]}')
    with pytest.raises(ReviewError, match="reviewer"):
        load_subreview_rules(tmp_path / "bad.json")
    (tmp_path / "all.json").write_text(json.dumps({"version": 1, "rules": [
        {"name": "everything", "reviewer": "taint-trace", "min_severity": "low"}]}))
    custom = load_subreview_rules(tmp_path / "all.json")
    assert len(plan_subreviews([finding("F401", None, Severity.LOW, category=Category.QUALITY)], custom, {}, 1, 2)) == 1


APP = {
    "app.py": '''from flask import request
from db import find, count
from tools import run_tool


@app.route("/search")
def search():
    term = request.args.get("q")
    return find(term)


def nightly():
    return count("products")


@app.route("/tool/<name>")
def tool(name):
    return run_tool(name)
''',
    "db.py": '''def find(name):
    query = "SELECT * FROM p WHERE name = '%s'" % name
    return cur.execute(query)


def count(table):
    return cur.execute("SELECT COUNT(*) FROM %s" % table)


def fixed():
    return cur.execute("SELECT 1 FROM x WHERE a = %s" % 5)
''',
    "tools.py": "import os\n\n\ndef run_tool(tool_name):\n    return os.system('run ' + tool_name)\n",
    "config.py": 'SERVICE_TOKEN = "tok-1234567890abcdef"\n',
    "client.py": 'from config import SERVICE_TOKEN\nimport logging\nlogging.info("token %s", SERVICE_TOKEN)\n'
                 'headers = {"Authorization": SERVICE_TOKEN}\n',
    "auth.py": '''import hashlib
import random


def login(user, password):
    digest = hashlib.md5(password.encode()).hexdigest()
    session_token = random.random()
    return USERS[user] == digest
''',
    "web/view.js": '''function render(html) {
  document.body.innerHTML = html;
}
function page(req, res) {
  const body = req.query.body;
  render(body);
}
render("<b>fixed</b>");
''',
}


def security_findings(root: Path, path: str) -> list[Finding]:
    inv = build_inventory(root, ReviewConfig())
    return merge_findings(run_reviewer(ReviewerKind.SECURITY, root, inv.by_path()[path], ReviewConfig()))


def run(root: Path, target: Finding, reviewer: SubReviewerKind, depth: int = 1, names: list[str] | None = None,
        line: int | None = None, file: str | None = None):
    index = CodeIndex(root, build_inventory(root, ReviewConfig()).files)
    request = SubreviewRequest(reviewer=reviewer, rule_name="test", finding_id=target.id, file=file or target.file,
                               line=line or target.end_line, depth=depth, max_depth=2, names=names or [])
    return run_subreviewer(request, target, index)


def test_taint_trace_follows_callers_to_a_request_source(tmp_path: Path) -> None:
    root = write_tree(tmp_path, APP)
    sink = next(f for f in security_findings(root, "db.py") if f.start_line <= 3 <= f.end_line)
    first = run(root, sink, SubReviewerKind.TAINT_TRACE)
    assert any(loc.file == "app.py" and loc.start_line == 9 for loc in first.finding.related)
    [follow] = first.follow_ups
    assert (follow.file, follow.line, follow.names, follow.depth) == ("app.py", 9, ["term"], 2)
    second = run(root, first.finding, SubReviewerKind.TAINT_TRACE, depth=2, names=follow.names, line=9, file="app.py")
    assert second.finding.severity is Severity.CRITICAL and second.finding.confidence >= 0.95
    assert any("request.args" in loc.message for loc in second.finding.related)
    assert len(second.finding.reporters) == len(sink.reporters) + 2  # both trace steps credited


def test_taint_trace_route_parameter_and_constants(tmp_path: Path) -> None:
    root = write_tree(tmp_path, APP)
    shell = next(f for f in security_findings(root, "tools.py") if f.start_line == 5)
    traced = run(root, shell, SubReviewerKind.TAINT_TRACE)
    assert traced.follow_ups == []  # one caller, a web route: its parameter is request input
    assert traced.finding.severity is Severity.CRITICAL
    count = next(f for f in security_findings(root, "db.py") if f.start_line == 7)
    doubted = run(root, count, SubReviewerKind.TAINT_TRACE)
    assert doubted.finding.confidence < count.confidence
    assert any("constant" in note for note in doubted.finding.notes)
    fixed = next(f for f in security_findings(root, "db.py") if f.start_line == 11)
    assert run(root, fixed, SubReviewerKind.TAINT_TRACE).finding.confidence < fixed.confidence


def test_taint_trace_js(tmp_path: Path) -> None:
    root = write_tree(tmp_path, APP)
    xss = next(f for f in security_findings(root, "web/view.js") if f.start_line == 2)
    traced = run(root, xss, SubReviewerKind.TAINT_TRACE)
    lines = {loc.start_line for loc in traced.finding.related}
    assert {6, 8} <= lines
    [follow] = traced.follow_ups
    assert (follow.line, follow.names) == (6, ["body"])
    confirmed = run(root, traced.finding, SubReviewerKind.TAINT_TRACE, depth=2, names=["body"], line=6)
    assert confirmed.finding.reachable and not traced.finding.reachable
    assert confirmed.finding.severity is Severity.HIGH  # the severity table: XSS is high, reachable or not


def test_secret_exposure_finds_uses_and_logging(tmp_path: Path) -> None:
    root = write_tree(tmp_path, APP)
    secret = next(f for f in security_findings(root, "config.py") if f.cwe == "CWE-798")
    outcome = run(root, secret, SubReviewerKind.SECRET_EXPOSURE)
    assert {(loc.file, loc.start_line) for loc in outcome.finding.related} == {("client.py", 1), ("client.py", 3),
                                                                             ("client.py", 4)}
    [logged] = outcome.new_findings
    assert (logged.file, logged.start_line, logged.rule, logged.cwe) == ("client.py", 3, "SECRET-LOGGED", "CWE-532")
    assert logged.agent_id == outcome.request.agent_id


def test_auth_flow_checks_the_file(tmp_path: Path) -> None:
    root = write_tree(tmp_path, APP)
    weak = next(f for f in security_findings(root, "auth.py") if f.rule == "B324")
    outcome = run(root, weak, SubReviewerKind.AUTH_FLOW)
    rules = {(f.rule, f.start_line) for f in outcome.new_findings}
    assert rules == {("AUTH-WEAK-PASSWORD-HASH", 6), ("AUTH-PREDICTABLE-TOKEN", 7), ("AUTH-TIMING-COMPARE", 8)}


def test_callers_are_found_in_every_file_that_calls_by_the_name_and_only_parsed_where_named(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {
        "db.py": "def find(term):\n    return term\n",
        "app.py": "import db\n\n\ndef view(q):\n    return db.find(q)\n",
        "other.py": "def unrelated():\n    return 1\n",
        # Python reads identifiers NFKC-normalised: this calls find() without the text holding "find"
        "sly.py": "def g(q):\n    return \ufb01nd(q)\n",
        "broken.py": "def find(:\n",
    })
    index = CodeIndex(root, build_inventory(root, ReviewConfig()).files)
    calls = index.python_calls("find")
    assert "find" not in (root / "sly.py").read_text()
    assert [(path, call.lineno) for path, call in calls] == [("app.py", 5), ("sly.py", 2)]
    assert index.python_calls("find") is calls  # looked for once
    assert "other.py" not in index._tree  # never parsed: its text does not name it
    with_extra = index.including(next(f for f in build_inventory(root, ReviewConfig()).files if f.path == "db.py"))
    assert [p for p, _c in with_extra.python_calls("find")] == ["app.py", "sly.py"]

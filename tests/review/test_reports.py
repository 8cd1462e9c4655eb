"""Report renderers: Markdown, JSON round trip, SARIF 2.1.0 valid against the vendored OASIS schema."""

from __future__ import annotations

import json

from jsonschema import Draft4Validator

from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.outcome import ReasonClass, RunStatus, Tally, decide
from swarm_tasks.review.enums import Category, FileOrigin, FindingSource, ReviewReason, RiskLevel, Severity
from swarm_tasks.review.findings import Finding, Location, Reporter
from swarm_tasks.review.languages import Language
from swarm_tasks.review.report import AgentRole, AgentRun, Report, ReviewedFile, ReviewMode, Usage
from swarm_tasks.review.report_json import parse_json, render_json
from swarm_tasks.review.report_markdown import render_markdown
from swarm_tasks.review.report_sarif import build_sarif, render_sarif, sarif_schema
from swarm_tasks.review.results import name_reporters


def validate_sarif(text: str) -> dict[str, object]:
    doc = json.loads(text)
    errors = sorted(Draft4Validator(sarif_schema()).iter_errors(doc), key=str)
    assert not errors, "\n".join(str(e.message) for e in errors[:5])
    return doc


def sample_report() -> Report:
    sql = Finding(file="src/db.py", start_line=12, end_line=13, severity=Severity.CRITICAL, category=Category.SECURITY,
                  rule="B608", title="SQL built from input | unsafe", evidence='cur.execute(f"... {x}")\n```x```',
                  recommendation="Use parameters.", confidence=0.9, tool="bandit",
                  agent_id="reviewer:security:src/db.py",
                  cwe="CWE-89", related=[Location(file="src/app.py", start_line=4, end_line=4, message="caller")],
                  notes=["taint-trace: request.args reaches the sink"])
    sql = sql.model_copy(update={"reporters": [*sql.reporters, Reporter(
        source=FindingSource.MODEL, tool="model:anthropic/claude", agent_id="reviewer:security:src/db.py#m",
        rule="sql-injection", severity=Severity.HIGH, confidence=0.7)]})
    doc = Finding(file="src/db.py", start_line=1, end_line=1, severity=Severity.LOW, category=Category.DOCUMENTATION,
                  rule="D100", title="Missing module docstring", confidence=0.9, tool="ruff",
                  source=FindingSource.ANALYZER)
    model_only = Finding(file="src/x y.py", start_line=3, end_line=3, severity=Severity.MEDIUM,
                         category=Category.QUALITY, rule="error-swallowed", title="Errors swallowed", confidence=0.5,
                         tool="model:anthropic/claude", source=FindingSource.MODEL)
    external = Finding(file="/opt/site-packages/pkg/core.py", start_line=7, end_line=7, severity=Severity.INFO,
                       category=Category.SECURITY, rule="ANALYZER-FAILED", title="note", confidence=1.0, tool="bandit",
                       origin=FileOrigin.THIRD_PARTY, package="pkg")
    return Report(root="/work/repo", run_id="run-1", mode=ReviewMode.MIXED, models=["anthropic/claude"],
                  files_scanned=3, findings=[sql, model_only, doc, external],
                  reviewed=[ReviewedFile(path="src/db.py", language=Language.PYTHON, origin=FileOrigin.REPOSITORY,
                                         reason=ReviewReason.FLAGGED, risk=RiskLevel.HIGH),
                            ReviewedFile(path="/opt/site-packages/pkg/core.py", language=Language.PYTHON,
                                         origin=FileOrigin.THIRD_PARTY, package="pkg", reason=ReviewReason.IMPORTED,
                                         risk=RiskLevel.LOW, depth=1, chain=["src/db.py"])],
                  agents=[AgentRun(agent_id="scanner:src/db.py", role=AgentRole.SCANNER, kind="scan", file="src/db.py"),
                          AgentRun(agent_id="reviewer:security:src/db.py", role=AgentRole.REVIEWER, kind="security",
                                   file="src/db.py", source=FindingSource.MODEL, model="anthropic/claude",
                                   prompt_tokens=1200, completion_tokens=300, cost_usd=0.0123)],
                  usage=Usage(prompt_tokens=1200, completion_tokens=300, cost_usd=0.0123))


def test_markdown_summary() -> None:
    text = render_markdown(sample_report().model_copy(update={"summary_min_severity": Severity.INFO}))
    assert "# Code review: repo" in text and "Model and deterministic review" in text
    assert "| critical | 1 |" in text and "| documentation | 1 |" in text and "| dependency | 0 |" in text
    assert "[`src/db.py:12`](src/db.py#L12)" in text and "[`src/x%20y.py:3`]" not in text
    assert "[`src/x y.py:3`](src/x%20y.py#L3)" in text
    assert "`/opt/site-packages/pkg/core.py:7`" in text and "third-party package `pkg`" in text
    assert "Analyzers only: 2" in text and "Models only: 1" in text and "Both: 1" in text
    assert "Tokens: 1,500" in text and "$0.0123" in text
    assert "Related: [`src/app.py:4`](src/app.py#L4) caller" in text
    assert "````" in text  # evidence containing a fence gets a longer fence
    assert "| scanner | scan | 1 | 1 | 0 |" in text
    assert "Found by: bandit, model anthropic/claude" in text  # no roles in a report made without agents' roles
    named = sample_report().model_copy(update={"summary_min_severity": Severity.INFO})
    named.findings[0] = name_reporters([named.findings[0]], named.agents)[0]
    assert "Found by: security reviewer (bandit), security reviewer (model anthropic/claude)" in render_markdown(named)


def test_markdown_leads_with_what_matters_and_links_resolve(tmp_path) -> None:
    report = sample_report().model_copy(update={"root": str(tmp_path / "repo")})
    text = render_markdown(report)  # default threshold: medium and up listed, the rest counted
    top = text.split("## Top findings", 1)[1].split("## Below medium", 1)[0]
    assert "src/db.py:12" in top and "Missing module docstring" not in top
    below = text.split("## Below medium (2 findings, 2 occurrences)", 1)[1]
    assert "[low] `D100` Missing module docstring" in below and "low: 1, info: 1" in below
    out = tmp_path / "state" / "reports" / "run-1"
    linked = render_markdown(report, directory=out)  # written elsewhere: links lead back to the repository
    assert "[`src/db.py:12`](../../../repo/src/db.py#L12)" in linked
    forge = render_markdown(report.model_copy(update={"link_base": "https://example.test/o/r/blob/abc"}),
                            directory=out)
    assert "[`src/db.py:12`](https://example.test/o/r/blob/abc/src/db.py#L12)" in forge


def test_markdown_names_deterministic_mode() -> None:
    text = render_markdown(Report(root="/r"))
    assert "**Deterministic analysis** - no model was configured" in text and "Tokens" not in text


def test_json_round_trip() -> None:
    report = sample_report()
    assert parse_json(render_json(report)) == report
    assert json.loads(render_json(report))["findings"][0]["rule"] == "B608"


def test_sarif_valid_and_shaped_for_github() -> None:
    report = sample_report()
    doc = validate_sarif(render_sarif(report))
    run = doc["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules["B608"]["properties"]["security-severity"] == "9.5"
    assert "external/cwe/cwe-89" in rules["B608"]["properties"]["tags"]
    assert "security-severity" not in rules["D100"]["properties"]
    results = run["results"]
    assert [r["level"] for r in results] == ["error", "warning", "note", "note"]
    first = results[0]
    assert run["tool"]["driver"]["rules"][first["ruleIndex"]]["id"] == first["ruleId"] == "B608"
    location = first["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "src/db.py", "uriBaseId": "%SRCROOT%"}
    assert location["region"]["startLine"] == 12 and location["region"]["endLine"] == 13
    assert first["partialFingerprints"]["swarmFindingId/v1"] == report.findings[0].id
    assert first["relatedLocations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/app.py"
    assert results[1]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/x%20y.py"
    assert results[3]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("file:///opt/")
    assert first["properties"]["tools"] == ["bandit", "model:anthropic/claude"]


def test_empty_report_sarif_is_valid() -> None:
    doc = validate_sarif(build_sarif(Report(root="/r")).to_json())
    assert doc["runs"][0]["results"] == []


def test_markdown_shows_hostile_names_and_text_inert() -> None:
    name = "evil\n## Forged\x1b[2J`x`.py"
    hostile = Finding(file=name, start_line=2, end_line=2, severity=Severity.HIGH, category=Category.SECURITY,
                      rule="B307", title="eval of [input](http://x) <b>\n- Forged item", confidence=0.9,
                      tool="bandit", evidence="eval(x)  # \x1b]0;title\x07\n````", notes=["note\n# Forged"],
                      related=[Location(file="a\nb.py", start_line=1, end_line=1, message="m\x1b[1m")])
    text = render_markdown(Report(root="/r/repo\n# Forged root", findings=[hostile]))
    forged = [line for line in text.splitlines() if "Forged" in line and line.lstrip().startswith(("#", "- F"))]
    assert forged == ["# Code review: repo\\\\n\\# Forged root"]  # one heading, the name escaped in it
    assert "\x1b" not in text and "\x07" not in text
    assert "[``evil\\n## Forged\\x1b[2J`x`.py:2``](evil%0A%23%23%20Forged%1B%5B2J%60x%60.py#L2)" in text
    assert "eval of \\[input\\](http://x) \\<b\\>\\\\n- Forged item" in text
    assert "   `````" in text  # evidence holding four backticks gets a fence of five


class _Agent:
    def __init__(self, n: int, status: AgentStatus, reason: str, cls: ReasonClass) -> None:
        self.id, self.spec, self.role, self.status = f"a-{n}", "review.security", "reviewer", status
        self.reason, self.reason_class, self.labels, self.model = reason, cls, {"file": f"src/m{n}.py"}, "openai/x"


def partial_report(unfinished: int = 60, left_out: int = 3) -> Report:
    tally = Tally().add_all([_Agent(n, AgentStatus.FAILED, "the model openai/x was refused (401 authentication): "
                                    "set OPENAI_API_KEY", ReasonClass.AUTH) for n in range(unfinished)])
    tally.what = "file(s) left out"
    for n in range(left_out):
        tally.leave_out(f"src/left{n}.py", "not scanned (the agent budget (20 agents) could not cover it)")
    outcome = decide(tally, useful=True)
    return sample_report().model_copy(update={"outcome": outcome, "files_inventoried": 6,
                                              "notes": [f"note {n}" for n in range(55)]})


def test_a_partial_report_says_so_in_markdown_json_and_sarif() -> None:
    report = partial_report()
    assert report.outcome.status is RunStatus.PARTIAL
    text = render_markdown(report)
    assert "> **Outcome: PARTIAL review** - the findings below cover only part of the repository. 60 of 60 " \
           "reviewers failed: the model openai/x was refused (401 authentication): set OPENAI\\_API\\_KEY" in text
    assert "- Files scanned: 3 of 6;" in text
    assert "## Work not done" in text and "Files left out (3):" in text
    assert "- `src/left0.py`: not scanned (the agent budget (20 agents) could not cover it)" in text
    assert "Agents that did not finish (60: 60 auth):" in text and "- ... and 10 more agents" in text
    assert "- note 49" in text and "- note 50" not in text and "- ... and 5 more notes" in text
    back = json.loads(render_json(report))
    assert back["outcome"]["status"] == "partial" and back["outcome"]["failed"] == {"auth": 60}
    assert parse_json(render_json(report)) == report
    doc = validate_sarif(render_sarif(report))
    (invocation,) = doc["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    notes = invocation["toolExecutionNotifications"]
    assert notes[0]["level"] == "error" and notes[0]["message"]["text"].startswith("The review is partial: 60 of")
    agents = [n for n in notes if n.get("properties", {}).get("agentId")]
    assert len(agents) == 50 and agents[0]["properties"]["reasonClass"] == "auth"
    assert "401 authentication" in agents[0]["message"]["text"] and agents[0]["properties"]["file"] == "src/m0.py"
    assert any(n["message"]["text"] == "... and 10 more agents that did not finish" for n in notes)
    assert sum(n["message"]["text"].startswith("File left out: src/left") for n in notes) == 3
    assert invocation["properties"]["outcome"] == "partial" and invocation["properties"]["filesLeftOut"] == 3


def test_a_complete_report_has_a_successful_invocation_and_points_at_the_findings_not_listed() -> None:
    report = sample_report().model_copy(update={"outcome": decide(Tally(), useful=True),
                                                "summary_min_severity": Severity.INFO})
    doc = validate_sarif(render_sarif(report))
    (invocation,) = doc["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is True and "toolExecutionNotifications" not in invocation
    assert invocation["properties"]["outcome"] == "completed"
    text = render_markdown(report, top=3)
    assert "**Outcome: completed**" in text and "## Work not done" not in text
    assert "## Top findings (3 of 4)" in text
    assert "The other 1 findings are in report.json and report.sarif beside this file " \
           "(`swarm report run-1 --format json`)." in text

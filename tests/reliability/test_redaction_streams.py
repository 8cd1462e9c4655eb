"""A configured secret never leaves a review run through its event stream or its reports.

The secret (the deployment's API key, a value with no secret-like shape, so only the configured-value
masking can catch it) is hard-coded in a reviewed file, so the hard-coded-secret finding quotes it as
evidence; in model mode an agent also repeats it in what it reports (its summary, which becomes its
reason in the events, and its findings' title, evidence, recommendation and related notes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.models.script import ScriptedCall, Step
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.review import scripted
from swarm_tasks.review.job import ReviewJob
from swarm_tasks.review.report import ReviewMode
from swarm_tasks.review.workflow import load_report, on_idle, report_dir, submit_review
from swarm_tasks.runs import RunStatus
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.sources import SourceSpec
from tests.review.helpers import write_tree
from tests.runtime.conftest import Local, swarm_settings  # noqa: F401 - pytest fixture

SECRET = "zq7-plain-config-value-2741"
CONFIG = f'''"""Settings of the payment client."""

TIMEOUT_S = 5
PAYMENT_API_KEY = "{SECRET}"
'''
SECRET_LINE = 4
CLIENT = '''"""The payment client."""

from config import PAYMENT_API_KEY, TIMEOUT_S


def headers() -> dict:
    """Headers of every call."""
    return {"X-Key": PAYMENT_API_KEY, "X-Timeout": str(TIMEOUT_S)}
'''
LEAKY = "scripted/py:tests.reliability.test_redaction_streams:leaky_reviewer"


def leaky_reviewer(messages: list[ChatMessage], tools: object) -> Step:
    """The scripted reviewer, except that whatever it finishes with repeats the secret everywhere."""
    step = scripted.reviewer(messages, tools)
    if not step.tool_calls or step.tool_calls[0].name != "finish":
        return step
    arguments = dict(step.tool_calls[0].arguments) if isinstance(step.tool_calls[0].arguments, dict) else {}
    arguments["summary"] = f"{arguments.get('summary', '')}; the key is {SECRET}"
    if "quality reviewer" in str(messages[0].get("content")):  # gives up: its summary becomes its reason
        arguments["success"] = False
    result = dict(arguments.get("result") or {})  # type: ignore[arg-type]
    if "summary" in result:
        result["summary"] = f"checked with key {SECRET}"
    if "findings" in result:
        result["findings"] = [{**f, "title": f"{f['title']} ({SECRET})",
                               "evidence": f"{f.get('evidence', '')} {SECRET}",
                               "recommendation": f"rotate {SECRET}",
                               "related": [{"file": f["file"], "start_line": f["start_line"],
                                            "end_line": f["start_line"], "message": f"also uses {SECRET}"}]}
                              for f in result["findings"]]  # type: ignore[union-attr]
    arguments["result"] = result
    return Step(tool_calls=[ScriptedCall(name="finish", arguments=arguments)])


@pytest.fixture
def local(swarm_settings: SwarmSettings) -> Iterator[Local]:  # noqa: F811 - the fixture above, with a key
    rt = Local(swarm_settings.model_copy(update={"api_key": SecretStr(SECRET)}))
    yield rt
    rt.close()


def review(local: Local, tmp_path: Path, status: RunStatus = RunStatus.COMPLETED, **job_fields: object):
    root = write_tree(tmp_path / "repo", {"config.py": CONFIG, "client.py": CLIENT})
    run = submit_review(local.services, ReviewJob(source=SourceSpec(location=str(root)), **job_fields))
    local.drain(max_steps=3000)
    on_idle(local.services, local.services.runs.get(run.id))
    record = local.services.runs.get(run.id)
    assert record.status is status, record.reason
    assert SECRET not in (record.reason or "")
    report = load_report(local.services, run.id)
    assert report is not None
    secret_findings = [f for f in report.findings if f.file == "config.py" and f.start_line == SECRET_LINE
                       and f.category.value == "security"]
    assert secret_findings, [(f.file, f.start_line, f.rule) for f in report.findings]  # reported where it is
    return record, report


def event_stream(local: Local, run_id: str) -> str:
    """Every field of every entry of the run's Redis event stream, raw."""
    entries = local.services.client.xrange(local.services.run(run_id).state.keys.events())
    assert len(entries) > 10
    return "\n".join(f"{k.decode()}={v.decode()}" for _id, fields in entries for k, v in fields.items())


def assert_never_republished(local: Local, run_id: str, report) -> None:
    events = event_stream(local, run_id)
    assert SECRET not in events
    for name in ("report.md", "report.json", "report.sarif"):
        text = (report_dir(local.settings.state_dir, run_id) / name).read_text()
        assert "config.py" in text, name
        assert SECRET not in text, name
    assert SECRET not in report.model_dump_json()  # the copy kept in Redis for `swarm report`


def test_deterministic_review_masks_the_secret_in_events_and_reports(local: Local, tmp_path: Path) -> None:
    record, report = review(local, tmp_path)
    assert report.mode is ReviewMode.DETERMINISTIC
    assert any("***" in f.evidence for f in report.findings if f.file == "config.py")
    assert_never_republished(local, record.id, report)


def test_model_review_masks_what_agents_repeat(local: Local, tmp_path: Path) -> None:
    # The quality reviewer gives up, so the run ends partial (its reason, masked, says why).
    record, report = review(local, tmp_path, RunStatus.PARTIAL,
                            models={"scanner": LEAKY, "reviewer": LEAKY, "subreviewer": LEAKY})
    assert "the key is ***" in (record.reason or "")
    assert report.mode is ReviewMode.MODEL
    store = local.agents(record.id)
    agents = [store.get(i) for i in sorted({i for s in AgentStatus for i in store.ids(s)})]
    # the agents did say it: in their results (the run's own records) and, masked, in their reasons
    assert any(SECRET in json.dumps(a.result) for a in agents if a.spec == "review.security")
    quitters = [a for a in agents if a.spec == "review.quality"]
    assert quitters and all(a.status is AgentStatus.FAILED and a.reason and "the key is ***" in a.reason
                            and SECRET not in a.reason for a in quitters)
    events = event_stream(local, record.id)
    assert '"reason":"0 quality findings confirmed by reading the file; the key is ***"' in events  # masked there
    masked = [f for f in report.findings if f.file == "config.py" and f.start_line == SECRET_LINE]
    assert any(f.recommendation == "rotate ***" and f.related and "***" in f.related[0].message for f in masked)
    assert any("the key is ***" in a.summary for a in report.agents)
    assert_never_republished(local, record.id, report)

"""The report as SARIF 2.1.0 for GitHub code scanning (validated in tests against the vendored schema).

Only the subset of SARIF we emit is modelled. Levels: critical/high -> error, medium -> warning,
low/info -> note. Security rules carry ``security-severity`` (GitHub's 0-10 scale) and CWE tags.
The run's one invocation says whether the analysis completed (``executionSuccessful``); a partial or
failed review names, in ``toolExecutionNotifications``, each agent that did not finish and each file left
out, so a code-scanning service never shows it as a clean run.
"""

from __future__ import annotations

import json
from importlib import resources
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from swarm_tasks.display import json_inert
from swarm_tasks.outcome import RunStatus
from swarm_tasks.review.enums import Category, Severity
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.report import Report

SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SCHEMA_RESOURCE = "schemas/sarif-schema-2.1.0.json"
TOOL_NAME = "swarm-tasks review"
TOOL_VERSION = "0.1.0"
SRCROOT = "%SRCROOT%"
LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note",
         Severity.INFO: "note"}
SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5", Severity.LOW: "3.0",
                     Severity.INFO: "1.0"}
PRECISION = ((0.8, "high"), (0.5, "medium"), (0.0, "low"))
MAX_RELATED_LOCATIONS = 1000  # GitHub code scanning's limit per result


class _Sarif(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class Message(_Sarif):
    text: str


class ArtifactLocation(_Sarif):
    uri: str
    uri_base_id: str | None = Field(default=None, alias="uriBaseId")


class Snippet(_Sarif):
    text: str


class Region(_Sarif):
    start_line: int = Field(alias="startLine", ge=1)
    end_line: int = Field(alias="endLine", ge=1)
    snippet: Snippet | None = None


class PhysicalLocation(_Sarif):
    artifact_location: ArtifactLocation = Field(alias="artifactLocation")
    region: Region


class SarifLocation(_Sarif):
    id: int | None = Field(default=None, ge=0)
    physical_location: PhysicalLocation = Field(alias="physicalLocation")
    message: Message | None = None


class RuleProperties(_Sarif):
    tags: list[str]
    precision: str
    security_severity: str | None = Field(default=None, alias="security-severity")
    problem_severity: str = Field(alias="problem.severity")


class ReportingConfiguration(_Sarif):
    level: str


class Rule(_Sarif):
    id: str
    name: str
    short_description: Message = Field(alias="shortDescription")
    help: Message
    default_configuration: ReportingConfiguration = Field(alias="defaultConfiguration")
    properties: RuleProperties


class ResultProperties(_Sarif):
    severity: str
    category: str
    confidence: float
    cwe: str | None = None
    tools: list[str]
    agents: list[str]
    found_by: list[str] = Field(default_factory=list, alias="foundBy")
    occurrences: int = 1
    reachable: bool = False
    notes: list[str] = Field(default_factory=list)
    package: str | None = None


class Result(_Sarif):
    rule_id: str = Field(alias="ruleId")
    rule_index: int = Field(alias="ruleIndex", ge=0)
    level: str
    message: Message
    locations: list[SarifLocation]
    related_locations: list[SarifLocation] | None = Field(default=None, alias="relatedLocations")
    partial_fingerprints: dict[str, str] = Field(alias="partialFingerprints")
    properties: ResultProperties


class Driver(_Sarif):
    name: str
    version: str
    information_uri: str = Field(alias="informationUri")
    rules: list[Rule]


class Tool(_Sarif):
    driver: Driver


class NotificationProperties(_Sarif):
    status: str | None = None
    reason_class: str | None = Field(default=None, alias="reasonClass")
    agent_id: str | None = Field(default=None, alias="agentId")
    file: str | None = None


class Notification(_Sarif):
    level: str
    message: Message
    properties: NotificationProperties | None = None


class InvocationProperties(_Sarif):
    outcome: str
    agents: dict[str, int]
    failed: dict[str, int]
    stopped: dict[str, int]
    files_left_out: int = Field(alias="filesLeftOut")


class Invocation(_Sarif):
    execution_successful: bool = Field(alias="executionSuccessful")
    tool_execution_notifications: list[Notification] | None = Field(default=None,
                                                                    alias="toolExecutionNotifications")
    properties: InvocationProperties | None = None


class Run(_Sarif):
    tool: Tool
    invocations: list[Invocation] | None = None
    results: list[Result]
    original_uri_base_ids: dict[str, ArtifactLocation] | None = Field(default=None, alias="originalUriBaseIds")


class SarifLog(_Sarif):
    schema_uri: str = Field(default=SARIF_SCHEMA_URI, alias="$schema")
    version: str = "2.1.0"
    runs: list[Run]

    def to_json(self, indent: int | None = 2) -> str:
        """The log as SARIF JSON text."""
        return self.model_dump_json(by_alias=True, exclude_none=True, indent=indent)


def _artifact(file: str) -> ArtifactLocation:
    if file.startswith("/"):
        return ArtifactLocation(uri="file://" + quote(file))
    return ArtifactLocation(uri=quote(file), uri_base_id=SRCROOT)


def _precision(confidence: float) -> str:
    return next(label for floor, label in PRECISION if confidence >= floor)


def _rules(findings: list[Finding]) -> list[Rule]:
    worst: dict[str, Finding] = {}
    for f in findings:
        if f.rule not in worst or f.severity.rank > worst[f.rule].severity.rank:
            worst[f.rule] = f
    rules = []
    for rule_id in sorted(worst):
        f = worst[rule_id]
        tags = [f.category.value]  # "security" for security rules: what GitHub keys security-severity on
        if f.cwe:
            tags.append(f"external/cwe/{f.cwe.lower()}")
        rules.append(Rule(
            id=rule_id, name=rule_id.replace("-", "_"), short_description=Message(text=f.title[:200]),
            help=Message(text=f.recommendation or f.title), default_configuration=ReportingConfiguration(
                level=LEVEL[f.severity]),
            properties=RuleProperties(tags=tags, precision=_precision(f.confidence),
                                      security_severity=SECURITY_SEVERITY[f.severity]
                                      if f.category is Category.SECURITY else None,
                                      problem_severity=LEVEL[f.severity] if f.severity is not Severity.INFO
                                      else "recommendation")))
    return rules


def _result(f: Finding, index: int) -> Result:
    region = Region(start_line=f.start_line, end_line=f.end_line,
                    snippet=Snippet(text=f.evidence) if f.evidence else None)
    # An aggregated finding is one result: its other occurrences are related locations, then the rest.
    places = [(loc, f"also here ({f.rule}): {loc.message}" if loc.message else f"also here ({f.rule})")
              for loc in f.occurrences] + [(loc, loc.message or "related") for loc in f.related]
    places = places[:MAX_RELATED_LOCATIONS]  # code scanning keeps no more; report.json has them all
    related = [SarifLocation(id=i, message=Message(text=message),
                             physical_location=PhysicalLocation(
                                 artifact_location=_artifact(loc.file),
                                 region=Region(start_line=loc.start_line, end_line=loc.end_line)))
               for i, (loc, message) in enumerate(places, start=1)]
    text = f.title + (f" Fix: {f.recommendation}" if f.recommendation else "")
    prints = {"swarmFindingId/v1": f.id, **({"swarmFingerprint/v1": f.fingerprint} if f.fingerprint else {})}
    return Result(
        rule_id=f.rule, rule_index=index, level=LEVEL[f.severity], message=Message(text=text),
        locations=[SarifLocation(physical_location=PhysicalLocation(artifact_location=_artifact(f.file),
                                                                    region=region))],
        related_locations=related or None, partial_fingerprints=prints,
        properties=ResultProperties(severity=f.severity.value, category=f.category.value, confidence=f.confidence,
                                    cwe=f.cwe, tools=sorted({r.tool for r in f.reporters}),
                                    agents=sorted({r.agent_id for r in f.reporters if r.agent_id}),
                                    found_by=list(dict.fromkeys(r.label() for r in f.reporters)),
                                    occurrences=f.count, reachable=f.reachable, notes=f.notes, package=f.package))


def _invocation(report: Report) -> Invocation:
    """Whether the analysis completed, and if not, who and what did not get done (with why)."""
    outcome = report.outcome
    if outcome is None:
        return Invocation(execution_successful=True)
    notes: list[Notification] = []
    if outcome.status is not RunStatus.COMPLETED:
        notes.append(Notification(level="error", message=Message(
            text=f"The review is {outcome.status.value}: {outcome.reason or 'part of its work was not done'}"),
            properties=NotificationProperties(status=outcome.status.value)))
    for p in outcome.problems:
        where = f" on {p.subject}" if p.subject else ""
        notes.append(Notification(
            level="error" if p.status == "failed" else "warning",
            message=Message(text=f"{p.role} agent {p.agent_id}{where} {p.status} ({p.reason_class.label}): "
                                 f"{p.reason or 'no reason recorded'}"),
            properties=NotificationProperties(status=p.status, reason_class=p.reason_class.value,
                                              agent_id=p.agent_id, file=p.subject or None)))
    if outcome.problems_total > len(outcome.problems):
        notes.append(Notification(level="warning", message=Message(
            text=f"... and {outcome.problems_total - len(outcome.problems)} more agents that did not finish")))
    for item in outcome.left_out:
        path, _, why = item.partition(": ")
        notes.append(Notification(level="warning", message=Message(text=f"File left out: {item}"),
                                  properties=NotificationProperties(file=path, status=why.split(" (")[0] or None)))
    if outcome.left_out_total > len(outcome.left_out):
        notes.append(Notification(level="warning", message=Message(
            text=f"... and {outcome.left_out_total - len(outcome.left_out)} more files left out")))
    return Invocation(
        execution_successful=outcome.status is RunStatus.COMPLETED, tool_execution_notifications=notes or None,
        properties=InvocationProperties(outcome=outcome.status.value, agents=outcome.agents, failed=outcome.failed,
                                        stopped=outcome.stopped, files_left_out=outcome.left_out_total))


def build_sarif(report: Report) -> SarifLog:
    """The report's findings as a SARIF log with one run."""
    rules = _rules(report.findings)
    index = {rule.id: i for i, rule in enumerate(rules)}
    results = [_result(f, index[f.rule]) for f in report.findings]
    root_uri = "file://" + quote(report.root.rstrip("/") + "/")
    return SarifLog(runs=[Run(
        tool=Tool(driver=Driver(name=TOOL_NAME, version=TOOL_VERSION,
                                information_uri="https://github.com/swarm-tasks/swarm-tasks", rules=rules)),
        invocations=[_invocation(report)], results=results,
        original_uri_base_ids={SRCROOT: ArtifactLocation(uri=root_uri)})])


def render_sarif(report: Report, indent: int | None = 2) -> str:
    """The report as SARIF 2.1.0 JSON text."""
    return json_inert(build_sarif(report).to_json(indent))


def sarif_schema() -> dict[str, object]:
    """The vendored OASIS SARIF 2.1.0 JSON schema (see schemas/README.md for its origin)."""
    data = resources.files("swarm_tasks.review").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, object] = json.loads(data)
    return schema

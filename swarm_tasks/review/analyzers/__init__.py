"""The deterministic analyzers, by reviewer kind and language.

Every analyzer is ``(repo_root, file, config) -> list[Finding]``. :func:`run_reviewer` is what a
reviewer agent runs in deterministic mode, and what its "run analyzers" tool runs when a model leads.
"""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.errors import StoppedBySignal
from swarm_tasks.review.analyzers.base import ANALYZER_FAILED, Analyzer
from swarm_tasks.review.analyzers.js_security import js_security
from swarm_tasks.review.analyzers.js_structure import js_complexity, js_docs, js_quality
from swarm_tasks.review.analyzers.python_complexity import python_complexity
from swarm_tasks.review.analyzers.python_quality import python_docs, python_quality
from swarm_tasks.review.analyzers.python_security import python_security
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, ReviewerKind, Severity
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.languages import Language
from swarm_tasks.review.severity import calibrate
from swarm_tasks.review.source import SourceFile

_JS = {ReviewerKind.SECURITY: js_security, ReviewerKind.QUALITY: js_quality,
       ReviewerKind.COMPLEXITY: js_complexity, ReviewerKind.DOCUMENTATION: js_docs}
ANALYZERS: dict[Language, dict[ReviewerKind, Analyzer]] = {
    Language.PYTHON: {ReviewerKind.SECURITY: python_security, ReviewerKind.QUALITY: python_quality,
                      ReviewerKind.COMPLEXITY: python_complexity, ReviewerKind.DOCUMENTATION: python_docs},
    Language.JAVASCRIPT: _JS,
    Language.TYPESCRIPT: _JS,
}
TOOLS: dict[Language, dict[ReviewerKind, tuple[str, ...]]] = {
    Language.PYTHON: {ReviewerKind.SECURITY: ("bandit", "py-ast"), ReviewerKind.QUALITY: ("ruff",),
                      ReviewerKind.COMPLEXITY: ("radon", "py-ast"), ReviewerKind.DOCUMENTATION: ("ruff",)},
    Language.JAVASCRIPT: dict.fromkeys(ReviewerKind, ("js-rules",)),
    Language.TYPESCRIPT: dict.fromkeys(ReviewerKind, ("js-rules",)),
}
_CATEGORY = {ReviewerKind.SECURITY: Category.SECURITY, ReviewerKind.QUALITY: Category.QUALITY,
             ReviewerKind.COMPLEXITY: Category.COMPLEXITY, ReviewerKind.DOCUMENTATION: Category.DOCUMENTATION}


def analyzer_for(kind: ReviewerKind, language: Language) -> Analyzer:
    """The analyzer a ``kind`` reviewer runs on a ``language`` file."""
    return ANALYZERS[language][kind]


def run_reviewer(kind: ReviewerKind, repo_root: Path, file: SourceFile, config: ReviewConfig,
                 agent_id: str | None = None) -> list[Finding]:
    """Run the ``kind`` analyzer on ``file`` and credit its findings to ``agent_id``, at the severity
    table's severities. An analyzer that crashes (a bug in a tool on odd input) becomes an info finding,
    never an exception."""
    analyzer = analyzer_for(kind, file.language)
    try:
        findings = analyzer(repo_root, file, config)
    except StoppedBySignal:
        raise  # not the file's doing: the turn is redone
    except Exception as exc:  # a tool's bug on odd input must not end the review of other files
        findings = [Finding(file=file.path, start_line=1, end_line=1, severity=Severity.INFO,
                            category=_CATEGORY[kind], rule=ANALYZER_FAILED, confidence=1.0,
                            title=f"{kind} analyzer failed: {type(exc).__name__}: {exc}",
                            tool=TOOLS[file.language][kind][0], agent_id=f"analyzer:{kind}",
                            origin=file.origin, package=file.package)]
    findings = [calibrate(f) for f in findings]
    if agent_id is None:
        return findings
    return [f.attributed(agent_id) for f in findings]


__all__ = ["ANALYZERS", "TOOLS", "Analyzer", "analyzer_for", "js_complexity", "js_docs", "js_quality",
           "js_security", "python_complexity", "python_docs", "python_quality", "python_security", "run_reviewer"]

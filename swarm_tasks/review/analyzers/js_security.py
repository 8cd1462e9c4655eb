"""JavaScript/TypeScript security rules: tree-sitter queries (see js_rules.py)."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review import js_rules, jsparse
from swarm_tasks.review.analyzers.base import open_context, unreadable
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.source import SourceFile

TOOL = "js-rules"


def js_security(repo_root: Path, file: SourceFile, config: ReviewConfig) -> list[Finding]:
    """Security rules: eval, command injection, DOM XSS, SQL concatenation, secrets, ..."""
    ctx, text = open_context(repo_root, file, config, TOOL)
    if text is None:
        return unreadable(ctx, Category.SECURITY)
    js = jsparse.parse(text, file.language, file.path)
    findings: list[Finding] = []
    seen: set[tuple[str, int]] = set()
    for rule, node in js_rules.matches(js):
        line = node.start_point.row + 1
        if rule.severity is None or (rule.rule, line) in seen:
            continue  # a signal for the scan only, or the same rule again on its line (nested concatenations)
        seen.add((rule.rule, line))
        findings.append(ctx.finding(line=line, end_line=node.end_point.row + 1, rule=rule.rule, title=rule.title,
                                    severity=rule.severity, category=rule.category, confidence=0.7, cwe=rule.cwe,
                                    recommendation=rule.recommendation))
    return findings

"""JavaScript/TypeScript security heuristics (see js_rules.py for the patterns)."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review import js_rules, jslex
from swarm_tasks.review.analyzers.base import open_context, unreadable
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.source import SourceFile

TOOL = "js-heuristics"


def js_security(repo_root: Path, file: SourceFile, config: ReviewConfig) -> list[Finding]:
    """Security heuristics: eval, command injection, DOM XSS, SQL concatenation, secrets, ..."""
    ctx, text = open_context(repo_root, file, config, TOOL)
    if text is None:
        return unreadable(ctx, Category.SECURITY)
    js = jslex.lex(text)
    findings: list[Finding] = []
    for rule, line, match in js_rules.matches(js):
        if rule.severity is None:
            continue
        end = js.line_of(max(match.start(), match.end() - 1))
        findings.append(ctx.finding(line=line, end_line=end, rule=rule.rule, title=rule.title,
                                    severity=rule.severity, category=rule.category, confidence=0.6, cwe=rule.cwe,
                                    recommendation=rule.recommendation))
    return findings

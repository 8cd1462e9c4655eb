"""JavaScript/TypeScript security rules: tree-sitter queries (see js_rules.py), and ESLint with
eslint-plugin-security beside them where it is installed (eslint_runner.py)."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review import js_rules, jsparse
from swarm_tasks.review.analyzers import eslint_runner
from swarm_tasks.review.analyzers.base import ANALYZER_FAILED, Context, open_context, unreadable
from swarm_tasks.review.analyzers.python_quality import batch_key
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, Severity
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
    if config.eslint and eslint_runner.wants_eslint(file.path):
        findings += _eslint(ctx, repo_root, file, config)
    return findings


def _eslint(ctx: Context, repo_root: Path, file: SourceFile, config: ReviewConfig) -> list[Finding]:
    found = eslint_runner.messages(repo_root, batch_key(config), file.path, config.analyzer_timeout_s)
    if isinstance(found, str):
        # Not installed is said once in the report; a failure on this file is said here.
        return [] if found == eslint_runner.eslint_problem() else [
            ctx.note(ANALYZER_FAILED, found, Category.SECURITY)]
    eslint = Context(ctx.root, ctx.file, ctx.config, eslint_runner.TOOL, ctx.lines)
    out = []
    for message in found:
        rule = message.rule_id or "eslint"
        severity, _ = eslint_runner.RULES.get(rule, (Severity.LOW, None))
        cwe = eslint_runner.cwe_of(message)
        out.append(eslint.finding(line=max(1, message.line), end_line=message.end_line, rule=rule, cwe=cwe,
                                  title=f"{message.message} (ESLint {rule})", severity=severity,
                                  category=Category.SECURITY, confidence=0.6))
    return out

"""JavaScript/TypeScript quality, complexity and documentation heuristics."""

from __future__ import annotations

import re
from pathlib import Path

from swarm_tasks.review import jslex
from swarm_tasks.review.analyzers.base import open_context, unreadable
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, Severity
from swarm_tasks.review.findings import Finding, Location
from swarm_tasks.review.source import SourceFile

TOOL = "js-heuristics"
_QUALITY = (
    ("JS-EMPTY-CATCH", Severity.MEDIUM, "Empty catch block swallows errors",
     "Handle, log or rethrow the error.", re.compile(r"\bcatch\s*(?:\([^)]*\))?\s*\{\s*\}")),
    ("JS-DEBUGGER", Severity.MEDIUM, "debugger statement left in code", "Remove it.",
     re.compile(r"\bdebugger\s*;")),
    ("JS-LOOSE-EQUALITY", Severity.LOW, "Loose equality (== / !=) coerces types",
     "Use === and !==.", re.compile(r"[^=!<>]\s(?:==|!=)\s(?!=)(?!\s*null\b)")),
    ("JS-VAR", Severity.INFO, "var declaration (function-scoped)", "Use let or const.",
     re.compile(r"(?:^|[;{}]\s*)\bvar\s+[\w$]", re.MULTILINE)),
)


def js_quality(repo_root: Path, file: SourceFile, config: ReviewConfig) -> list[Finding]:
    """Empty catches, debugger statements, loose equality, var."""
    ctx, text = open_context(repo_root, file, config, TOOL)
    if text is None:
        return unreadable(ctx, Category.QUALITY)
    js = jslex.lex(text)
    findings = []
    for rule, severity, title, advice, pattern in _QUALITY:
        for match in pattern.finditer(js.skeleton):
            findings.append(ctx.finding(line=js.line_of(match.end() - 1), rule=rule, title=title, severity=severity,
                                        category=Category.QUALITY, confidence=0.7, recommendation=advice))
    return findings


def js_complexity(repo_root: Path, file: SourceFile, config: ReviewConfig) -> list[Finding]:
    """Functions nested too deeply (by brace depth) or too long."""
    ctx, text = open_context(repo_root, file, config, TOOL)
    if text is None:
        return unreadable(ctx, Category.COMPLEXITY)
    findings = []
    for func in jslex.functions(jslex.lex(text)):
        if func.max_depth > config.max_nesting_depth:
            findings.append(ctx.finding(
                line=func.start_line, rule="JS-DEEP-NESTING", severity=Severity.MEDIUM, category=Category.COMPLEXITY,
                title=f"Deeply nested function {func.name}: brace depth {func.max_depth} "
                      f"(limit {config.max_nesting_depth})", confidence=0.7,
                recommendation="Return early and extract inner blocks into named functions.",
                related=[Location(file=file.path, start_line=func.deepest_line, end_line=func.deepest_line,
                                  message="deepest block")]))
        length = func.end_line - func.start_line + 1
        if length > config.max_function_lines:
            findings.append(ctx.finding(
                line=func.start_line, rule="JS-LONG-FUNCTION", severity=Severity.LOW, category=Category.COMPLEXITY,
                title=f"Long function {func.name}: {length} lines (limit {config.max_function_lines})",
                confidence=0.9, recommendation="Split it into smaller functions with one job each."))
    return findings


def js_docs(repo_root: Path, file: SourceFile, config: ReviewConfig) -> list[Finding]:
    """Exported functions without a JSDoc comment."""
    ctx, text = open_context(repo_root, file, config, TOOL)
    if text is None:
        return unreadable(ctx, Category.DOCUMENTATION)
    return [ctx.finding(line=func.start_line, rule="JS-MISSING-JSDOC", severity=Severity.LOW,
                        category=Category.DOCUMENTATION, confidence=0.8,
                        title=f"Exported function {func.name} has no JSDoc comment",
                        recommendation="Add a /** ... */ comment with what it does, its parameters and result.")
            for func in jslex.functions(jslex.lex(text)) if func.exported and not func.has_jsdoc]

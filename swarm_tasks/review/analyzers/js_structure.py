"""JavaScript/TypeScript quality, complexity and documentation, on the tree-sitter syntax tree."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review import js_rules, jsparse
from swarm_tasks.review.analyzers.base import PARSE_ERROR, open_context, unreadable
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, Severity
from swarm_tasks.review.findings import Finding, Location
from swarm_tasks.review.languages import Language
from swarm_tasks.review.source import SourceFile

TOOL = "js-rules"


def js_quality(repo_root: Path, file: SourceFile, config: ReviewConfig) -> list[Finding]:
    """Empty catches, debugger statements, loose equality, var; and where the file does not parse."""
    ctx, text = open_context(repo_root, file, config, TOOL)
    if text is None:
        return unreadable(ctx, Category.QUALITY)
    js = jsparse.parse(text, file.language, file.path)
    findings = []
    seen: set[tuple[str, int]] = set()
    for rule, node in js_rules.matches(js, js_rules.QUALITY):
        line = node.start_point.row + 1
        if (rule.rule, line) in seen or rule.severity is None:
            continue
        seen.add((rule.rule, line))
        findings.append(ctx.finding(line=line, rule=rule.rule, title=rule.title, severity=rule.severity,
                                    category=Category.QUALITY, confidence=0.8, recommendation=rule.recommendation))
    broken = js.syntax_error_line()
    if broken is not None:
        grammar = "TypeScript" if file.language is Language.TYPESCRIPT else "JavaScript"
        findings.append(ctx.finding(line=broken, rule=PARSE_ERROR, severity=Severity.LOW, category=Category.QUALITY,
                                    title=f"Does not parse as {grammar} from line {broken}: findings in the broken "
                                          "part may be missing", confidence=1.0,
                                    recommendation="Fix the syntax (or the file extension, for TypeScript or JSX)."))
    return findings


def js_complexity(repo_root: Path, file: SourceFile, config: ReviewConfig) -> list[Finding]:
    """Functions whose control statements nest too deeply, or that are too long."""
    ctx, text = open_context(repo_root, file, config, TOOL)
    if text is None:
        return unreadable(ctx, Category.COMPLEXITY)
    findings = []
    for func in jsparse.parse(text, file.language, file.path).functions:
        if func.max_depth > config.max_nesting_depth:
            findings.append(ctx.finding(
                line=func.start_line, rule="JS-DEEP-NESTING", severity=Severity.MEDIUM, category=Category.COMPLEXITY,
                title=f"Deeply nested function {func.name}: control statements nest {func.max_depth} deep "
                      f"(limit {config.max_nesting_depth})", confidence=0.9,
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
            for func in jsparse.parse(text, file.language, file.path).functions
            if func.exported and not func.has_jsdoc]

"""Python complexity: radon's cyclomatic complexity per function, and block nesting depth (our AST)."""

from __future__ import annotations

import warnings
from pathlib import Path

from radon.complexity import cc_rank, cc_visit
from radon.visitors import Function

from swarm_tasks.review import pyast
from swarm_tasks.review.analyzers.base import PARSE_ERROR, Context, open_context, unreadable
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, Severity
from swarm_tasks.review.findings import Finding, Location
from swarm_tasks.review.source import SourceFile, quote_lines

# radon's rank letters (A best .. F worst) on our scale; A and B are not reported.
RADON_SEVERITY = {"C": Severity.LOW, "D": Severity.MEDIUM, "E": Severity.HIGH, "F": Severity.HIGH}
RADON_RULE = "RADON-CC"
NESTING_RULE = "PY-DEEP-NESTING"


def python_complexity(repo_root: Path, file: SourceFile, config: ReviewConfig) -> list[Finding]:
    """Functions above the configured cyclomatic complexity or nesting depth."""
    ctx, text = open_context(repo_root, file, config, "radon")
    if text is None:
        return unreadable(ctx, Category.COMPLEXITY)
    try:
        tree = pyast.parse_python(text, file.path)  # first: refuses a tree too deep for radon's recursion
        with pyast.exclusive_ast(), warnings.catch_warnings():  # radon parses the file itself
            warnings.simplefilter("ignore")
            blocks = cc_visit(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        line = getattr(exc, "lineno", None) or 1
        return [ctx.note(PARSE_ERROR, f"complexity not measured: the file {pyast.parse_failure(exc)}",
                         Category.COMPLEXITY, line)]
    findings = [_cc_finding(ctx, b) for b in _functions(blocks) if b.complexity > config.max_cyclomatic_complexity]
    nest = Context(ctx.root, ctx.file, ctx.config, "py-ast", ctx.lines)
    for func in pyast.functions(tree):
        depth = pyast.nesting(func)
        if depth.depth > config.max_nesting_depth:
            severity = Severity.HIGH if depth.depth >= config.max_nesting_depth + 3 else Severity.MEDIUM
            evidence = quote_lines(ctx.lines, func.lineno, func.lineno, 1) + "\n    ...\n" + quote_lines(
                ctx.lines, depth.line, depth.line, 1)
            findings.append(nest.finding(
                line=func.lineno, rule=NESTING_RULE, severity=severity, category=Category.COMPLEXITY,
                title=f"Deeply nested function {func.name}: blocks nest {depth.depth} deep "
                      f"(limit {config.max_nesting_depth})",
                confidence=0.95, evidence=evidence,
                recommendation="Return early, extract the inner loops into helper functions, or use a lookup table.",
                related=[Location(file=file.path, start_line=depth.line, end_line=depth.line,
                                  message=f"deepest block, depth {depth.depth}")]))
    return findings


def _functions(blocks: list[object]) -> list[Function]:
    """Functions and methods, closures included; class totals are left out (they double count)."""
    seen: dict[tuple[int, int], Function] = {}  # radon lists methods both alone and inside their class
    stack = list(blocks)
    while stack:
        block = stack.pop()
        if isinstance(block, Function):
            seen.setdefault((block.lineno, block.col_offset), block)
            stack.extend(block.closures)
        else:
            stack.extend(getattr(block, "methods", []))
            stack.extend(getattr(block, "inner_classes", []))
    return sorted(seen.values(), key=lambda f: (f.lineno, f.col_offset))


def _cc_finding(ctx: Context, block: Function) -> Finding:
    rank = cc_rank(block.complexity)
    return ctx.finding(line=block.lineno, rule=RADON_RULE, severity=RADON_SEVERITY.get(rank, Severity.LOW),
                       category=Category.COMPLEXITY, confidence=0.95,
                       title=f"High cyclomatic complexity in {block.fullname}: {block.complexity} (rank {rank})",
                       evidence=quote_lines(ctx.lines, block.lineno, block.lineno, 1),
                       recommendation="Split the function; each branch cluster becomes a named helper.")

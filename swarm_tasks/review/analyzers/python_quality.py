"""Python quality and documentation through ruff (``--isolated``, our rule selection)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from swarm_tasks.errors import ReviewError
from swarm_tasks.review.analyzers import eslint_runner
from swarm_tasks.review.analyzers.base import ANALYZER_FAILED, PARSE_ERROR, Context, open_context, unreadable
from swarm_tasks.review.analyzers.ruff_runner import RuffDiagnostic, batched, register_batch, run_ruff
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, Severity
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.languages import Language
from swarm_tasks.review.source import SourceFile

# Longest matching prefix wins. Undefined names and pylint errors break at run time; style-ish checks do not.
RUFF_SEVERITY: dict[str, Severity] = {
    "E9": Severity.HIGH, "F821": Severity.HIGH, "F822": Severity.HIGH, "F823": Severity.HIGH,
    "PLE": Severity.MEDIUM, "B": Severity.MEDIUM, "BLE": Severity.MEDIUM, "E722": Severity.MEDIUM,
    "ASYNC": Severity.MEDIUM, "RUF006": Severity.MEDIUM, "F": Severity.LOW, "E7": Severity.LOW,
    "PLW": Severity.LOW, "D": Severity.LOW, "D100": Severity.LOW, "D104": Severity.INFO,
}
SYNTAX = "invalid-syntax"


def ruff_severity(code: str) -> Severity:
    """Our severity for a ruff rule code."""
    for length in range(len(code), 0, -1):
        if code[:length] in RUFF_SEVERITY:
            return RUFF_SEVERITY[code[:length]]
    return Severity.LOW


def _run(repo_root: Path, file: SourceFile, config: ReviewConfig, select: tuple[str, ...],
         category: Category) -> tuple[Context, list[RuffDiagnostic] | None, list[Finding]]:
    ctx, text = open_context(repo_root, file, config, "ruff")
    if text is None:
        return ctx, None, unreadable(ctx, category)
    cwd = repo_root if repo_root.is_dir() else Path("/")
    found = batched(repo_root, batch_key(config), file.path, file.sha256, select, config.analyzer_timeout_s)
    if found is not None:
        return ctx, found, []
    try:
        return ctx, run_ruff(cwd, file.path, text, select, config.analyzer_timeout_s), []
    except ReviewError as exc:
        return ctx, None, [ctx.note(ANALYZER_FAILED, str(exc), category)]


def batch_key(config: ReviewConfig) -> str:
    """Which batch of files a configuration's review shares one ruff run over."""
    return hashlib.sha1(config.encode(), usedforsecurity=False).hexdigest()


def prepare_batch(repo_root: Path, files: list[SourceFile], config: ReviewConfig) -> None:
    """Let one ruff run cover every plain UTF-8 Python file of ``files`` (those the review starts from),
    and one ESLint run its JavaScript files."""
    plain = [(f.path, f.sha256) for f in files if f.language is Language.PYTHON and f.encoding == "utf-8"
             and f.raw_path_hex is None and not f.path.startswith("/") and not f.path.startswith("-")]
    register_batch(repo_root, batch_key(config), plain,
                   tuple(dict.fromkeys([*config.ruff_quality_rules, *config.ruff_doc_rules])))
    if config.eslint:
        eslint_runner.register(repo_root, batch_key(config), [f.path for f in files], config.analyzer_timeout_s)


def python_quality(repo_root: Path, file: SourceFile, config: ReviewConfig) -> list[Finding]:
    """Ruff's quality rules (pyflakes, bugbear, pylint errors/warnings, ...) on one Python file."""
    ctx, diagnostics, notes = _run(repo_root, file, config, config.ruff_quality_rules, Category.QUALITY)
    if diagnostics is None:
        return notes
    findings: list[Finding] = []
    syntax_reported = False
    for diag in diagnostics:
        code = diag.code or diag.name or SYNTAX
        if code == SYNTAX:
            if syntax_reported:  # ruff reports every token it trips on; the first says enough
                continue
            syntax_reported = True
            findings.append(ctx.finding(line=max(1, diag.location.row), rule=PARSE_ERROR,
                                        title=f"Syntax error: {diag.message}", severity=Severity.MEDIUM,
                                        category=Category.QUALITY, confidence=1.0,
                                        recommendation="Fix the syntax error; nothing else in the file was checked."))
            continue
        findings.append(_finding(ctx, diag, code, Category.QUALITY))
    return findings


def python_docs(repo_root: Path, file: SourceFile, config: ReviewConfig) -> list[Finding]:
    """Missing module, class and function docstrings (ruff's pydocstyle rules D100-D104)."""
    ctx, diagnostics, notes = _run(repo_root, file, config, config.ruff_doc_rules, Category.DOCUMENTATION)
    if diagnostics is None:
        return notes
    return [_finding(ctx, d, d.code or "", Category.DOCUMENTATION) for d in diagnostics
            if d.code and d.code != SYNTAX]


def _finding(ctx: Context, diag: RuffDiagnostic, code: str, category: Category) -> Finding:
    row = max(1, diag.location.row)
    end = max(row, diag.end_location.row if diag.end_location else row)
    if category is Category.DOCUMENTATION:
        end = row  # ruff spans the whole definition name line; the def line is the place to fix
    recommendation = ("Add a docstring saying what it does and why it exists." if category is Category.DOCUMENTATION
                      else f"See {diag.url}" if diag.url else "")
    return ctx.finding(line=row, end_line=end, rule=code, title=f"{diag.message} ({diag.name or code})",
                       severity=ruff_severity(code), category=category, confidence=0.9,
                       recommendation=recommendation)

"""What every analyzer shares: its signature, finding construction with evidence, and failure notes.

An analyzer is ``(repo_root, file, config) -> list[Finding]``. It never raises for the reviewed code's
sake: a file that cannot be read or parsed, or a tool that fails, yields an ``info`` finding saying so.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarm_tasks.errors import ReviewError, StoppedBySignal
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, Severity
from swarm_tasks.review.findings import Finding, Location
from swarm_tasks.review.source import SourceFile, quote_lines, read_source

Analyzer = Callable[[Path, SourceFile, ReviewConfig], list[Finding]]

ANALYZER_FAILED = "ANALYZER-FAILED"
PARSE_ERROR = "PARSE-ERROR"
# Signals that stop a process politely (a warm stop, a closed terminal, Ctrl-C): sent from outside, never
# caused by the file under review. A crash (SIGSEGV) or an out-of-memory kill stays a note about the file.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT})


def raise_if_stopped(tool: str, returncode: int | None) -> None:
    """Raise :class:`StoppedBySignal` when ``tool``'s process ended by a stop signal (``-N``): its missing
    output says nothing about the file, and the turn must be redone rather than report it."""
    if returncode is not None and returncode < 0 and -returncode in STOP_SIGNALS:
        raise StoppedBySignal(f"{tool} was stopped by {signal.Signals(-returncode).name} (the worker is stopping)")

# One recommendation per weakness, so every tool that finds it gives the same advice.
RECOMMENDATIONS: dict[str, str] = {
    "CWE-78": "Pass an argument list without a shell (shell=False); never build commands from input.",
    "CWE-89": "Use parameterized queries (placeholders with a parameters tuple), never string formatting.",
    "CWE-95": "Do not evaluate input as code; use ast.literal_eval, json, or a fixed dispatch table.",
    "CWE-502": "Never unpickle or yaml.load untrusted data; use json or yaml.safe_load with a schema.",
    "CWE-798": "Move the secret to the environment or a secret manager, and rotate the exposed value.",
    "CWE-327": "Use a strong algorithm (SHA-256+, bcrypt/argon2 for passwords).",
    "CWE-295": "Keep certificate verification on.",
    "CWE-79": "Escape output or set textContent; sanitize HTML with a vetted library.",
}


@dataclass(frozen=True, slots=True)
class Context:
    """One analyzer run over one file: where, what, and its lines for evidence."""

    root: Path
    file: SourceFile
    config: ReviewConfig
    tool: str
    lines: list[str]

    def finding(self, *, line: int, rule: str, title: str, severity: Severity, category: Category,
                confidence: float, end_line: int | None = None, cwe: str | None = None,
                recommendation: str = "", related: list[Location] | None = None,
                evidence: str | None = None) -> Finding:
        """A finding in this file with its code lines quoted as evidence."""
        end = max(line, end_line or line)
        quoted = evidence if evidence is not None else quote_lines(
            self.lines, line, end, self.config.evidence_max_lines)
        limit = self.config.evidence_max_chars
        if len(quoted) > limit:
            quoted = f"{quoted[:limit]} [... {len(quoted) - limit:,} more characters]"
        return Finding(file=self.file.path, start_line=max(1, line), end_line=max(1, end), severity=severity,
                       category=category, rule=rule, title=title, evidence=quoted,
                       recommendation=recommendation or RECOMMENDATIONS.get(cwe or "", ""),
                       confidence=confidence, tool=self.tool, agent_id=f"analyzer:{self.tool}", cwe=cwe,
                       related=related or [], origin=self.file.origin, package=self.file.package)

    def note(self, rule: str, message: str, category: Category, line: int = 1) -> Finding:
        """An info finding: the analyzer could not do its job on this file, and why."""
        return self.finding(line=min(max(1, line), max(1, len(self.lines))), rule=rule, title=message,
                            severity=Severity.INFO, category=category, confidence=1.0,
                            recommendation="Check the file by hand; automated review was incomplete.")


def open_context(root: Path, file: SourceFile, config: ReviewConfig, tool: str) -> tuple[Context, str | None]:
    """A context and the file's text, or a context without lines and None when the file is unreadable."""
    try:
        text = read_source(root, file)
    except ReviewError:
        return Context(root, file, config, tool, []), None
    return Context(root, file, config, tool, text.splitlines()), text


def unreadable(ctx: Context, category: Category) -> list[Finding]:
    """The note for a file that vanished or became unreadable between inventory and analysis."""
    return [ctx.note(ANALYZER_FAILED, f"{ctx.tool}: file could not be read", category)]

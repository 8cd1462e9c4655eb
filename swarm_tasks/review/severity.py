"""Severity calibration: one table from the kind of a finding to its severity, for analyzers and models alike.

A finding's kind is found from its rule first (analyzer rule ids we know, bandit test ids included), then
from its CWE, so a model that says ``CWE-89`` gets the same severity as bandit's B608. Each kind has a
severity and, for the kinds where it matters, a higher one when untrusted input was traced to the flaw
(``Finding.reachable``: a taint-trace or deserialization-source sub-reviewer, deterministic or model,
confirmed it). A finding of no kind in the table keeps its reporter's severity, capped by its category:
documentation is never above low, complexity and quality never above high.

The table (``KINDS``) is rendered in the README's "Severity" section; a test keeps the two in step.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass

from swarm_tasks.review.enums import Category, Severity
from swarm_tasks.review.findings import Finding


@dataclass(frozen=True, slots=True)
class Kind:
    """One row of the table: what the flaw is, how it is recognised, and how severe it is."""

    name: str
    severity: Severity
    reachable: Severity  # when untrusted input reaches it
    cwes: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()  # fnmatch globs on Finding.rule, checked before any CWE

    def severity_for(self, reachable: bool) -> Severity:
        """The table's severity for a finding of this kind."""
        return self.reachable if reachable else self.severity


C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW
# Bandit's injection tests are recognised by the CWE its findings carry: python_security drops the CWE
# when bandit itself rates the call low (a shell run with a constant command is not an injection).
KINDS: tuple[Kind, ...] = (
    # Calls that only start a process or import a risky module: leads, not flaws (bandit B603/B607, B4xx).
    Kind("process start without a shell", L, L, rules=("B603", "B607")),
    Kind("risky module imported", L, L, rules=("B40[0-9]", "B41[0-9]")),
    Kind("non-cryptographic random number generator", L, L, rules=("B311",)),
    Kind("debug mode on (interactive debugger reachable)", H, H, rules=("B201",)),
    Kind("code injection (eval, exec, new Function)", H, C, ("CWE-94", "CWE-95"),
         ("PY-EVAL-*", "JS-EVAL", "*code*injection*", "eval", "eval-*", "*-eval", "*-eval-*")),
    Kind("command injection", H, C, ("CWE-77", "CWE-78", "CWE-88"),
         ("PY-SHELL-*", "JS-EXEC-*", "JS-SPAWN-*", "*command*injection*", "*shell*injection*")),
    Kind("SQL injection", H, C, ("CWE-89", "CWE-564"), ("PY-SQL-*", "JS-SQL-*", "*sql*injection*")),
    Kind("unsafe deserialization", H, C, ("CWE-502",),
         ("*-UNSAFE-DESERIALIZATION", "*deserializ*", "*pickle*")),
    Kind("path traversal", M, H, ("CWE-22", "CWE-23", "CWE-73")),
    Kind("server-side request forgery", M, H, ("CWE-918",)),
    Kind("XML external entities", M, H, ("CWE-611", "CWE-776")),
    Kind("cross-site scripting", H, H, ("CWE-79", "CWE-80"), ("JS-XSS-*",)),
    Kind("hard-coded credential", H, H, ("CWE-798", "CWE-259", "CWE-321"),
         ("B105", "B106", "B107", "*-HARDCODED-SECRET", "JS-SECRET-FORMAT")),
    Kind("secret written to a log", H, H, ("CWE-532", "CWE-312"), ("SECRET-LOGGED",)),
    Kind("broken authentication (unverified JWT, predictable token)", H, H, ("CWE-347", "CWE-330", "CWE-338"),
         ("AUTH-JWT-*", "AUTH-PREDICTABLE-*")),
    Kind("weak password hashing", H, H, ("CWE-916", "CWE-759"), ("AUTH-WEAK-PASSWORD-HASH",)),
    Kind("weak cryptography", M, M, ("CWE-327", "CWE-328", "CWE-326")),
    Kind("certificate verification disabled", M, M, ("CWE-295",)),
    Kind("timing-unsafe secret comparison", M, M, ("CWE-208",)),
    Kind("insecure temporary file", L, L, ("CWE-377",)),
    Kind("binding to all interfaces", L, L, ("CWE-605",)),
    Kind("swallowed exception", L, L, ("CWE-703", "CWE-390"), ("B110", "B112")),
)
CATEGORY_CAP: dict[Category, Severity] = {Category.DOCUMENTATION: L, Category.COMPLEXITY: H, Category.QUALITY: H}
# Test code does not run in production: its security findings are one step less severe.
TEST_PATH = re.compile(r"(^|/)(tests?|spec|specs|__tests__|fixtures?)(/|$)|(^|/)test_[^/]*$|_test\.py$"
                       r"|\.(test|spec)\.[cm]?[jt]sx?$")
_LOWER = {C: H, H: M, M: L, L: L, Severity.INFO: Severity.INFO}


def kind_of(finding: Finding) -> Kind | None:
    """The table row of a finding: by rule id first (case-insensitive: models name rules in kebab-case),
    then by CWE."""
    return _kind_of(finding.rule.lower(), finding.cwe)


@functools.lru_cache(maxsize=4096)
def _kind_of(rule: str, cwe: str | None) -> Kind | None:  # a review has a few hundred rules, asked per finding
    for kind in KINDS:
        if any(fnmatch.fnmatchcase(rule, glob.lower()) for glob in kind.rules):
            return kind
    if cwe:
        for kind in KINDS:
            if cwe in kind.cwes:
                return kind
    return None


def calibrated(finding: Finding) -> Severity:
    """The severity the table gives ``finding``."""
    if finding.category is Category.DEPENDENCY:
        return finding.severity  # inherits the worst finding of the package it points at
    kind = kind_of(finding) if finding.category is Category.SECURITY or finding.cwe else None
    if kind is not None:
        severity = kind.severity_for(finding.reachable)
        return _LOWER[severity] if TEST_PATH.search(finding.file) else severity
    cap = CATEGORY_CAP.get(finding.category)
    if cap is not None and finding.severity.rank > cap.rank:
        return cap
    return finding.severity


def calibrate(finding: Finding) -> Finding:
    """``finding`` at its table severity (the same object when nothing changes)."""
    severity = calibrated(finding)
    if severity is finding.severity:
        return finding
    reporters = [r.model_copy(update={"severity": severity}) if r.rule == finding.rule else r
                 for r in finding.reporters]
    return finding.model_copy(update={"severity": severity, "reporters": reporters})


def table_markdown() -> str:
    """The table as Markdown (the README's copy is checked against this)."""
    rows = ["| Kind of finding | Recognised by | Severity | Reachable from input |", "| --- | --- | --- | --- |"]
    for kind in KINDS:
        marks = ", ".join([*kind.cwes, *(f"`{r}`" for r in kind.rules)])
        rows.append(f"| {kind.name} | {marks} | {kind.severity.value} | {kind.reachable.value} |")
    return "\n".join(rows)

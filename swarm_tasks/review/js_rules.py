"""Regex rules for JavaScript/TypeScript, shared by the quick scan (flags) and the JS analyzers (findings).

They run over the text with comments blanked, so a commented-out ``eval(`` is not reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from swarm_tasks.review.enums import Category, ScanFlag, Severity
from swarm_tasks.review.jslex import JsText
from swarm_tasks.review.pyast import PLACEHOLDER, SECRET_VALUE

_SQL = r"(?:select\s[^'\"`]*?\bfrom|insert\s+into|update\s+[\w$.]+\s+set|delete\s+from|where\s+[\w$.]+\s*=)"


def _secret_ok(match: re.Match[str]) -> bool:
    value = match.group("value")
    return bool(SECRET_VALUE.search(value)) or not PLACEHOLDER.match(value)


@dataclass(frozen=True, slots=True)
class JsRule:
    """One heuristic: a pattern, what it means, and how bad it is."""

    rule: str
    flag: ScanFlag
    category: Category
    severity: Severity | None  # None: a scan signal only, never a finding
    cwe: str | None
    title: str
    recommendation: str
    pattern: re.Pattern[str]
    accept: Callable[[re.Match[str]], bool] | None = None


RULES: tuple[JsRule, ...] = (
    JsRule("JS-EVAL", ScanFlag.EVAL, Category.SECURITY, Severity.HIGH, "CWE-95",
           "Dynamic code evaluation (eval / new Function / string timer)",
           "Never evaluate strings as code; parse data with JSON.parse or dispatch on a fixed table.",
           re.compile(r"\beval\s*\(|\bnew\s+Function\s*\(|\bset(?:Timeout|Interval)\s*\(\s*['\"`]")),
    JsRule("JS-EXEC-INJECTION", ScanFlag.SHELL, Category.SECURITY, Severity.CRITICAL, "CWE-78",
           "Shell command built from variables (child_process exec with concatenation or template)",
           "Use execFile/spawn with an argument array and no shell; validate inputs against an allow-list.",
           re.compile(r"\b(?:exec|execSync)\s*\(\s*(?:`[^`]*\$\{|['\"][^'\"]*['\"]\s*\+|[\w$.]+\s*\+)")),
    JsRule("JS-SPAWN-SHELL", ScanFlag.SHELL, Category.SECURITY, Severity.HIGH, "CWE-78",
           "Process spawned with shell: true",
           "Drop shell: true and pass arguments as an array.",
           re.compile(r"\bspawn(?:Sync)?\s*\([^;]*?\bshell\s*:\s*true")),
    JsRule("JS-CHILD-PROCESS", ScanFlag.SHELL, Category.SECURITY, None, None, "Uses child_process", "",
           re.compile(r"child_process")),
    JsRule("JS-XSS-HTML", ScanFlag.XSS, Category.SECURITY, Severity.HIGH, "CWE-79",
           "HTML built from data written to the DOM (innerHTML / outerHTML / insertAdjacentHTML)",
           "Assign textContent, or sanitize with a vetted library (DOMPurify) before inserting HTML.",
           re.compile(r"\.(?:inner|outer)HTML\s*\+?=\s*(?!\s*['\"][^'\"`+]*['\"]\s*;)|\binsertAdjacentHTML\s*\(|"
                      r"dangerouslySetInnerHTML")),
    JsRule("JS-XSS-DOCUMENT-WRITE", ScanFlag.XSS, Category.SECURITY, Severity.MEDIUM, "CWE-79",
           "document.write of dynamic content", "Build DOM nodes and set textContent instead.",
           re.compile(r"\bdocument\.write(?:ln)?\s*\(")),
    JsRule("JS-SQL-INJECTION", ScanFlag.SQL, Category.SECURITY, Severity.HIGH, "CWE-89",
           "SQL built by string concatenation or template interpolation",
           "Use parameterized queries (placeholders and a values array) from the database driver.",
           re.compile(rf"(?:['\"]\s*{_SQL}[^'\"]*['\"]\s*\+|`[^`]*{_SQL}[^`]*\$\{{)", re.IGNORECASE)),
    JsRule("JS-HARDCODED-SECRET", ScanFlag.SECRETS, Category.SECURITY, Severity.HIGH, "CWE-798",
           "Hard-coded secret", "Load secrets from the environment or a secret manager; rotate this one.",
           re.compile(r"\b[\w$]*(?:password|passwd|secret|token|api[_-]?key|apikey|private[_-]?key)[\w$]*['\"]?"
                      r"\s*[:=]\s*(['\"])(?P<value>[^'\"\s]{6,})\1", re.IGNORECASE), _secret_ok),
    JsRule("JS-SECRET-FORMAT", ScanFlag.SECRETS, Category.SECURITY, Severity.HIGH, "CWE-798",
           "String literal in the format of a live credential",
           "Remove the credential from source, rotate it, and load it from the environment.",
           SECRET_VALUE),
    JsRule("JS-UNSAFE-DESERIALIZATION", ScanFlag.DESERIALIZATION, Category.SECURITY, Severity.HIGH, "CWE-502",
           "Unsafe deserialization (node-serialize unserialize / js-yaml load of untrusted data)",
           "Deserialize with JSON.parse or yaml.load with the default safe schema (js-yaml >= 4).",
           re.compile(r"\bunserialize\s*\(|\byaml\.load\s*\(")),
    JsRule("JS-WEAK-HASH", ScanFlag.CRYPTO, Category.SECURITY, Severity.MEDIUM, "CWE-327",
           "Weak hash algorithm (MD5/SHA-1)", "Use SHA-256 or better; for passwords use bcrypt/scrypt/argon2.",
           re.compile(r"createHash\s*\(\s*['\"](?:md5|sha1)['\"]", re.IGNORECASE)),
    JsRule("JS-TLS-DISABLED", ScanFlag.CRYPTO, Category.SECURITY, Severity.MEDIUM, "CWE-295",
           "TLS certificate verification disabled", "Keep rejectUnauthorized true; trust a CA bundle instead.",
           re.compile(r"rejectUnauthorized\s*:\s*false|NODE_TLS_REJECT_UNAUTHORIZED")),
    JsRule("JS-NETWORK", ScanFlag.NETWORK, Category.SECURITY, None, None, "Network access", "",
           re.compile(r"\bfetch\s*\(|\baxios\b|\bhttps?\.(?:request|get)\s*\(|\bXMLHttpRequest\b|\bWebSocket\s*\(")),
    JsRule("JS-AUTH", ScanFlag.AUTH, Category.SECURITY, None, None, "Authentication code", "",
           re.compile(r"\b(?:jwt|jsonwebtoken|passport|bcrypt|login|logout|authenticate|session)\b", re.IGNORECASE)),
)


def matches(js: JsText) -> Iterator[tuple[JsRule, int, re.Match[str]]]:
    """(rule, line, match) for every rule hit in comment-free code."""
    for rule in RULES:
        for match in rule.pattern.finditer(js.code):
            if rule.accept is None or rule.accept(match):
                yield rule, js.line_of(match.start()), match

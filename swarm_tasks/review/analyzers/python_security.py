"""Python security: bandit in-process, plus AST rules for what bandit misses or rates too low.

``# nosec`` comments in the reviewed code are ignored: the code under review does not get to silence
its reviewer. Bandit's CWE numbers are normalised where they are wrong for our purpose (eval is CWE-95,
not 78) so that merging recognises the same weakness reported by bandit and by our rules.
"""

from __future__ import annotations

import ast
import logging
import warnings
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from swarm_tasks.review import pyast
from swarm_tasks.review.analyzers.base import PARSE_ERROR, Context, open_context, unreadable
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, Severity
from swarm_tasks.review.findings import Finding, Location, at_least
from swarm_tasks.review.source import SourceFile, source_path

if TYPE_CHECKING:
    from bandit.core.issue import Issue

BANDIT_SEVERITY = {"HIGH": Severity.HIGH, "MEDIUM": Severity.MEDIUM, "LOW": Severity.LOW}
BANDIT_CONFIDENCE = {"HIGH": 0.9, "MEDIUM": 0.6, "LOW": 0.35}
# Dangerous sinks bandit rates medium or low that a reviewer must treat as high.
BANDIT_FLOOR = {"B102": Severity.HIGH, "B307": Severity.HIGH, "B301": Severity.HIGH, "B302": Severity.HIGH,
                "B506": Severity.HIGH, "B608": Severity.HIGH, "B105": Severity.HIGH, "B106": Severity.HIGH,
                "B107": Severity.HIGH}
BANDIT_CWE = {"B102": "CWE-95", "B307": "CWE-95", "B506": "CWE-502", "B301": "CWE-502", "B302": "CWE-502",
              "B105": "CWE-798", "B106": "CWE-798", "B107": "CWE-798", "B608": "CWE-89", "B602": "CWE-78",
              "B604": "CWE-78", "B605": "CWE-78", "B609": "CWE-78"}
# Injection tests that bandit rates low when the command is a literal.
CONSTANT_WHEN_LOW = frozenset({"B602", "B604", "B605", "B609"})
_SKIP_TESTS = {"B101"}  # assert_used: noise in a review, tests are full of asserts
logging.getLogger("bandit").setLevel(logging.CRITICAL)  # failures come back to us as skipped files


def python_security(repo_root: Path, file: SourceFile, config: ReviewConfig) -> list[Finding]:
    """Bandit findings and our AST rules for one Python file."""
    ctx, text = open_context(repo_root, file, config, "bandit")
    if text is None:
        return unreadable(ctx, Category.SECURITY)
    own = Context(ctx.root, ctx.file, ctx.config, "py-ast", ctx.lines)
    try:
        tree = pyast.parse_python(text, file.path)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        line = getattr(exc, "lineno", None) or 1  # bandit would fail the same way: one note is enough
        return [own.note(PARSE_ERROR, f"security analysis skipped: the file {pyast.parse_failure(exc)}",
                         Category.SECURITY, line)]
    return _bandit(ctx) + AstRules(own, tree).run()


@lru_cache(maxsize=1)
def _bandit_modules() -> tuple[ModuleType, ModuleType]:
    """bandit's config and manager modules, imported on first use: bandit 1.9 passes stevedore an argument
    stevedore 5 deprecates, at import time. The warning is theirs, so it is silenced here."""
    stevedore_log = logging.getLogger("stevedore")
    level = stevedore_log.level
    stevedore_log.setLevel(logging.CRITICAL)  # it logs an error for bandit's optional SARIF formatter
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from bandit.core import config, manager
    finally:
        stevedore_log.setLevel(level)
    return config, manager


def _bandit(ctx: Context) -> list[Finding]:
    path = str(source_path(ctx.root, ctx.file))  # confined: bandit reads the file itself
    bandit_config, bandit_manager = _bandit_modules()
    # bandit parses the file itself: under the one AST lock (it is not documented as thread-safe either)
    with pyast.exclusive_ast(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reviewed code's SyntaxWarnings are not ours either
        conf = bandit_config.BanditConfig()
        mgr = bandit_manager.BanditManager(conf, "file", quiet=True, ignore_nosec=True,
                                           profile={"exclude": _SKIP_TESTS, "include": set()})
        mgr.discover_files([path])
        mgr.run_tests()
        issues: list[Issue] = mgr.get_issue_list()
        skipped = mgr.get_skipped()
    findings = [_from_bandit(ctx, issue) for issue in issues if issue.test_id not in _SKIP_TESTS]
    for _, reason in skipped:
        findings.append(ctx.note(PARSE_ERROR, f"bandit skipped the file: {reason}", Category.SECURITY))
    return findings


def _from_bandit(ctx: Context, issue: Issue) -> Finding:
    severity = BANDIT_SEVERITY.get(str(issue.severity), Severity.LOW)
    severity = at_least(severity, BANDIT_FLOOR.get(issue.test_id, Severity.INFO))
    cwe = BANDIT_CWE.get(issue.test_id) or (f"CWE-{issue.cwe.id}" if issue.cwe and issue.cwe.id else None)
    if issue.test_id in CONSTANT_WHEN_LOW and str(issue.severity) == "LOW":
        cwe = None  # bandit's "seems safe": a constant command, not an injection (see severity.py)
    lines = [int(n) for n in (issue.linerange or [issue.lineno])]
    return ctx.finding(line=int(issue.lineno), end_line=max(lines), rule=issue.test_id,
                       title=f"{issue.text} ({issue.test})", severity=severity, category=Category.SECURITY,
                       confidence=BANDIT_CONFIDENCE.get(str(issue.confidence), 0.5), cwe=cwe)


class AstRules:
    """Our own checks: secrets by name or token format, eval/exec, shell, SQL and deserialization sinks."""

    def __init__(self, ctx: Context, tree: ast.Module) -> None:
        self.ctx = ctx
        self.tree = tree
        self.aliases = pyast.import_aliases(tree)
        self.out: list[Finding] = []

    def run(self) -> list[Finding]:
        """All findings of the AST rules."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                self._call(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                self._assign(node)
        return self.out

    def _add(self, node: ast.AST, rule: str, title: str, cwe: str, severity: Severity, confidence: float,
             start: int | None = None, related: list[Location] | None = None) -> None:
        line = getattr(node, "lineno", 1)
        end = getattr(node, "end_lineno", line) or line
        self.out.append(self.ctx.finding(line=start or line, end_line=end, rule=rule, title=title, cwe=cwe,
                                         severity=severity, category=Category.SECURITY, confidence=confidence,
                                         related=related))

    def _assign(self, node: ast.Assign | ast.AnnAssign) -> None:
        value = node.value
        if not pyast.is_constant_str(value):
            return
        text = str(value.value)  # type: ignore[union-attr]
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            name = pyast.dotted(target)
            if name and pyast.looks_secret(name, text):
                self._add(node, "PY-HARDCODED-SECRET", f"Hard-coded secret in {name}", "CWE-798", Severity.HIGH,
                          0.8 if pyast.SECRET_VALUE.search(text) else 0.6)
                return

    def _call(self, call: ast.Call) -> None:
        name = pyast.call_name(call, self.aliases)
        first = call.args[0] if call.args else None
        dynamic = first is not None and not pyast.is_literal(first)
        if name in pyast.EVAL_CALLS - {"compile"} and dynamic:
            self._add(call, "PY-EVAL-INPUT", f"{name}() of a non-literal value runs arbitrary code", "CWE-95",
                      Severity.HIGH, 0.8)
        shell_kw = any(k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in call.keywords)
        if dynamic and (name in pyast.SHELL_CALLS or (shell_kw and name in pyast.SUBPROCESS_CALLS)):
            built = first is not None and pyast.formatted_string(first) is not None
            self._add(call, "PY-SHELL-INJECTION",
                      f"{name}() runs a shell command built from {'formatted input' if built else 'a variable'}",
                      "CWE-78", Severity.HIGH, 0.85 if built else 0.6)
        if name in pyast.DESERIALIZE_CALLS and dynamic and not _safe_loader(call):
            self._add(call, "PY-UNSAFE-DESERIALIZATION", f"{name}() of data that may be untrusted", "CWE-502",
                      Severity.HIGH, 0.7)
        method = call.func.attr if isinstance(call.func, ast.Attribute) else ""
        if method in pyast.SQL_METHODS and first is not None:
            self._sql(call, method, first)

    def _sql(self, call: ast.Call, method: str, query: ast.AST) -> None:
        built = pyast.formatted_string(query)
        if built is not None and pyast.is_sql_text(built):
            self._add(call, "PY-SQL-INJECTION", f".{method}() of SQL built by string formatting", "CWE-89",
                      Severity.HIGH, 0.8)
            return
        if not isinstance(query, ast.Name):
            return
        # The query was built earlier in the function: report from the building line to the call.
        func = pyast.enclosing_function(self.tree, call.lineno)
        scope = func if func is not None else self.tree
        for node in ast.walk(scope):
            if (isinstance(node, ast.Assign) and node.lineno < call.lineno
                    and any(isinstance(t, ast.Name) and t.id == query.id for t in node.targets)):
                text = pyast.formatted_string(node.value)
                if text is not None and pyast.is_sql_text(text):
                    self._add(call, "PY-SQL-INJECTION", f".{method}({query.id}) runs SQL built by string "
                              "formatting", "CWE-89", Severity.HIGH, 0.8, start=node.lineno,
                              related=[Location(file=self.ctx.file.path, start_line=node.lineno,
                                                end_line=node.lineno, message="query built here")])
                    return


def _safe_loader(call: ast.Call) -> bool:
    loaders = [k.value for k in call.keywords if k.arg == "Loader"] + call.args[1:2]
    return any("Safe" in pyast.dotted(v) for v in loaders)

"""The deterministic sub-reviewers: what the swarm's sub-reviewer agents run when no model is configured.

taint-trace and deserialization-source live in taint.py; secret-exposure and auth-flow are here.
"""

from __future__ import annotations

import ast
import re

from swarm_tasks.review import pyast
from swarm_tasks.review.code_index import CodeIndex
from swarm_tasks.review.enums import Category, Severity, SubReviewerKind
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.languages import Language
from swarm_tasks.review.severity import TEST_PATH
from swarm_tasks.review.source import quote_lines
from swarm_tasks.review.subreview_models import FindingUpdate, SubreviewOutcome
from swarm_tasks.review.subreview_rules import SubreviewRequest
from swarm_tasks.review.taint import trace

_ASSIGNED = re.compile(r"""([\w$.]+)['"]?\s*[:=]\s*(?:[\w$.]+\s*\(\s*)?['"]([^'"]{4,})['"]""")
_LOGGING = re.compile(r"\b(?:print|logging\.\w+|log(?:ger)?\.\w+|console\.\w+|warn|debug|info|error)\s*\(")


def run_subreviewer(request: SubreviewRequest, finding: Finding, index: CodeIndex) -> SubreviewOutcome:
    """Run one deterministic sub-reviewer on the finding it was spawned for."""
    if request.reviewer in (SubReviewerKind.TAINT_TRACE, SubReviewerKind.DESERIALIZATION_SOURCE):
        return trace(request, finding, index)
    if request.reviewer is SubReviewerKind.SECRET_EXPOSURE:
        return secret_exposure(request, finding, index)
    return auth_flow(request, finding, index)


def secret_exposure(request: SubreviewRequest, finding: Finding, index: CodeIndex) -> SubreviewOutcome:
    """Other uses of the secret's name and copies of its value; uses inside logging calls are findings."""
    update = FindingUpdate(finding, request)
    lines = index.lines(finding.file)
    line_text = lines[finding.start_line - 1] if 0 < finding.start_line <= len(lines) else finding.evidence
    match = _ASSIGNED.search(line_text)
    new: list[Finding] = []
    if match is None:
        update.notes.append("secret-exposure: could not tell the secret's name and value from the code line")
        return SubreviewOutcome(request=request, finding=update.apply(), summary=update.notes[0])
    name, value = match.group(1).split(".")[-1], match.group(2)
    needles = [re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])"), re.compile(re.escape(value))]
    uses = 0
    for path in index.paths():
        for number, text in enumerate(index.lines(path), start=1):
            if path == finding.file and number == finding.start_line:
                continue
            if not any(n.search(text) for n in needles):
                continue
            uses += 1
            copy = value in text
            update.relate(path, number, "copy of the secret value" if copy else f"uses {name}")
            if _LOGGING.search(text):
                new.append(_logged(request, path, number, name, index))
    if TEST_PATH.search(finding.file):  # the severity table lowers findings in test code
        update.doubt(0.5)
        update.notes.append("secret-exposure: the secret is in test code")
    if pyast.SECRET_VALUE.search(value):
        update.corroborate(0.95)
        update.notes.append("secret-exposure: the value has the format of a live credential")
    update.notes.append(f"secret-exposure: {name} is used or copied at {uses} other place(s), logged at {len(new)}")
    return SubreviewOutcome(request=request, finding=update.apply(), new_findings=new, summary=update.notes[-1])


def _logged(request: SubreviewRequest, path: str, line: int, name: str, index: CodeIndex) -> Finding:
    file = index.files[path]
    return Finding(file=path, start_line=line, end_line=line, severity=Severity.HIGH, category=Category.SECURITY,
                   rule="SECRET-LOGGED", title=f"Secret {name} written to a log or output",
                   evidence=quote_lines(index.lines(path), line, line, 1), cwe="CWE-532",
                   recommendation="Never log secrets; log a fingerprint or nothing.", confidence=0.75,
                   tool=str(request.reviewer), agent_id=request.agent_id, origin=file.origin, package=file.package)


_TOKENISH = re.compile(r"(token|session|otp|nonce|reset|salt|key|secret|code|sid)", re.IGNORECASE)
_PASSWORDY = re.compile(r"(passw|pwd|token|secret|digest|hash|signature|api_?key)", re.IGNORECASE)


def auth_flow(request: SubreviewRequest, finding: Finding, index: CodeIndex) -> SubreviewOutcome:
    """Look over an authentication file: timing-unsafe compares, weak password hashing, predictable tokens,
    JWTs decoded without verification."""
    update = FindingUpdate(finding, request)
    file = index.files.get(request.file)
    new: list[Finding] = []
    if file is not None and file.language is Language.PYTHON:
        tree = index.tree(request.file)
        if tree is not None:
            new = _AuthChecks(request, index, tree).run()
    elif file is not None:
        new = _auth_js(request, index)
    update.notes.append(f"auth-flow: {len(new)} authentication weakness(es) in {request.file}")
    return SubreviewOutcome(request=request, finding=update.apply(), new_findings=new, summary=update.notes[-1])


class _AuthChecks:
    def __init__(self, request: SubreviewRequest, index: CodeIndex, tree: ast.Module) -> None:
        self.request = request
        self.index = index
        self.tree = tree
        self.aliases = pyast.import_aliases(tree)
        self.out: list[Finding] = []

    def add(self, line: int, rule: str, title: str, severity: Severity, cwe: str, advice: str) -> None:
        file = self.index.files[self.request.file]
        self.out.append(Finding(
            file=file.path, start_line=line, end_line=line, severity=severity, category=Category.SECURITY, rule=rule,
            title=title, evidence=quote_lines(self.index.lines(file.path), line, line, 1), cwe=cwe,
            recommendation=advice, confidence=0.7, tool="auth-flow", agent_id=self.request.agent_id,
            origin=file.origin, package=file.package))

    def run(self) -> list[Finding]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                sides = [pyast.dotted(x) for x in (node.left, *node.comparators)]
                if any(_PASSWORDY.search(s) for s in sides if s) and not any(
                        isinstance(x, ast.Constant) and x.value is None for x in node.comparators):
                    self.add(node.lineno, "AUTH-TIMING-COMPARE", "Secret compared with == (timing side channel)",
                             Severity.MEDIUM, "CWE-208", "Compare secrets with hmac.compare_digest.")
            elif isinstance(node, ast.Call):
                self._call(node)
        return self.out

    def _call(self, call: ast.Call) -> None:
        name = pyast.call_name(call, self.aliases)
        args = " ".join(pyast.dotted(a) or ast.unparse(a) for a in call.args)
        if name in ("hashlib.md5", "hashlib.sha1", "hashlib.sha256") and _PASSWORDY.search(args):
            self.add(call.lineno, "AUTH-WEAK-PASSWORD-HASH", f"Password hashed with fast unsalted {name}",
                     Severity.HIGH, "CWE-916", "Hash passwords with bcrypt, scrypt or argon2 (with a salt).")
        line_text = self.index.lines(self.request.file)[call.lineno - 1] if call.lineno <= len(
            self.index.lines(self.request.file)) else ""
        if name.startswith("random.") and _TOKENISH.search(line_text):
            self.add(call.lineno, "AUTH-PREDICTABLE-TOKEN", f"{name}() is predictable; not for tokens or sessions",
                     Severity.HIGH, "CWE-330", "Use the secrets module (secrets.token_urlsafe).")
        if name == "jwt.decode":
            unverified = any(
                (k.arg == "verify" and isinstance(k.value, ast.Constant) and k.value.value is False)
                or (k.arg == "options" and "'verify_signature': False" in ast.unparse(k.value))
                or (k.arg == "algorithms" and "none" in ast.unparse(k.value).lower())
                for k in call.keywords)
            if unverified:
                self.add(call.lineno, "AUTH-JWT-UNVERIFIED", "JWT decoded without verifying its signature",
                         Severity.HIGH, "CWE-347", "Verify signatures with a fixed algorithm list.")


_JS_AUTH = (
    ("AUTH-TIMING-COMPARE", Severity.MEDIUM, "CWE-208", "Secret compared with == / === (timing side channel)",
     "Use crypto.timingSafeEqual.", re.compile(r"(?:passw\w*|token|secret|hash)\s*[!=]==?\s*[\w$.]+", re.IGNORECASE)),
    ("AUTH-PREDICTABLE-TOKEN", Severity.HIGH, "CWE-330", "Math.random() used for a token or id",
     "Use crypto.randomBytes / crypto.randomUUID.", re.compile(r"Math\.random\s*\(")),
    ("AUTH-JWT-UNVERIFIED", Severity.HIGH, "CWE-347", "jwt.decode trusts an unverified token",
     "Use jwt.verify with an explicit algorithms list.", re.compile(r"\bjwt\.decode\s*\(")),
)


def _auth_js(request: SubreviewRequest, index: CodeIndex) -> list[Finding]:
    js = index.js(request.file)
    file = index.files[request.file]
    if js is None:
        return []
    out = []
    for rule, severity, cwe, title, advice, pattern in _JS_AUTH:
        for match in pattern.finditer(js.code):
            line = js.line_of(match.start())
            out.append(Finding(file=file.path, start_line=line, end_line=line, severity=severity,
                               category=Category.SECURITY, rule=rule, title=title, cwe=cwe, recommendation=advice,
                               evidence=quote_lines(js.lines, line, line, 1), confidence=0.6, tool="auth-flow",
                               agent_id=request.agent_id, origin=file.origin, package=file.package))
    return out


__all__ = ["SubreviewOutcome", "auth_flow", "run_subreviewer", "secret_exposure"]

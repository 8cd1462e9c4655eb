"""JS/TS heuristic analyzers on small snippets, and the lexer under them."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review import jslex
from swarm_tasks.review.analyzers import js_complexity, js_docs, js_quality, js_security
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, Severity
from tests.review.helpers import source

CONFIG = ReviewConfig()
JS = '''const { exec, spawn } = require("child_process");
/* exec(`commented ${out}`) */
function handler(req, res) {
  exec(`convert ${req.query.file} out.png`);
  exec("ls " + req.query.dir);
  spawn("sh", ["-c", cmd], { shell: true });
  el.innerHTML = req.query.msg;
  el.innerHTML = "<b>static</b>";
  document.write(location.hash);
  db.query(`SELECT * FROM users WHERE id = ${req.params.id}`);
  db.query("DELETE FROM carts WHERE id = " + id);
  const token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
  const password = "changeme";
  new Function("a", body);
  serialize.unserialize(req.cookies.profile);
  crypto.createHash("md5");
  https.request({ rejectUnauthorized: false });
  const url = 'http://x.org/a.js';
}
'''


def rules_at(findings, line: int) -> set[str]:
    return {f.rule for f in findings if f.start_line <= line <= f.end_line}


def test_js_security_rules_at_their_lines(tmp_path: Path) -> None:
    findings = js_security(tmp_path, source(tmp_path, "server.js", JS), CONFIG)
    assert rules_at(findings, 2) == set()  # inside a comment
    assert rules_at(findings, 4) == {"JS-EXEC-INJECTION"}
    assert rules_at(findings, 5) == {"JS-EXEC-INJECTION"}
    assert rules_at(findings, 6) == {"JS-SPAWN-SHELL"}
    assert rules_at(findings, 7) == {"JS-XSS-HTML"}
    assert rules_at(findings, 8) == set()  # a constant string is not XSS
    assert rules_at(findings, 9) == {"JS-XSS-DOCUMENT-WRITE"}
    assert rules_at(findings, 10) == rules_at(findings, 11) == {"JS-SQL-INJECTION"}
    assert {"JS-HARDCODED-SECRET", "JS-SECRET-FORMAT"} <= rules_at(findings, 12)
    assert rules_at(findings, 13) == set()  # placeholder
    assert rules_at(findings, 14) == {"JS-EVAL"}
    assert rules_at(findings, 15) == {"JS-UNSAFE-DESERIALIZATION"}
    assert rules_at(findings, 16) == {"JS-WEAK-HASH"}
    assert rules_at(findings, 17) == {"JS-TLS-DISABLED"}
    assert rules_at(findings, 18) == set()  # '//' inside a string is not a comment
    exec_finding = next(f for f in findings if f.start_line == 4)
    assert exec_finding.severity is Severity.CRITICAL and exec_finding.cwe == "CWE-78"
    assert exec_finding.evidence.strip().startswith("exec(`convert")
    assert all(f.tool == "js-heuristics" and f.category is Category.SECURITY for f in findings)


def test_js_structure_analyzers(tmp_path: Path) -> None:
    text = '''/** Documented. */
export function documented(a) { return a; }

export const arrow = (a, b) => {
  if (a == b) { try { x(); } catch (e) {} }
  debugger;
  return a;
};

export function deep(a) {
  if (a) { if (a) { if (a) { if (a) { if (a) { return 1; } } } } }
}
function notExported() {}
'''
    file = source(tmp_path, "lib.ts", text)
    docs = js_docs(tmp_path, file, CONFIG)
    assert [(f.rule, f.start_line) for f in docs] == [("JS-MISSING-JSDOC", 4), ("JS-MISSING-JSDOC", 10)]
    quality = {(f.rule, f.start_line) for f in js_quality(tmp_path, file, CONFIG)}
    assert {("JS-LOOSE-EQUALITY", 5), ("JS-EMPTY-CATCH", 5), ("JS-DEBUGGER", 6)} <= quality
    complexity = js_complexity(tmp_path, file, CONFIG)
    assert [(f.rule, f.start_line) for f in complexity] == [("JS-DEEP-NESTING", 10)]
    long_config = ReviewConfig(max_function_lines=3)
    assert ("JS-LONG-FUNCTION", 4) in {(f.rule, f.start_line) for f in js_complexity(tmp_path, file, long_config)}


def test_lexer_keeps_offsets_and_template_code() -> None:
    text = 'a = "x // y"; // note\nb = `t ${c + "}"} u`; /* z\n */ r = /a\\/b/g;\n'
    js = jslex.lex(text)
    assert len(js.code) == len(js.skeleton) == len(text)
    assert "note" not in js.code and '"x // y"' in js.code
    assert "${c + " in js.skeleton and "t " not in js.skeleton.split("\n")[1][:6]
    assert js.line_of(text.index("r =")) == 3


def test_garbage_input_does_not_crash(tmp_path: Path) -> None:
    text = "function (((( {{{{ `unterminated ${ \n '\\\n /* never closed"
    file = source(tmp_path, "junk.js", text)
    for analyzer in (js_security, js_quality, js_complexity, js_docs):
        assert isinstance(analyzer(tmp_path, file, CONFIG), list)

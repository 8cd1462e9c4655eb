"""JS/TS heuristic analyzers on small snippets, and the lexer under them."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm_tasks.review import jsparse
from swarm_tasks.review.analyzers import js_complexity, js_docs, js_quality, js_security
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, Severity
from swarm_tasks.review.languages import Language
from tests.review.helpers import source

CONFIG = ReviewConfig(eslint=False)  # our rules alone; ESLint beside them is tested below
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
    assert all(f.tool == "js-rules" and f.category is Category.SECURITY for f in findings)


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


def test_parser_views_keep_offsets_and_template_code() -> None:
    text = 'a = "x // y"; // note\nb = `t ${c + "}"} u`; /* z\n */ r = /a\\/b/g;\n'
    js = jsparse.parse(text, Language.JAVASCRIPT)
    assert len(js.code) == len(js.skeleton) == len(text)
    assert "note" not in js.code and '"x // y"' in js.code
    assert "${c + " in js.skeleton and "t " not in js.skeleton.split("\n")[1][:6]
    assert js.line_of(text.index("r =")) == 3


def test_garbage_input_does_not_crash(tmp_path: Path) -> None:
    text = "function (((( {{{{ `unterminated ${ \n '\\\n /* never closed"
    file = source(tmp_path, "junk.js", text)
    for analyzer in (js_security, js_quality, js_complexity, js_docs):
        assert isinstance(analyzer(tmp_path, file, CONFIG), list)


MISREAD = r'''const quote = /["'`]/g; const half = total / 2 / count;
const re = /\/\/ not a comment/; pattern.exec(input + suffix);
const cp = require("child_process");
cp.exec("ls -l /tmp");
cp.exec(`tar ${dir}`);
document.write("<p>static</p>");
const msg = `done: ${items.map(i => `${i}}`).join(",")}`; eval(msg);
'''


def test_the_parser_reads_what_the_lexer_misread(tmp_path: Path) -> None:
    findings = js_security(tmp_path, source(tmp_path, "misread.js", MISREAD), CONFIG)
    assert rules_at(findings, 1) == rules_at(findings, 2) == set()  # regex literals, division, RegExp#exec
    assert rules_at(findings, 4) == set()  # a constant command
    assert rules_at(findings, 5) == {"JS-EXEC-INJECTION"}
    assert rules_at(findings, 6) == set()  # constant HTML
    assert rules_at(findings, 7) == {"JS-EVAL"}  # after a nested template with a brace in its text


def test_jsx_tsx_and_typescript_syntax(tmp_path: Path) -> None:
    jsx = 'export function Card({ html }) {\n  return <div dangerouslySetInnerHTML={{ __html: html }} />;\n}\n'
    for name in ("card.jsx", "card.tsx"):
        found = js_security(tmp_path, source(tmp_path, name, jsx), CONFIG)
        assert rules_at(found, 2) == {"JS-XSS-HTML"}, name
        assert not any(f.rule == "PARSE-ERROR" for f in js_quality(tmp_path, source(tmp_path, name, jsx), CONFIG))
    ts = '''export const pick = <T,>(items: T[], key: keyof T): T[] => {
  return items.filter((x) => x[key] != null);
};
class Store {
  private apiKey: string = "sk_live_0123456789abcdefghij";
  @cached() query(id: string): Promise<Row> { return this.db.query(`SELECT * FROM t WHERE id = ${id}`); }
}
'''
    file = source(tmp_path, "store.ts", ts)
    assert [(f.rule, f.start_line) for f in js_docs(tmp_path, file, CONFIG)] == [("JS-MISSING-JSDOC", 1)]
    found = js_security(tmp_path, file, CONFIG)
    assert {"JS-HARDCODED-SECRET", "JS-SECRET-FORMAT"} <= rules_at(found, 5)
    assert rules_at(found, 6) == {"JS-SQL-INJECTION"}
    assert not any(f.rule == "JS-LOOSE-EQUALITY" for f in js_quality(tmp_path, file, CONFIG))  # != null idiom


def test_a_file_that_does_not_parse_says_so_and_keeps_what_parsed(tmp_path: Path) -> None:
    text = "eval(a);\nfunction broken( {\n"
    file = source(tmp_path, "broken.js", text)
    notes = [f for f in js_quality(tmp_path, file, CONFIG) if f.rule == "PARSE-ERROR"]
    assert len(notes) == 1 and notes[0].severity is Severity.LOW and "Does not parse as JavaScript" in notes[0].title
    assert rules_at(js_security(tmp_path, file, CONFIG), 1) == {"JS-EVAL"}


def test_every_rule_compiles_where_its_syntax_exists() -> None:
    from swarm_tasks.review import js_rules

    missing = {(name, rule.rule) for rule in (*js_rules.RULES, *js_rules.QUALITY) for q in rule.queries
               for name, grammar in (("js", jsparse.JAVASCRIPT), ("ts", jsparse.TYPESCRIPT), ("tsx", jsparse.TSX))
               if jsparse.query(grammar, q) is None}
    # JSX does not exist in plain TypeScript; class fields are named differently in the two grammars
    assert missing == {("ts", "JS-XSS-HTML"), ("js", "JS-HARDCODED-SECRET"), ("ts", "JS-HARDCODED-SECRET"),
                       ("tsx", "JS-HARDCODED-SECRET")}


def test_eslint_runs_beside_our_rules_named_as_such(tmp_path: Path) -> None:
    from swarm_tasks.review.analyzers import eslint_runner

    problem = eslint_runner.eslint_problem()
    if problem is not None:
        pytest.skip(f"ESLint not available here: {problem}")
    text = 'const cp = require("child_process");\nfunction run(cmd) { cp.exec(cmd); return eval(cmd); }\n'
    # eslint-disable comments in the reviewed code do not switch its rules off
    file = source(tmp_path, "run.js", text + "/* eslint-disable */\n")
    found = js_security(tmp_path, file, ReviewConfig())
    eslint = {(f.rule, f.start_line, f.cwe) for f in found if f.tool == "eslint-plugin-security"}
    assert ("security/detect-eval-with-expression", 2, "CWE-95") in eslint
    assert ("security/detect-child-process", 2, "CWE-78") in eslint  # exec of a non-literal: an injection
    assert {f.rule for f in found if f.tool == "js-rules"} >= {"JS-EVAL", "JS-EXEC-INJECTION"}
    assert not any(f.tool == "eslint-plugin-security" for f in js_security(tmp_path, source(
        tmp_path, "types.ts", "export const x: number = eval(y);\n"), ReviewConfig()))  # TypeScript: ours only


def test_eslint_stopped_by_a_signal_is_no_result_and_runs_again(tmp_path: Path) -> None:
    """A warm stop of a worker signals every process of it (systemd, killpg): ESLint stopped mid-batch must
    not become an "analyzer failed" finding (a run without the stop has none) but a turn to redo; the next
    turn in the process runs ESLint again rather than reuse the stopped batch."""
    import os
    import signal
    import time

    import psutil

    from swarm_tasks.errors import StoppedBySignal
    from swarm_tasks.review.analyzers import eslint_runner, run_reviewer
    from swarm_tasks.review.analyzers.python_quality import batch_key
    from swarm_tasks.review.enums import ReviewerKind

    if (problem := eslint_runner.eslint_problem()) is not None:
        pytest.skip(f"ESLint not available here: {problem}")
    config = ReviewConfig()
    file = source(tmp_path, "run.js", "function run(cmd) { return eval(cmd); }\n")
    eslint_runner.register(tmp_path, batch_key(config), ["run.js"], config.analyzer_timeout_s)  # in the background
    deadline = time.monotonic() + 60
    while not (nodes := [p for p in psutil.Process().children(recursive=True)
                         if any("eslint" in part for part in p.cmdline())]):
        assert time.monotonic() < deadline, "ESLint never started"
        time.sleep(0.01)
    os.kill(nodes[0].pid, signal.SIGTERM)
    with pytest.raises(StoppedBySignal, match="ESLint was stopped by SIGTERM"):
        run_reviewer(ReviewerKind.SECURITY, tmp_path, file, config)
    again = run_reviewer(ReviewerKind.SECURITY, tmp_path, file, config)
    assert not [f for f in again if f.rule == "ANALYZER-FAILED"]
    assert ("security/detect-eval-with-expression", 1) in {(f.rule, f.start_line) for f in again}

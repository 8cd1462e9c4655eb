"""Python analyzers on small snippets: bandit + AST rules, ruff quality and docs, radon + nesting."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm_tasks.review.analyzers import run_reviewer
from swarm_tasks.review.analyzers.python_complexity import python_complexity
from swarm_tasks.review.analyzers.python_quality import python_docs, python_quality, ruff_severity
from swarm_tasks.review.analyzers.python_security import python_security
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, ReviewerKind, ScanFlag, Severity
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.scan import quick_scan
from tests.review.helpers import source

CONFIG = ReviewConfig()
SECURITY = '''import os
import pickle
import subprocess
import yaml

PAYMENT_API_KEY = "pk-live-1234567890abcdef"
password = "hunter2-prod"


def find(cur, name):
    cur.execute(f"SELECT * FROM products WHERE name = '{name}'")


def later(cur, name):
    query = "SELECT * FROM users WHERE name = '%s'" % name
    other = 1
    cur.execute(query)


def shell(name):
    os.system("tar czf out.tgz " + name)  # nosec - the reviewed code cannot silence us
    subprocess.run("ls " + name, shell=True)


def run(expr, blob, doc):
    eval(expr)
    exec(expr)
    pickle.loads(blob)
    yaml.load(doc)
    yaml.load(doc, Loader=yaml.SafeLoader)
'''


def at(findings: list[Finding], line: int) -> set[str]:
    return {f.rule for f in findings if f.start_line <= line <= f.end_line}


def test_security_catches_every_planted_sink_at_its_line(tmp_path: Path) -> None:
    findings = python_security(tmp_path, source(tmp_path, "app.py", SECURITY), CONFIG)
    assert {"PY-HARDCODED-SECRET"} <= at(findings, 6)  # bandit does not know this name
    assert {"B105", "PY-HARDCODED-SECRET"} <= at(findings, 7)
    assert {"B608", "PY-SQL-INJECTION"} <= at(findings, 11)
    sql = next(f for f in findings if f.rule == "PY-SQL-INJECTION" and f.end_line == 17)
    assert sql.start_line == 15 and sql.related[0].start_line == 15  # built at 15, executed at 17
    assert {"B605", "PY-SHELL-INJECTION"} <= at(findings, 21)  # nosec ignored
    assert {"B602", "PY-SHELL-INJECTION"} <= at(findings, 22)
    assert {"B307", "PY-EVAL-INPUT"} <= at(findings, 26)
    assert {"B102", "PY-EVAL-INPUT"} <= at(findings, 27)
    assert {"B301", "PY-UNSAFE-DESERIALIZATION"} <= at(findings, 28)
    assert {"B506", "PY-UNSAFE-DESERIALIZATION"} <= at(findings, 29)
    assert at(findings, 30) == set()  # SafeLoader
    by_rule = {f.rule: f for f in findings}
    assert by_rule["B307"].severity is Severity.HIGH and by_rule["B307"].cwe == "CWE-95"  # bandit says medium/78
    assert by_rule["B506"].cwe == "CWE-502" and by_rule["B105"].cwe == "CWE-798"
    assert all(f.category is Category.SECURITY and f.evidence for f in findings)
    bandit_sql = next(f for f in findings if f.rule == "B608" and f.start_line == 11)
    assert bandit_sql.evidence.strip().startswith('cur.execute(f"SELECT')


def test_security_on_unparsable_file_is_one_note(tmp_path: Path) -> None:
    findings = python_security(tmp_path, source(tmp_path, "bad.py", "def f(:\n  pass\n"), CONFIG)
    assert [(f.rule, f.severity) for f in findings] == [("PARSE-ERROR", Severity.INFO)]


def test_quality_uses_our_rules_not_the_repos(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.ruff.lint]\nselect = []\nignore = ["F", "E", "B"]\n')
    text = "import os\n\n\ndef f(x=[]):\n    try:\n        return undefined_name\n    except:  # noqa\n        pass\n"
    findings = python_quality(tmp_path, source(tmp_path, "q.py", text), CONFIG)
    rules = {f.rule: f for f in findings}
    assert {"F401", "B006", "F821", "E722"} <= set(rules)
    assert rules["F821"].severity is Severity.HIGH and rules["F401"].severity is Severity.LOW
    assert rules["F401"].start_line == 1 and rules["F821"].start_line == 6
    assert all(f.tool == "ruff" and f.category is Category.QUALITY for f in findings)


def test_quality_reports_a_syntax_error_once(tmp_path: Path) -> None:
    findings = python_quality(tmp_path, source(tmp_path, "bad.py", "def f(:\n  pass\nx = (\n"), CONFIG)
    assert [f.rule for f in findings] == ["PARSE-ERROR"] and findings[0].severity is Severity.MEDIUM


def test_docs_missing_docstrings(tmp_path: Path) -> None:
    text = ("import os\n\n\nclass A:\n    def m(self):\n        pass\n\n\ndef f():\n    pass\n\n\n"
            "def _private():\n    pass\n")
    findings = python_docs(tmp_path, source(tmp_path, "pkg/mod.py", text), CONFIG)
    assert [(f.rule, f.start_line) for f in findings] == [("D100", 1), ("D101", 4), ("D102", 5), ("D103", 9)]
    assert all(f.category is Category.DOCUMENTATION for f in findings)


def test_complexity_radon_and_nesting(tmp_path: Path) -> None:
    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(12))
    nested = "def nested(x):\n" + "".join("    " * (d + 1) + f"if x > {d}:\n" for d in range(6)) + "    " * 7 + "pass\n"
    text = f"def branchy(x):\n{branches}    return -1\n\n\n{nested}"
    findings = python_complexity(tmp_path, source(tmp_path, "c.py", text), CONFIG)
    by_rule = {f.rule: f for f in findings}
    assert by_rule["RADON-CC"].start_line == 1 and "13" in by_rule["RADON-CC"].title
    nest = by_rule["PY-DEEP-NESTING"]
    assert nest.start_line == 29 and "6 deep" in nest.title and nest.related[0].start_line == 35
    assert nest.severity is Severity.MEDIUM


def test_run_reviewer_attributes_and_survives_broken_analyzer(tmp_path: Path, monkeypatch) -> None:
    file = source(tmp_path, "a.py", "eval(input())\n")
    found = run_reviewer(ReviewerKind.SECURITY, tmp_path, file, CONFIG, agent_id="reviewer:security:a.py")
    assert found and all(f.agent_id == "reviewer:security:a.py" for f in found)
    assert all(r.agent_id == "reviewer:security:a.py" for f in found for r in f.reporters)

    def boom(*_: object) -> list[Finding]:
        raise RuntimeError("tool bug")

    import swarm_tasks.review.analyzers as analyzers

    monkeypatch.setitem(analyzers.ANALYZERS[file.language], ReviewerKind.SECURITY, boom)
    [note] = run_reviewer(ReviewerKind.SECURITY, tmp_path, file, CONFIG)
    assert note.rule == "ANALYZER-FAILED" and note.severity is Severity.INFO and "tool bug" in note.title


def test_vanished_file_is_a_note(tmp_path: Path) -> None:
    file = source(tmp_path, "gone.py", "x = 1\n")
    (tmp_path / "gone.py").unlink()
    for kind in ReviewerKind:
        [note] = run_reviewer(kind, tmp_path, file, CONFIG)
        assert note.rule == "ANALYZER-FAILED"


def test_ruff_severity_longest_prefix() -> None:
    assert ruff_severity("F821") is Severity.HIGH
    assert ruff_severity("F841") is Severity.LOW
    assert ruff_severity("B006") is Severity.MEDIUM
    assert ruff_severity("ZZZ1") is Severity.LOW


WEIRD = {
    "empty.py": "",
    "comments.py": "# only a comment\n",
    "bom.py": "\ufeff\"\"\"Doc.\"\"\"\nx = eval(input())\n",
    "crlf.py": "import os\r\n\r\ndef f(a):\r\n    os.system('x' + a)\r\n",
    "long_concat.py": "x = " + " + ".join(f"'a{i}'" for i in range(3000)) + "\n",
    "deep_parens.py": "x = " + "(" * 300 + "1" + ")" * 300 + "\n",
    "latin.py": "s = 'caf\xe9'\n".encode("latin-1"),
    "escapes.py": "import re\nPATTERN = '\\d+'\n",
    "walrus.py": "match x:\n    case {'a': [1, *rest]} if (y := rest):\n        pass\n",
}


@pytest.mark.parametrize("name", sorted(WEIRD))
def test_weird_python_never_raises(tmp_path: Path, name: str) -> None:
    file = source(tmp_path, name, WEIRD[name])
    for kind in ReviewerKind:
        for finding in run_reviewer(kind, tmp_path, file, CONFIG):
            assert finding.file == name and finding.start_line >= 1
    assert quick_scan(tmp_path, file, CONFIG).path == name


def test_code_nested_too_deep_for_the_analyzers_is_named_not_a_failure(tmp_path: Path) -> None:
    # CPython parses these; walking them recursively (ours, bandit's, radon's) would exhaust the stack.
    deep = {"concat.py": "q = 'select ' + " + " + ".join(["a"] * 600) + "\n",
            "calls.py": "x = f" + "()" * 900 + "\n", "attrs.py": "import os\nx = os" + ".b" * 1800 + "\n"}
    for name, text in deep.items():
        file = source(tmp_path, name, text)
        for kind in (ReviewerKind.SECURITY, ReviewerKind.COMPLEXITY):
            (note,) = run_reviewer(kind, tmp_path, file, CONFIG, "agent")
            assert note.rule == "PARSE-ERROR" and "is too deeply nested: it nests more than 250 levels deep at " \
                "line" in note.title, (name, kind, note.title)
        assert ScanFlag.UNPARSABLE in quick_scan(tmp_path, file, CONFIG).flags
    shallow = source(tmp_path, "fine.py", "import os\nos.system('a' + " + " + ".join(["x"] * 100) + ")\n")
    rules = {f.rule for f in run_reviewer(ReviewerKind.SECURITY, tmp_path, shallow, CONFIG, "agent")}
    assert "PY-SHELL-INJECTION" in rules and "PARSE-ERROR" not in rules  # a long but sane line is analysed


def test_file_names_that_look_like_options_are_checked_like_any_other(tmp_path: Path) -> None:
    text = '"""Module."""\nimport os\n\n\ndef f():\n    return undefined_name\n'
    for name in ("--help.py", "-rf.py", "--version.py"):  # ruff once took these for its own options and failed
        file = source(tmp_path, name, text)
        quality = {f.rule for f in python_quality(tmp_path, file, CONFIG)}
        docs = {f.rule for f in python_docs(tmp_path, file, CONFIG)}
        assert {"F401", "F821"} <= quality and docs == {"D103"}, (name, quality, docs)

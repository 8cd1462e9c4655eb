"""What a report shows: aggregation, merging, suppressions, baselines, roles (swarm_tasks/review/results.py)."""

from __future__ import annotations

import json
from pathlib import Path

from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, FindingSource, Severity
from swarm_tasks.review.findings import Finding, Location
from swarm_tasks.review.merge import merge_findings
from swarm_tasks.review.pipeline import review_locally
from swarm_tasks.review.report_json import baseline_fingerprints, render_json
from swarm_tasks.review.report_markdown import render_markdown
from swarm_tasks.review.report_sarif import render_sarif
from tests.review.test_reports import validate_sarif


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_rule_firing_500_times_in_a_file_and_a_docs_rule_in_50_files_are_one_finding_each(tmp_path: Path) -> None:
    noisy = "".join(f"def f{i}():\n    unused = {i}\n\n\n" for i in range(500))
    files = {"noisy.py": noisy, **{f"pkg/m{i}.py": f"X{i} = {i}\n" for i in range(50)}}
    report = review_locally(write(tmp_path, files))
    unused = [f for f in report.findings if f.rule == "F841"]
    assert len(unused) == 1 and unused[0].count == 500 and len(unused[0].occurrences) == 499
    assert {o.start_line for o in unused[0].places()} == {2 + 4 * i for i in range(500)}
    assert "500 times in noisy.py" in unused[0].title
    module_docs = [f for f in report.findings if f.rule == "D100"]
    assert len(module_docs) == 1 and module_docs[0].count == 51 and len(module_docs[0].files) == 51
    assert "in 51 files" in module_docs[0].title
    function_docs = [f for f in report.findings if f.rule == "D103"]
    assert len(function_docs) == 1 and function_docs[0].count == 500
    # SARIF: one result, the other places as relatedLocations; the Markdown counts it below the threshold
    doc = validate_sarif(render_sarif(report))
    [result] = [r for r in doc["runs"][0]["results"] if r["ruleId"] == "F841"]
    assert len(result["relatedLocations"]) == 499 and result["properties"]["occurrences"] == 500
    text = render_markdown(report)
    assert "## Below medium" in text and "`F841`" in text.split("## Below medium", 1)[1]
    assert len(text) < 20_000  # 1,051 raw findings, a page to read


def test_one_flaw_reported_twice_is_one_finding() -> None:
    def make(rule: str, line: int, cwe: str | None, file: str = "a.py", **extra: object) -> Finding:
        return Finding(file=file, start_line=line, end_line=line, severity=Severity.HIGH, category=Category.SECURITY,
                       rule=rule, title=rule, confidence=0.6, tool="bandit", agent_id=f"x:{rule}", cwe=cwe, **extra)

    # same line, one kind of problem (md5 of a password: weak crypto and weak password hashing)
    [hash_] = merge_findings([make("B324", 10, "CWE-327"), make("AUTH-WEAK-PASSWORD-HASH", 10, "CWE-916")])
    assert {r.rule for r in hash_.reporters} == {"B324", "AUTH-WEAK-PASSWORD-HASH"}
    # the import of pickle and its misuse
    [pickle] = merge_findings([make("B403", 1, "CWE-502"), make("B301", 11, "CWE-502")])
    assert pickle.rule == "B301" and any(loc.start_line == 1 for loc in pickle.related)
    # a model's report where the input is read, on the analyzer's source-to-sink path
    sink = make("PY-SQL-INJECTION", 16, "CWE-89", file="db.py",
                related=[Location(file="app.py", start_line=18, end_line=18, message="untrusted input")])
    model = make("sql-injection", 17, None, file="app.py").model_copy(update={"source": FindingSource.MODEL})
    model = model.model_copy(update={"start_line": 18, "end_line": 19})
    [one] = merge_findings([sink, model])
    assert one.file == "db.py" and len(one.reporters) == 2
    # different problems on one line stay apart
    assert len(merge_findings([make("B608", 5, "CWE-89"), make("PY-HARDCODED-SECRET", 5, "CWE-798")])) == 2


SHELL = '''"""Tools."""

import os


def archive(name):
    """Archive."""
    os.system("tar czf /tmp/a.tgz " + name)  # swarm: ignore[B605,PY-SHELL-INJECTION] name is a fixed report id


def unpack(name):
    """Unpack."""
    # swarm: ignore[CWE-78]
    os.system("tar xzf " + name)


def clean(name):
    """Clean."""
    os.system("rm -rf " + name)  # nosec B605
'''


def test_inline_suppression_needs_a_reason_and_noqa_is_honoured_only_on_request(tmp_path: Path) -> None:
    js = ("// swarm: ignore[JS-EVAL, security/*] the expression comes from our own rules table\n"
          "export const run = (rule) => eval(rule);\n")
    root = write(tmp_path, {"tools.py": SHELL, "rules.js": js})
    report = review_locally(root)
    lines = {f.start_line: f for f in report.findings if f.cwe == "CWE-78"}
    assert 8 not in lines, "suppressed with a reason"
    assert 14 in lines and any("gives no reason" in n for n in lines[14].notes)
    assert 19 in lines, "# nosec is not honoured by default"
    [suppressed, js_eval] = sorted(report.suppressed, key=lambda s: s.file, reverse=True)
    assert (js_eval.file, js_eval.start_line, js_eval.marker_line) == ("rules.js", 2, 1)
    assert not any(f.file == "rules.js" and f.category is Category.SECURITY for f in report.findings)
    assert (suppressed.start_line, suppressed.marker, suppressed.marker_line) == (8, "swarm", 8)
    assert suppressed.reason == "name is a fixed report id"
    assert "## Suppressed in the code (2)" in render_markdown(report)
    honoured = review_locally(root, ReviewConfig(honor_noqa=True))
    assert [s.marker for s in honoured.suppressed].count("nosec") == 1
    assert 19 not in {f.start_line for f in honoured.findings if f.cwe == "CWE-78"}


def test_baseline_reports_only_new_findings(tmp_path: Path) -> None:
    root = write(tmp_path / "repo", {"tools.py": SHELL})
    first = review_locally(root)
    (tmp_path / "report.json").write_text(render_json(first))
    known = baseline_fingerprints(tmp_path / "report.json")
    # lines move, one new problem appears
    (root / "tools.py").write_text(SHELL.replace('"""Tools."""\n', '"""Tools."""\n\n# moved\n# down\n')
                                   + '\n\ndef run(code):\n    """Run."""\n    return eval(code)\n')
    config = ReviewConfig(baseline_fingerprints=known, baseline_label="report.json")
    again = review_locally(root, config)
    assert [f.rule for f in again.findings if f.category is Category.SECURITY] == ["B307"]
    assert again.baseline_known >= 2 and again.baseline == "report.json"
    assert "known finding(s) left out" in render_markdown(again)
    assert json.loads(render_json(again))["baseline_known"] == again.baseline_known


def test_found_by_names_roles_and_analyzers(tmp_path: Path) -> None:
    root = write(tmp_path, {"tools.py": SHELL})
    report = review_locally(root)
    shell = next(f for f in report.findings if f.start_line == 19)
    labels = {r.label() for r in shell.reporters}
    assert {"security reviewer (bandit)", "security reviewer (py-ast)"} <= labels, labels
    assert any(label.startswith("taint-trace sub-reviewer") for label in labels), labels
    text = render_markdown(report)
    assert "Found by: security reviewer (bandit)" in text and "reviewer:security:" not in text


def test_links_of_a_forge_clone_lead_to_the_reviewed_commit(tmp_path: Path) -> None:
    import subprocess

    from swarm_tasks.review.results import forge_link_base

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.test", "-C", str(tmp_path), "commit",
                    "-q", "--allow-empty", "-m", "x"], check=True)
    sha = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert forge_link_base("https://user:token@github.com/o/r.git", tmp_path) == f"https://github.com/o/r/blob/{sha}/"
    assert forge_link_base("git@gitlab.com:g/s/p.git", tmp_path) == f"https://gitlab.com/g/s/p/-/blob/{sha}/"
    assert forge_link_base("https://example.test/o/r.git", tmp_path) is None

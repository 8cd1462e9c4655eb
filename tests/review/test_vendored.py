"""Vendored and generated code recognised by content, listed as skipped with its reason, reviewable on request."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import SkipReason
from swarm_tasks.review.inventory import build_inventory
from swarm_tasks.review.pipeline import review_locally
from swarm_tasks.review.report_markdown import render_markdown

CHART = "// chart helper\n" + "function chart(d) { return d.map(x => x * 2); }\n" * 40
LIBRARY = "".join(f"  var item{i} = items[{i}];\n  if (item{i} == null) {{ eval(item{i}); }}\n" for i in range(120))
FILES = {
    # a front-end library shipped as source and minified twin (the 1,081-finding case)
    "static/lib/widget.js": f"(function () {{\n{LIBRARY}}})();\n",
    "static/lib/widget.min.js": "(function(){var a=1;eval(a)})();\n",
    "static/js/jquery.js": "/*! jQuery v3.7.1 | (c) OpenJS Foundation and other contributors | jquery.org/license */\n"
                           "(function (w) { eval(w.code); })(window);\n",
    "static/js/bundle.js": "/******/ (function(modules) { // webpackBootstrap\n/******/ eval(modules[0]);\n})([]);\n",
    "static/js/app.js": "// Copyright 2024 Shop Inc. Licensed under the Apache License, Version 2.0\n"
                        "export function run(code) { return eval(code); }\n",
    "static/js/copy-of-chart.js": CHART,
    "node_modules/chart/dist/copy-of-chart.js": CHART,
    "package-lock.json": "{}\n",
}


def make(root: Path) -> Path:
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_vendored_and_generated_code_is_skipped_with_its_reason(tmp_path: Path) -> None:
    root = make(tmp_path)
    inventory = build_inventory(root, ReviewConfig())
    skipped = {s.path: s for s in inventory.skipped}
    assert skipped["static/lib/widget.js"].reason is SkipReason.VENDORED
    assert "unminified twin of the bundled widget.min.js" in skipped["static/lib/widget.js"].detail
    assert skipped["static/lib/widget.min.js"].reason is SkipReason.MINIFIED
    assert "license banner of a bundled library (jQuery v3.7.1)" in skipped["static/js/jquery.js"].detail
    assert skipped["static/js/bundle.js"].reason is SkipReason.GENERATED
    assert "webpack" in skipped["static/js/bundle.js"].detail
    assert "identical to the installed node_modules/chart/dist/copy-of-chart.js" in \
        skipped["static/js/copy-of-chart.js"].detail
    assert skipped["package-lock.json"].detail == "lock file (package-lock.json)"
    assert [f.path for f in inventory.files] == ["static/js/app.js"]  # a license header alone is not vendored
    report = review_locally(root)
    assert {f.file for f in report.findings} == {"static/js/app.js"}
    assert "unminified twin of the bundled widget.min.js" in render_markdown(report)


def test_include_vendored_reviews_it(tmp_path: Path) -> None:
    root = make(tmp_path)
    report = review_locally(root, ReviewConfig(include_vendored=True))
    files = {f for finding in report.findings for f in finding.files}
    assert {"static/lib/widget.js", "static/js/jquery.js", "static/js/bundle.js"} <= files
    assert not any(f.startswith("node_modules/") for f in files)  # installed packages stay dependencies
    # the library's 120 `var` are one finding; its 120 eval calls are each reported
    widget = [f for f in report.findings if f.file == "static/lib/widget.js"]
    assert [f.count for f in widget if f.rule == "JS-VAR"] == [120]
    evals = {p.start_line for f in widget if f.cwe == "CWE-95" for p in f.places()}
    assert evals == set(range(3, 243, 2))  # every one reported (past the findings budget, folded)

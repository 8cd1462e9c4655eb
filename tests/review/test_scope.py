"""Paths stay inside the root: no import, require, file description or evidence quote of a review reads a
file outside the repository, and each refusal is listed with its reason (as the inventory lists symlinks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarm_tasks.errors import ReviewError
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import SkipReason
from swarm_tasks.review.inventory import build_inventory, describe_file
from swarm_tasks.review.model_agents import drafts_to_findings
from swarm_tasks.review.pipeline import review_locally
from swarm_tasks.review.report_json import render_json
from swarm_tasks.review.report_markdown import render_markdown
from swarm_tasks.review.report_sarif import render_sarif
from swarm_tasks.review.scope import ReadScope
from swarm_tasks.review.source import SkippedPath, SourceFile, read_source
from tests.review.containment import assert_quotes_nothing_outside, hostile_repo
from tests.review.helpers import write_tree


def test_a_local_review_follows_no_import_out_of_the_root_and_says_why(tmp_path: Path) -> None:
    repo = hostile_repo(tmp_path)
    report = review_locally(repo, ReviewConfig())
    for name, text in (("json", render_json(report)), ("markdown", render_markdown(report)),
                       ("sarif", render_sarif(report))):
        assert_quotes_nothing_outside(text, tmp_path, f"the {name} report")
    assert {r.path for r in report.reviewed} >= {"pkg/app.py", "web/index.js"}
    assert all(not Path(r.path).is_absolute() and ".." not in r.path for r in report.reviewed)
    assert all(f.file in {"pkg/app.py", "web/index.js", "pkg/__init__.py"} for f in report.findings)
    refused = {s.path: s for s in report.dependencies.skipped}
    assert refused["...outside"].reason is SkipReason.OUTSIDE
    assert "imported by pkg/app.py line 6: resolves outside the repository" in refused["...outside"].detail
    for spec in (f"{tmp_path}/outside/x.js", "../../..", "../../outside/x"):
        assert refused[spec].reason is SkipReason.OUTSIDE and "imported by web/index.js" in refused[spec].detail
    for link in ("pkg/shadow.py", "pkg/passwd.py", "pkg/near.py"):  # as the inventory lists them
        inventoried = next(s for s in report.skipped if s.path == link)
        assert inventoried.reason is SkipReason.SYMLINK and inventoried.detail == "points outside the repository"
    assert refused["pkg/near.py"].detail == "points outside the repository"


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside/x.py", "pkg/../../outside/x.py", "pkg/passwd.py",
                                  "pkg/near.py", "pkg/shadow.py"])
def test_describing_a_path_out_of_the_root_reads_nothing(tmp_path: Path, path: str) -> None:
    repo = hostile_repo(tmp_path)
    described = describe_file(repo, path, ReviewConfig())
    assert isinstance(described, SkippedPath)
    assert described.reason in (SkipReason.OUTSIDE, SkipReason.SYMLINK), described
    fake = SourceFile(path=path, language="python", size=1, line_count=1, sha256="0")
    with pytest.raises(ReviewError, match="outside the repository"):
        read_source(repo, fake)  # the evidence quotes read through the same door


def test_the_scope_follows_links_inside_and_admits_configured_third_party_roots(tmp_path: Path) -> None:
    repo = hostile_repo(tmp_path)
    (repo / "pkg" / "alias.py").symlink_to("app.py")
    scope = ReadScope(repo.resolve(), (tmp_path / "outside",))
    assert scope.resolve("pkg/alias.py") == (repo / "pkg" / "app.py").resolve()
    assert scope.resolve(tmp_path / "outside" / "x.py") == (tmp_path / "outside" / "x.py").resolve()
    assert not ReadScope(repo.resolve()).allows(tmp_path / "outside" / "x.py")
    described = describe_file(repo, str(tmp_path / "outside" / "x.py"),
                              ReviewConfig(third_party_roots=(tmp_path / "outside",)))
    assert isinstance(described, SourceFile)  # the user named that root: it may be read


def test_a_node_modules_link_out_of_the_root_is_not_read_for_twins(tmp_path: Path) -> None:
    """A repository file is vendored when an installed package holds a byte-identical copy; a package
    linked in from outside the repository is not read to find out."""
    code = "".join(f"export function f{i}(a) {{ return a + {i}; }}\n" for i in range(60))  # > 1 KB
    repo = write_tree(tmp_path / "repo", {"web/lib.js": code, "node_modules/inside/lib.js": code})
    write_tree(tmp_path / "mods" / "pkg", {"lib.js": code})
    (repo / "node_modules" / "outside").symlink_to(tmp_path / "mods" / "pkg")
    inv = build_inventory(repo, ReviewConfig())
    assert any(s.path == "web/lib.js" and "identical to the installed node_modules/inside/lib.js" in s.detail
               for s in inv.skipped)
    (repo / "node_modules" / "inside" / "lib.js").unlink()
    inv = build_inventory(repo, ReviewConfig())
    assert [f.path for f in inv.files] == ["web/lib.js"]  # the copy outside was not looked at


def test_a_fifo_named_by_an_import_is_skipped_without_blocking(tmp_path: Path) -> None:
    repo = hostile_repo(tmp_path)
    os.mkfifo(repo / "pkg" / "fifo.py")  # `from . import fifo`: reading it would wait for a writer forever
    described = describe_file(repo, "pkg/fifo.py", ReviewConfig())
    assert isinstance(described, SkippedPath) and described.reason is SkipReason.UNREADABLE, described


def test_a_model_finding_on_a_path_climbing_out_is_dropped() -> None:
    draft = {"file": "app.py", "start_line": 1, "severity": "high", "category": "security", "rule": "x",
             "title": "t", "confidence": 0.5}
    kept = drafts_to_findings([draft, {**draft, "file": "../../etc/passwd", "evidence": "root:x:0:0"},
                               {**draft, "file": "pkg/../../x.py"}], "m", "a1")
    assert [f.file for f in kept] == ["app.py"]

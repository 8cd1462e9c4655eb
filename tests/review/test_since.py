"""--since REF: only files changed since the merge base of REF and HEAD are reviewed; their imports are followed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from swarm_tasks.errors import JobSpecError, ReviewError
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import ReviewReason
from swarm_tasks.review.job import ReviewJob, check_since
from swarm_tasks.review.pipeline import review_locally
from swarm_tasks.sources import SourceSpec

FILES = {
    "app.py": '"""App."""\n\nfrom helper import run\n\n\ndef main(cmd):\n    """Main."""\n    return run(cmd)\n',
    "helper.py": '"""Helper."""\n\nimport os\n\n\ndef run(cmd):\n    """Run."""\n    return os.system("x " + cmd)\n',
    "other.py": '"""Other."""\n\n\ndef go(code):\n    """Go."""\n    return eval(code)\n',
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.test", *args], cwd=root,
                          check=True, capture_output=True, text=True).stdout


def repo(root: Path) -> Path:
    for name, text in FILES.items():
        (root / name).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return root


def test_since_reviews_only_changed_files_and_follows_their_imports(tmp_path: Path) -> None:
    root = repo(tmp_path)
    git(root, "switch", "-qc", "feature")
    (root / "app.py").write_text(FILES["app.py"] + '\n\ndef debug(expr):\n    """Debug."""\n    return eval(expr)\n')
    git(root, "commit", "-qam", "debug helper")
    (root / "new.py").write_text('"""New."""\nimport pickle\n\n\ndef load(b):\n    """Load."""\n'
                                 '    return pickle.loads(b)\n')
    report = review_locally(root, ReviewConfig(since="main"))
    assert report.files_scanned == 2 and report.since == "main"
    reasons = {r.path: r.reason for r in report.reviewed}
    assert reasons == {"app.py": ReviewReason.FLAGGED, "new.py": ReviewReason.FLAGGED,
                       "helper.py": ReviewReason.IMPORTED}
    assert "other.py" not in {f.file for f in report.findings}
    assert {f.file for f in report.findings if f.cwe in ("CWE-78", "CWE-95", "CWE-502")} == {
        "app.py", "helper.py", "new.py"}
    # nothing changed since HEAD: nothing to review
    git(root, "add", "-A")
    git(root, "commit", "-qm", "new")
    assert review_locally(root, ReviewConfig(since="HEAD")).files_scanned == 0


def test_a_bad_ref_is_a_clear_error_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    root = repo(tmp_path / "repo")
    job = ReviewJob(source=SourceSpec(location=str(root)), config=ReviewConfig(since="no-such-branch"))
    with pytest.raises(JobSpecError, match="'no-such-branch' is not a commit"):
        check_since(job)
    with pytest.raises(JobSpecError, match="--since: not a git ref"):
        check_since(job.model_copy(update={"config": ReviewConfig(since="--output=/tmp/x")}))
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ReviewError, match="not a git checkout"):
        review_locally(plain, ReviewConfig(since="main"))

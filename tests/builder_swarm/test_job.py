"""Bad input is refused before a run exists, with a clear message and no credential in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm_tasks.builder.job import BuildJob, resolve_models
from swarm_tasks.builder.workflow import submit_build
from swarm_tasks.errors import GitError, JobSpecError
from tests.builder_swarm.helpers import git, make_remote, refs, tip

SECRET = "hunter2-s3cret"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_remote(tmp_path / "r", {"README.md": "hello\n", "src/a.py": "a = 1\n"})


def submit(local, **job: object):
    job.setdefault("goal", "do it")
    job.setdefault("codemod", "true {path}")
    return submit_build(local.services, BuildJob.parse(job))


def nothing_created(local) -> bool:
    return local.services.runs.list() == []


def test_a_path_that_is_not_a_repository(local, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(GitError, match="is not a git repository"):
        submit(local, repo=str(tmp_path / "plain"))
    with pytest.raises(GitError, match="does not exist"):
        submit(local, repo=str(tmp_path / "missing"))
    assert nothing_created(local)


def test_a_branch_that_does_not_exist(local, remote: Path) -> None:
    before = refs(remote)
    with pytest.raises(GitError, match=r"branch 'nope' does not exist on remote .*branches: main"):
        submit(local, repo=str(remote), branch="nope")
    with pytest.raises(JobSpecError, match="invalid branch name"):
        submit(local, repo=str(remote), branch="bad..name")
    assert nothing_created(local) and refs(remote) == before


def test_an_unreachable_remote_never_shows_its_password(local) -> None:
    url = f"http://swarm:{SECRET}@127.0.0.1:1/x.git"
    with pytest.raises(GitError) as caught:
        submit(local, repo=url, remote_timeout_s=10)
    message = str(caught.value)
    assert "cannot reach remote http://swarm:***@127.0.0.1:1/x.git" in message
    assert SECRET not in message
    with pytest.raises(JobSpecError) as bad:  # a job refused by validation names the repo redacted too
        BuildJob.parse({"repo": url, "goal": "x", "max_cycles": 0})
    assert SECRET not in str(bad.value) and "max_cycles" in str(bad.value)
    assert nothing_created(local)


def test_commands_and_models_are_checked(local, remote: Path, swarm_settings) -> None:
    with pytest.raises(JobSpecError, match="check command is not a valid shell command line"):
        submit(local, repo=str(remote), check="if then fi (")
    with pytest.raises(JobSpecError, match="codemod command is not a valid shell command line"):
        submit(local, repo=str(remote), codemod="sed -i 's/a/b/ {path} ((")
    with pytest.raises(JobSpecError, match="model mode needs a model for planner, worker"):
        submit(local, repo=str(remote), codemod=None)
    with pytest.raises(JobSpecError, match="only apply to codemod mode"):
        submit(local, repo=str(remote), codemod=None, files=["*.py"], models={"planner": "m", "worker": "m"})
    with pytest.raises(JobSpecError, match="unknown role"):
        BuildJob.parse({"repo": str(remote), "goal": "x", "models": {"architect": "m"}})
    models = resolve_models(BuildJob(repo="r", goal="g", models={"planner": "p", "worker": "w"}), swarm_settings)
    assert models == {"planner": "p", "worker": "w", "resolver": "w"}  # no judge model: the program judges
    assert nothing_created(local)


def test_the_checked_out_branch_of_a_working_repository_is_refused(local, tmp_path: Path, remote: Path) -> None:
    work = tmp_path / "work"
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    with pytest.raises(JobSpecError, match="checked out, so git refuses pushes"):
        submit(local, repo=str(work))
    git(work, "checkout", "--quiet", "-b", "other")
    run = submit(local, repo=str(work), branch="main", models={}, max_cycles=1)  # another branch: fine
    assert run.kind == "build" and run.spec["repo"] == str(work)


def test_a_relative_path_is_made_absolute_and_the_tip_recorded(local, remote: Path, monkeypatch) -> None:
    monkeypatch.chdir(remote.parent)
    run = submit(local, repo="remote.git", goal="g")
    assert run.spec["repo"] == str(remote)
    from swarm_tasks.builder.cycles import CycleBook

    assert CycleBook(local.services.run(run.id).state).current().base == tip(remote)

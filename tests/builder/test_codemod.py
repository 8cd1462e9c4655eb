"""Codemod mode: concurrent appliers must produce exactly the tree of the sequential run."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from coordination.backoff import Backoff
from swarm_tasks.builder import (
    Clone,
    Codemod,
    PushOutcome,
    PushStatus,
    RemoteSpec,
    apply_codemod,
    codemod_resolver,
    commit_all,
    land_codemod,
    prepare_clone,
    push_with_rebase,
    render_command,
    sequential_reference,
    split_by_file,
)
from tests.builder import git, make_remote, remote_file

# Not idempotent on purpose: applying it twice differs from once, so a lost application shows.
# awk rather than a Python script: it starts in a millisecond, and it runs a few hundred times.
COMMAND = ("awk 'NR == 1 { n = substr($0, 10) + 1; print \"applied: \" n; next } { print } "
           "END { print \"pass \" n }' {path} > {path}.tmp && mv {path}.tmp {path}")
FAST = Backoff(base_s=0.002, cap_s=0.05)


@pytest.fixture
def command() -> Codemod:
    return Codemod(COMMAND, 30)


def seeded(root: Path, count: int) -> RemoteSpec:
    files = {f"src/mod_{i:02d}.py": f"applied: 0\nbody of {i}\n" for i in range(count)}
    files["README.md"] = "not a module\n"
    return make_remote(root, files)


def clone_of(spec: RemoteSpec, root: Path, name: str) -> Clone:
    return prepare_clone(spec, root / name, author_name=name, author_email=f"{name}@example.invalid")


def test_render_command_quotes_the_path() -> None:
    assert render_command("ruff format {path}", "a b;rm -rf x.py") == "ruff format 'a b;rm -rf x.py'"
    assert render_command("awk '{print}' {path}", "x.py") == "awk '{print}' x.py"
    assert render_command("black -q", "x.py") == "black -q x.py"
    # a file named like an option stays a file name, whatever tool the command runs
    assert render_command("ruff format {path}", "-rf.py") == "ruff format ./-rf.py"
    assert render_command("black -q", "--help.py") == "black -q ./--help.py"


def test_split_and_apply(tmp_path: Path, command: Codemod) -> None:
    spec = seeded(tmp_path, 3)
    clone = clone_of(spec, tmp_path, "w")
    (clone.path / "src" / "untracked.py").write_text("applied: 0\n")
    files = split_by_file(clone.path, ["src/*.py"])
    assert files == ["src/mod_00.py", "src/mod_01.py", "src/mod_02.py"]
    assert split_by_file(clone.path, ["*.md"]) == ["README.md"]
    assert apply_codemod(clone, command, files[:2]).changed == files[:2]
    assert (clone.path / files[0]).read_text() == "applied: 1\nbody of 0\npass 1\n"
    assert apply_codemod(clone, Codemod("true"), files).changed == []
    failed = apply_codemod(clone, Codemod("echo nope >&2; exit 4; : {path}"), files[2:])
    assert failed.changed == [] and failed.failures == {"src/mod_02.py": "exit 4: nope"}


def test_overlapping_tasks_apply_the_command_once_each(tmp_path: Path, command: Codemod) -> None:
    """Three workers start from one commit and all touch one file: the second one's edit is
    identical to the first's (git would merge the two into one), the third one's truly conflicts."""
    spec = seeded(tmp_path, 2)
    hot = "src/mod_00.py"
    clones = [clone_of(spec, tmp_path, name) for name in ("a", "b", "c", "plain")]
    for clone in clones:
        commit_all(clone, "task", paths=apply_codemod(clone, command, [hot]).changed)
    resolve = codemod_resolver(command, [hot])
    first = push_with_rebase(clones[0], resolve=resolve, overlaps_conflict=True, max_attempts=3, backoff=FAST)
    assert first.first_try
    # Plain git rebasing is why the overlap mode exists: the identical edit is dropped as applied.
    plain = push_with_rebase(clones[3], resolve=resolve, max_attempts=3, backoff=FAST)
    assert plain.status is PushStatus.UP_TO_DATE and remote_file(spec, hot).startswith("applied: 1\n")
    second, third = (push_with_rebase(c, resolve=resolve, overlaps_conflict=True, max_attempts=3, backoff=FAST)
                     for c in clones[1:3])
    assert second.status is PushStatus.LANDED and third.status is PushStatus.LANDED
    assert second.conflicted_files == [] and second.conflicts_resolved == 1  # identical edit, redone
    assert third.conflicted_files == [hot] and third.conflicts_resolved == 1  # real conflict, redone
    assert remote_file(spec, hot) == "applied: 3\nbody of 0\npass 1\npass 2\npass 3"


def test_concurrent_appliers_match_the_sequential_reference(tmp_path: Path, command: Codemod) -> None:
    spec = seeded(tmp_path, 50)
    start = clone_of(spec, tmp_path, "reference")
    files = split_by_file(start.path, ["src/*.py"])
    assert len(files) == 50
    tasks = [files[i:i + 5] for i in range(0, 50, 5)]
    hot = files[-3:]
    for task in tasks[:4]:
        task.extend(hot)  # the first four tasks overlap on three files (also the last task's)
    appliers = 4
    queue = list(enumerate(tasks))
    lock = threading.Lock()
    barrier = threading.Barrier(appliers)
    outcomes: dict[int, PushOutcome] = {}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            clone = clone_of(spec, tmp_path, f"w{worker}")
            # Round one: everyone commits on the same tip before anyone pushes, so overlaps are sure.
            index, task = queue[worker]
            commit_all(clone, f"task {index}", paths=apply_codemod(clone, command, task).changed)
            barrier.wait()
            outcomes[index] = push_with_rebase(clone, resolve=codemod_resolver(command, task), max_attempts=40,
                                               overlaps_conflict=True, backoff=FAST)
            while True:
                with lock:
                    if len(queue) == appliers:
                        return
                    index, task = queue.pop()
                clone = clone_of(spec, tmp_path, f"w{worker}")
                outcomes[index] = land_codemod(clone, command, task, message=f"task {index}", max_attempts=40,
                                               backoff=FAST)[1]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(appliers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=100)
    assert not errors, errors
    assert sorted(outcomes) == list(range(len(tasks)))
    assert all(o.landed for o in outcomes.values()), [o.reason for o in outcomes.values()]
    assert sum(o.conflicts_resolved for o in outcomes.values()) >= 3
    assert set(hot) <= {f for o in outcomes.values() for f in o.hot_spots}
    expected = sequential_reference(start.path, command, [f for task in tasks for f in task])
    assert git(Path(spec.url), "rev-parse", "main^{tree}") == expected
    assert remote_file(spec, hot[0]).startswith("applied: 5\n")


# Formats its file and logs it in a shared changelog; on a file named *bad* it fails half-way through.
LOGGING = ("case {path} in *bad*) echo junk >> CHANGELOG.md; echo broken > {path}; echo 'cannot parse' >&2; "
           "exit 3;; esac; sed -i 's/^applied: 0$/applied: 1/' {path} && echo \"formatted {path}\" >> CHANGELOG.md")


def test_every_edit_lands_and_a_file_the_command_fails_on_fails_alone(tmp_path: Path) -> None:
    spec = make_remote(tmp_path / "r", {"a.py": "applied: 0\n", "bad.py": "applied: 0\n", "c.py": "applied: 0\n",
                                        "CHANGELOG.md": "# changes\n"})
    clone = clone_of(spec, tmp_path, "w")
    (clone.path / "notes.txt").write_text("mine, not the command's\n")  # there before: never committed
    applied = apply_codemod(clone, Codemod(LOGGING), ["a.py", "bad.py", "c.py"])
    assert applied.changed == ["CHANGELOG.md", "a.py", "c.py"]
    assert applied.failures == {"bad.py": "exit 3: cannot parse"}
    assert (clone.path / "bad.py").read_text() == "applied: 0\n"  # its half edit was put back
    assert (clone.path / "CHANGELOG.md").read_text() == "# changes\nformatted a.py\nformatted c.py\n"
    assert commit_all(clone, "task", paths=applied.changed) is not None
    assert git(clone.path, "status", "--porcelain") == "?? notes.txt"


def test_a_changed_exit_status_counts_as_success(tmp_path: Path) -> None:
    spec = make_remote(tmp_path / "r", {"a.py": "x\n", "b.py": "y\n"})
    clone = clone_of(spec, tmp_path, "w")
    rewrite = "sed -i 's/x/z/' {path}; grep -q z {path} && exit 1; exit 0"  # exits 1 when it rewrote, as pyupgrade
    assert apply_codemod(clone, Codemod(rewrite), ["a.py"]).failures == {"a.py": "exit 1"}
    applied = apply_codemod(clone, Codemod(rewrite, ok_exit_codes=(0, 1)), ["a.py", "b.py"])
    assert applied.changed == ["a.py"] and applied.failures == {}


def test_concurrent_tasks_that_log_to_one_changelog_keep_every_entry(tmp_path: Path) -> None:
    """Every task's command appends to CHANGELOG.md: the appends conflict on every rebase, and each
    conflicting task is redone on the new tip, so no entry is lost and none is doubled."""
    files = {f"m{i:02d}.py": "applied: 0\n" for i in range(12)}
    spec = make_remote(tmp_path / "r", {**files, "CHANGELOG.md": "# changes\n"})
    codemod = Codemod(LOGGING)
    tasks = [sorted(files)[i:i + 3] for i in range(0, 12, 3)]
    errors: list[BaseException] = []
    outcomes: list[PushOutcome] = []
    barrier = threading.Barrier(len(tasks))

    def work(index: int) -> None:
        try:
            clone = clone_of(spec, tmp_path, f"w{index}")
            applied = apply_codemod(clone, codemod, tasks[index])
            commit_all(clone, f"task {index}", paths=applied.changed)
            barrier.wait()
            outcomes.append(push_with_rebase(clone, resolve=codemod_resolver(codemod, tasks[index]),
                                             overlaps_conflict=True, max_attempts=40, backoff=FAST))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=100)
    assert not errors, errors
    assert all(o.landed for o in outcomes) and sum(o.conflicts_resolved for o in outcomes) >= 1
    log = remote_file(spec, "CHANGELOG.md").splitlines()
    assert log[0] == "# changes" and sorted(log[1:]) == [f"formatted {f}" for f in sorted(files)]
    assert all(remote_file(spec, f) == "applied: 1" for f in files)

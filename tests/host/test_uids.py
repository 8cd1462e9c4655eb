"""Lending a workspace to a root worker's sandbox uid: only the workspace's own files change hands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarm_tasks.host.uids import lend, settle, workspace_uid

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only a root worker lends its workspaces")


def test_lend_gives_the_workspace_and_nothing_it_points_at(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "src").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("x\n")
    (ws / "src" / "a.py").write_text("a\n")
    (ws / "link").symlink_to(outside)  # a link to a directory: not followed
    os.link(outside / "secret.txt", ws / "hard.txt")  # a second name of a file outside: left alone
    (ws / ".git" / "hooks").mkdir(parents=True)
    for nested in ("vendor/lib/.git/objects", "mirror.git/objects", "mirror.git/refs"):  # repositories of their own
        (ws / nested).mkdir(parents=True)
    (ws / "mirror.git" / "HEAD").write_text("ref: refs/heads/main\n")
    uid = workspace_uid(ws)
    lend(ws, uid)
    assert (ws / "src" / "a.py").stat().st_uid == uid and (ws / "src").stat().st_uid == uid
    assert (ws / "link").lstat().st_uid == uid and (outside / "secret.txt").stat().st_uid == 0
    assert outside.stat().st_uid == 0 and (ws / ".git" / "hooks").stat().st_uid == 0  # .git stays ours
    # root's git must still be able to use them later (it refuses a repository another uid owns)
    assert (ws / "vendor" / "lib").stat().st_uid == 0 and (ws / "mirror.git" / "HEAD").stat().st_uid == 0
    assert (ws / "vendor").stat().st_uid == uid
    settle(ws)
    assert ws.stat().st_uid == 0  # the top goes back (git checks its owner); the command's files stay lent
    assert (ws / "src" / "a.py").stat().st_uid == uid
    (ws / "src" / "b.py").write_text("made by the worker's git\n")  # a new entry: its directory changed
    lend(ws, uid)
    assert (ws / "src" / "b.py").stat().st_uid == uid
    lend(ws, uid, git=True)
    assert (ws / ".git" / "hooks").stat().st_uid == uid
    settle(ws, git=True)
    assert (ws / ".git" / "hooks").stat().st_uid == 0

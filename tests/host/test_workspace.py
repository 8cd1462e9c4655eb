"""Workspace confinement: traversal, absolute paths, symlink escapes and loops, NUL bytes, races."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarm_tasks.errors import WorkspaceError
from swarm_tasks.host.workspace import Workspace


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Workspace, Path]:
    """A workspace with a few files, and a secret beside it (outside)."""
    root = tmp_path / "ws"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "README.md").write_text("hello\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOPSECRET\n")
    return Workspace(root), outside


def test_relative_paths_resolve_inside(layout: tuple[Workspace, Path]) -> None:
    ws, _ = layout
    assert ws.resolve("src/pkg/mod.py") == ws.root / "src" / "pkg" / "mod.py"
    assert ws.resolve("./src/../README.md") == ws.root / "README.md"
    assert ws.resolve(".") == ws.root
    assert ws.resolve("") == ws.root
    assert ws.resolve("new/dir/file.txt", for_write=True) == ws.root / "new" / "dir" / "file.txt"


def test_absolute_paths_only_inside(layout: tuple[Workspace, Path]) -> None:
    ws, outside = layout
    assert ws.resolve(str(ws.root / "README.md")) == ws.root / "README.md"
    with pytest.raises(WorkspaceError, match="outside the workspace; use a path relative"):
        ws.resolve("/etc/passwd")
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        ws.resolve(str(outside / "secret.txt"))
    with pytest.raises(WorkspaceError, match="above the workspace root"):
        ws.resolve(str(ws.root / ".." / "outside" / "secret.txt"))


@pytest.mark.parametrize("path", ["..", "../outside/secret.txt", "src/../../outside", "src/pkg/../../../x",
                                  "new/../../x"])
def test_dotdot_escapes_are_refused(layout: tuple[Workspace, Path], path: str) -> None:
    ws, _ = layout
    with pytest.raises(WorkspaceError, match=r"goes above the workspace root with '\.\.'"):
        ws.resolve(path, for_write=True)


def test_symlink_inside_is_followed_outside_refused(layout: tuple[Workspace, Path]) -> None:
    ws, outside = layout
    (ws.root / "inner").symlink_to(ws.root / "src" / "pkg")
    (ws.root / "rel_inner").symlink_to("src/pkg/mod.py")
    (ws.root / "leak").symlink_to(outside / "secret.txt")
    (ws.root / "leakdir").symlink_to(outside)
    (ws.root / "dangling_out").symlink_to(outside / "not-yet.txt")
    (ws.root / "dangling_in").symlink_to("future.txt")
    assert ws.resolve("inner/mod.py") == ws.root / "src" / "pkg" / "mod.py"
    assert ws.resolve("rel_inner") == ws.root / "src" / "pkg" / "mod.py"
    assert ws.resolve("dangling_in", for_write=True) == ws.root / "future.txt"
    for path in ("leak", "leakdir/secret.txt", "leakdir", "dangling_out", "src/../leakdir/x"):
        with pytest.raises(WorkspaceError, match=r"leads outside the workspace: .* is a symlink to"):
            ws.resolve(path)
        with pytest.raises(WorkspaceError, match="leads outside"):
            ws.resolve(path, for_write=True)


def test_symlink_via_dotdot_inside_link(layout: tuple[Workspace, Path]) -> None:
    ws, _ = layout
    (ws.root / "deep").symlink_to(ws.root / "src" / "pkg")
    # '..' applies to where the link really points (src/pkg), as the kernel does
    assert ws.resolve("deep/../pkg/mod.py") == ws.root / "src" / "pkg" / "mod.py"
    with pytest.raises(WorkspaceError, match="above the workspace root"):
        ws.resolve("deep/../../..")


def test_symlink_loop_is_a_clear_error(layout: tuple[Workspace, Path]) -> None:
    ws, _ = layout
    (ws.root / "a").symlink_to("b")
    (ws.root / "b").symlink_to("a")
    (ws.root / "self").symlink_to("self")
    for path in ("a", "b/x", "self"):
        with pytest.raises(WorkspaceError, match="symlink loop"):
            ws.resolve(path)


def test_nul_byte_refused(layout: tuple[Workspace, Path]) -> None:
    ws, _ = layout
    with pytest.raises(WorkspaceError, match="NUL byte"):
        ws.resolve("README.md\x00.txt")


def test_write_targets_must_be_files_outside_git(layout: tuple[Workspace, Path]) -> None:
    ws, _ = layout
    (ws.root / ".git").mkdir()
    with pytest.raises(WorkspaceError, match="is a directory"):
        ws.resolve("src", for_write=True)
    with pytest.raises(WorkspaceError, match="is a directory"):
        ws.resolve(".", for_write=True)
    with pytest.raises(WorkspaceError, match=r"inside a \.git directory"):
        ws.resolve(".git/hooks/pre-commit", for_write=True)
    assert ws.resolve(".git/HEAD") == ws.root / ".git" / "HEAD"  # reading is fine


def test_relative_and_root_errors(layout: tuple[Workspace, Path], tmp_path: Path) -> None:
    ws, outside = layout
    assert ws.relative(ws.root / "src" / "pkg") == "src/pkg"
    assert ws.relative(ws.root) == "."
    assert ws.relative("README.md") == "README.md"
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        ws.relative(outside / "secret.txt")
    with pytest.raises(WorkspaceError, match="cannot be used"):
        Workspace(tmp_path / "missing")
    with pytest.raises(WorkspaceError, match="not a directory"):
        Workspace(ws.root / "README.md")


def test_workspace_given_through_a_symlink(layout: tuple[Workspace, Path], tmp_path: Path) -> None:
    ws, _ = layout
    alias = tmp_path / "alias"
    alias.symlink_to(ws.root)
    via = Workspace(alias)
    assert via.root == ws.root
    assert via.resolve(str(alias / "README.md")) == ws.root / "README.md"
    assert via.relative(alias / "src") == "src"


def test_iter_files_skips_git_and_outside_links(layout: tuple[Workspace, Path]) -> None:
    ws, outside = layout
    (ws.root / ".git").mkdir()
    (ws.root / ".git" / "config").write_text("[core]\n")
    (ws.root / "leakdir").symlink_to(outside)
    (ws.root / "leak").symlink_to(outside / "secret.txt")
    (ws.root / "alias.md").symlink_to("README.md")
    (ws.root / "loop").symlink_to("loop")
    files = [ws.relative(p) for p in ws.iter_files()]
    assert files == ["README.md", "alias.md", "src/pkg/mod.py"]
    assert [ws.relative(p) for p in ws.iter_files("src")] == ["src/pkg/mod.py"]
    assert [ws.relative(p) for p in ws.iter_files("README.md")] == ["README.md"]


def test_open_reads_and_writes_confined(layout: tuple[Workspace, Path]) -> None:
    ws, _ = layout
    with ws.open("deep/new/file.txt", write=True) as fh:
        fh.write(b"data")
    with ws.open("deep/new/file.txt") as fh:
        assert fh.read() == b"data"
    with ws.open("deep/new/file.txt", write=True) as fh:  # truncates
        fh.write(b"x")
    assert (ws.root / "deep" / "new" / "file.txt").read_bytes() == b"x"
    with pytest.raises(WorkspaceError, match="is a directory"):
        ws.open("src")
    with pytest.raises(WorkspaceError, match="cannot open"):
        ws.open("missing.txt")


def test_open_detects_a_symlink_swapped_in_after_the_check(layout: tuple[Workspace, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A concurrent command replaces a checked directory with a link out: the open is refused."""
    ws, outside = layout
    (ws.root / "swapped").symlink_to(outside)
    checked = ws.root / "swapped"
    monkeypatch.setattr(ws, "resolve", lambda path, for_write=False: checked / path)  # the stale check
    with pytest.raises(WorkspaceError, match="changed while being opened"):
        ws.open("secret.txt")
    with pytest.raises(WorkspaceError, match="changed while being opened"):
        ws.open("planted.txt", write=True)
    assert not (outside / "planted.txt").exists()  # created outside, then removed again
    assert (outside / "secret.txt").read_text() == "TOPSECRET\n"


def test_open_refuses_a_final_symlink_swapped_in(layout: tuple[Workspace, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ws, outside = layout
    (ws.root / "file").symlink_to(outside / "secret.txt")
    monkeypatch.setattr(ws, "resolve", lambda path, for_write=False: ws.root / "file")
    with pytest.raises(WorkspaceError, match="cannot open"):
        ws.open("file", write=True)
    assert (outside / "secret.txt").read_text() == "TOPSECRET\n"
    assert os.path.islink(ws.root / "file")

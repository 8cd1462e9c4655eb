"""Which files a codemod runs on when --files is not given: a known tool's, else what it worked on."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.builder import Codemod
from swarm_tasks.builder.targets import choose_targets, command_program
from tests.builder import clone_of, git, make_remote


def test_the_program_of_a_command_line() -> None:
    assert command_program("ruff format {path}") == "ruff"
    assert command_program(".venv/bin/python -m black -q {path}") == "black"
    assert command_program("FOO=1 timeout 30 uv run pyupgrade --py311-plus {path}") == "pyupgrade"
    assert command_program("sed -i 's/a/b/' {path}") == "sed"


def test_a_known_tool_gets_its_files_and_any_other_command_is_tried_first(tmp_path: Path) -> None:
    spec = make_remote(tmp_path / "r", {"a.py": "x = 1\n", "b/c.py": "y = 2\n", "README.rst": "Title\n=====\n",
                                        "notes.txt": "n\n", "Makefile": "all:\n"})
    clone = clone_of(spec, tmp_path, "w")
    (clone.path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    git(clone.path, "add", "logo.png")
    git(clone.path, "commit", "-qm", "logo")
    known = choose_targets(clone.path, Codemod("ruff format {path}"), ())
    assert known.select(clone.path) == ["a.py", "b/c.py"] and "ruff handles" in known.how
    # Fails on anything that does not end in a newline-terminated "x = ..." line: .rst, .txt and Makefile.
    picky = Codemod("grep -q '^[a-z] = ' {path} || { echo \"cannot parse {path}\" >&2; exit 2; }")
    tried = choose_targets(clone.path, picky, ())
    assert tried.select(clone.path) == ["a.py", "b/c.py"]
    assert sorted(tried.skipped) == ["(no suffix)", "*.rst", "*.txt", "binary"]
    assert tried.skipped["*.rst"].reason == "exit 2: cannot parse README.rst"
    assert git(clone.path, "status", "--porcelain") == ""  # the tries left nothing behind
    given = choose_targets(clone.path, picky, ("*.txt",))
    assert given.select(clone.path) == ["notes.txt"]  # --files decides, no trying

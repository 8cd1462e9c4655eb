"""File tools through the tool contract (run_tool): happy paths, binary, non-UTF-8, huge files, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm_tasks.agents.tools.base import ToolContext, ToolResult, run_tool
from swarm_tasks.agents.tools.files import (
    EditFileTool,
    GrepTool,
    ListFilesTool,
    ReadFileTool,
    WriteFileTool,
)
from tests.agents import make_ctx, make_settings

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    root = tmp_path / "ws"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("import os\n\ndef main():\n    return os.getcwd()\n")
    (root / "src" / "app.py").write_text("from pkg import mod\nprint(mod.main())\n")
    (root / "README.md").write_text("# Demo\nSome text.\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\nmain = 1\n")
    (tmp_path / "outside.txt").write_text("TOPSECRET\n")
    return make_ctx(root, make_settings(file_max_read_bytes=4096, file_max_write_bytes=2048))


def call(tool: object, ctx: ToolContext, **args: object) -> ToolResult:
    return run_tool(tool, args, ctx)  # type: ignore[arg-type]


def test_flags_and_schemas() -> None:
    flags = {t.name: t.idempotent for t in (ReadFileTool(), WriteFileTool(), EditFileTool(), ListFilesTool(),
                                            GrepTool())}
    assert flags == {"read_file": True, "write_file": True, "edit_file": False, "list_files": True,
                     "grep": True}
    schema = ReadFileTool().schema()["function"]
    assert schema["name"] == "read_file" and "numbered" in schema["description"]
    assert set(schema["parameters"]["properties"]) == {"path", "offset", "limit"}
    assert call(ReadFileTool(), ctx=None, bogus=1).is_error  # type: ignore[arg-type]


def test_read_numbered_lines_and_paging(ctx: ToolContext) -> None:
    result = call(ReadFileTool(), ctx, path="src/pkg/mod.py")
    assert not result.is_error
    assert result.content.splitlines() == [
        "src/pkg/mod.py (lines 1-4 of 4)", "     1\timport os", "     2\t", "     3\tdef main():",
        "     4\t    return os.getcwd()"]
    page = call(ReadFileTool(), ctx, path="src/pkg/mod.py", offset=2, limit=2)
    assert page.content.splitlines()[0] == "src/pkg/mod.py (lines 2-3; the file continues: read again with offset=4)"
    assert page.data == {"path": "src/pkg/mod.py", "start_line": 2, "end_line": 3, "next_offset": 4,
                         "non_utf8": False}
    past = call(ReadFileTool(), ctx, path="src/pkg/mod.py", offset=50)
    assert past.is_error and "has 4 lines; offset 50 is past the end" in past.content


def test_read_binary_is_described_not_dumped(ctx: ToolContext) -> None:
    (ctx.workspace / "logo.png").write_bytes(PNG)
    (ctx.workspace / "blob.dat").write_bytes(b"abc\x00def" * 10)
    png = call(ReadFileTool(), ctx, path="logo.png")
    assert png.content == f"logo.png is a binary file (PNG image, {len(PNG)} bytes); not shown as text."
    blob = call(ReadFileTool(), ctx, path="blob.dat")
    assert "binary file (binary data, 70 bytes)" in blob.content and "\x00" not in blob.content


def test_read_non_utf8_is_decoded_and_flagged(ctx: ToolContext) -> None:
    (ctx.workspace / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\nplain\n".encode("latin-1"))
    result = call(ReadFileTool(), ctx, path="latin1.txt")
    assert not result.is_error
    assert "     1\tcaf\ufffd cr\ufffdme" in result.content
    assert "not valid UTF-8" in result.content and result.data["non_utf8"] is True  # type: ignore[index]


def test_read_huge_file_is_capped_with_a_way_on(ctx: ToolContext) -> None:
    (ctx.workspace / "big.log").write_text("".join(f"line {i:06d} " + "x" * 40 + "\n" for i in range(1, 20001)))
    first = call(ReadFileTool(), ctx, path="big.log")
    assert len(first.content) <= 4096 + 200
    next_offset = first.data["next_offset"]  # type: ignore[index]
    assert isinstance(next_offset, int) and 50 < next_offset < 100
    assert f"read again with offset={next_offset}" in first.content
    second = call(ReadFileTool(), ctx, path="big.log", offset=next_offset, limit=1)
    assert second.content.splitlines()[1].startswith(f"{next_offset:>6}\tline {next_offset:06d} ")
    (ctx.workspace / "minified.js").write_text("var a=1;" * 5000 + "\nsecond line\n")
    long_line = call(ReadFileTool(), ctx, path="minified.js")
    assert "line(s) 1 are longer than 1024 bytes and were cut" in long_line.content
    assert "     2\tsecond line" in long_line.content


def test_read_errors(ctx: ToolContext, tmp_path: Path) -> None:
    assert "no such file" in call(ReadFileTool(), ctx, path="nope.txt").content.lower()
    assert "is a directory" in call(ReadFileTool(), ctx, path="src").content
    escape = call(ReadFileTool(), ctx, path="../outside.txt")
    assert escape.is_error and "above the workspace root" in escape.content
    absolute = call(ReadFileTool(), ctx, path=str(tmp_path / "outside.txt"))
    assert absolute.is_error and "outside the workspace" in absolute.content
    (ctx.workspace / "link").symlink_to(tmp_path / "outside.txt")
    link = call(ReadFileTool(), ctx, path="link")
    assert link.is_error and "symlink" in link.content and "TOPSECRET" not in link.content
    (ctx.workspace / "empty.txt").write_text("")
    assert call(ReadFileTool(), ctx, path="empty.txt").content == "empty.txt is empty (0 bytes)."


def test_write_creates_dirs_and_respects_cap(ctx: ToolContext, tmp_path: Path) -> None:
    result = call(WriteFileTool(), ctx, path="new/deep/file.txt", content="one\ntwo\n")
    assert result.content == "created new/deep/file.txt (8 bytes, 2 lines)"
    assert (ctx.workspace / "new" / "deep" / "file.txt").read_text() == "one\ntwo\n"
    again = call(WriteFileTool(), ctx, path="new/deep/file.txt", content="é")
    assert again.content == "overwrote new/deep/file.txt (2 bytes, 1 lines)"
    too_big = call(WriteFileTool(), ctx, path="big.txt", content="x" * 3000)
    assert too_big.is_error and "3000 bytes; at most 2048" in too_big.content
    assert not (ctx.workspace / "big.txt").exists()
    assert "is a directory" in call(WriteFileTool(), ctx, path="src", content="x").content
    assert ".git" in call(WriteFileTool(), ctx, path=".git/hooks/pre-commit", content="x").content
    out = call(WriteFileTool(), ctx, path="../escape.txt", content="x")
    assert out.is_error and not (tmp_path / "escape.txt").exists()


def test_write_keeps_the_mode_of_an_existing_file(ctx: ToolContext) -> None:
    script = ctx.workspace / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    call(WriteFileTool(), ctx, path="run.sh", content="#!/bin/sh\necho hi\n")
    assert script.stat().st_mode & 0o777 == 0o755


def test_edit_exact_unique_and_replace_all(ctx: ToolContext) -> None:
    edit = call(EditFileTool(), ctx, path="src/pkg/mod.py", old="os.getcwd()", new="'/'")
    assert edit.content == "edited src/pkg/mod.py: replaced 1 occurrence(s), first at line 4"
    assert (ctx.workspace / "src" / "pkg" / "mod.py").read_text().endswith("    return '/'\n")
    (ctx.workspace / "dup.txt").write_text("a\nb\na\na\n")
    dup = call(EditFileTool(), ctx, path="dup.txt", old="a", new="c")
    assert dup.is_error and "found 3 times" in dup.content and "replace_all" in dup.content
    assert (ctx.workspace / "dup.txt").read_text() == "a\nb\na\na\n"
    every = call(EditFileTool(), ctx, path="dup.txt", old="a", new="c", replace_all=True)
    assert "replaced 3 occurrence(s), first at line 1" in every.content
    assert (ctx.workspace / "dup.txt").read_text() == "c\nb\nc\nc\n"


def test_edit_errors(ctx: ToolContext) -> None:
    missing = call(EditFileTool(), ctx, path="README.md", old="#Demo", new="# X")
    assert missing.is_error and "not found" in missing.content and "whitespace" in missing.content
    assert call(EditFileTool(), ctx, path="README.md", old="Demo", new="Demo").is_error
    empty = call(EditFileTool(), ctx, path="README.md", old="", new="x")
    assert empty.is_error and "old: String should have at least 1 character" in empty.content
    (ctx.workspace / "latin1.txt").write_bytes(b"caf\xe9\n")
    assert "not valid UTF-8" in call(EditFileTool(), ctx, path="latin1.txt", old="caf", new="x").content
    assert "no such file" in call(EditFileTool(), ctx, path="nope.txt", old="a", new="b").content.lower()
    grow = call(EditFileTool(), ctx, path="README.md", old="Some", new="x" * 3000)
    assert grow.is_error and "over the 2048 byte limit" in grow.content


def test_list_files(ctx: ToolContext) -> None:
    listing = call(ListFilesTool(), ctx)
    assert listing.content.splitlines() == ["README.md", "src/app.py", "src/pkg/mod.py", "(3 entries)"]
    flat = call(ListFilesTool(), ctx, recursive=False)
    assert flat.content.splitlines() == ["README.md", "src/", "(2 entries)"]
    assert call(ListFilesTool(), ctx, pattern="*.py").content.splitlines()[:2] == ["src/app.py", "src/pkg/mod.py"]
    assert call(ListFilesTool(), ctx, pattern="src/pkg/*").content.splitlines()[0] == "src/pkg/mod.py"
    assert call(ListFilesTool(), ctx, pattern="**/*.md").content.splitlines()[0] == "README.md"
    limited = call(ListFilesTool(), ctx, limit=1)
    assert limited.content.splitlines() == ["README.md", "(showing 1 of 3; narrow the listing with path or pattern)"]
    assert call(ListFilesTool(), ctx, pattern="*.rs").content == "no files match"
    assert call(ListFilesTool(), ctx, path="src/pkg").content.splitlines()[0] == "src/pkg/mod.py"
    assert call(ListFilesTool(), ctx, path="..").is_error
    assert "does not exist" in call(ListFilesTool(), ctx, path="nope").content


def test_grep(ctx: ToolContext) -> None:
    (ctx.workspace / "logo.png").write_bytes(PNG + b"import os")
    result = call(GrepTool(), ctx, pattern=r"import\s+\w+")
    assert result.content.splitlines() == ["src/app.py:1:from pkg import mod", "src/pkg/mod.py:1:import os"]
    assert call(GrepTool(), ctx, pattern="DEMO").content == "no matches"
    assert call(GrepTool(), ctx, pattern="DEMO", ignore_case=True).content == "README.md:1:# Demo"
    assert call(GrepTool(), ctx, pattern="main", glob="*.py", path="src/pkg").content == \
        "src/pkg/mod.py:3:def main():"
    capped = call(GrepTool(), ctx, pattern=".", max_matches=2)
    assert capped.content.splitlines()[-1].startswith("(stopped after 2 matches")
    bad = call(GrepTool(), ctx, pattern="(unclosed")
    assert bad.is_error and "invalid regular expression" in bad.content
    assert "main = 1" not in call(GrepTool(), ctx, pattern="main").content  # .git skipped
    assert call(GrepTool(), ctx, pattern="x", path="../").is_error

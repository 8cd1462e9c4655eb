"""File tools: read, write, edit, list and search files, all confined to the agent's workspace.

Every path goes through :class:`~swarm_tasks.host.workspace.Workspace`, so ``..``, absolute paths
elsewhere and symlinks out of the workspace are refused with a message the model can act on.
"""

from __future__ import annotations

import fnmatch
import mimetypes
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pydantic import Field

from swarm_tasks.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult
from swarm_tasks.errors import ToolError, WorkspaceError
from swarm_tasks.host.workspace import Workspace

SNIFF_BYTES = 8192
GREP_MAX_FILE_BYTES = 20 * 1024**2  # larger files are skipped by grep (and counted)
GREP_MAX_LINE_CHARS = 500
LIST_COUNT_CAP = 100_000
_MAGIC = ((b"\x89PNG", "PNG image"), (b"\xff\xd8\xff", "JPEG image"), (b"GIF8", "GIF image"),
          (b"%PDF", "PDF document"), (b"PK\x03\x04", "ZIP archive"), (b"\x1f\x8b", "gzip data"),
          (b"\x7fELF", "ELF executable"), (b"SQLite format 3\x00", "SQLite database"))


@contextmanager
def confined() -> Iterator[None]:
    """Turn workspace and OS errors into tool errors (results the model sees)."""
    try:
        yield
    except WorkspaceError as exc:
        raise ToolError(str(exc)) from None
    except FileNotFoundError as exc:
        raise ToolError(f"{exc.filename or 'file'}: no such file or directory") from None
    except IsADirectoryError as exc:
        raise ToolError(f"{exc.filename}: is a directory") from None
    except OSError as exc:
        raise ToolError(f"{exc.strerror or exc}") from None


def workspace_of(ctx: ToolContext) -> Workspace:
    with confined():
        return Workspace(ctx.workspace)


def binary_kind(head: bytes, path: Path) -> str | None:
    """A description of the file's type if ``head`` (its first bytes) says it is not text."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if b"\x00" in head:
        return mimetypes.guess_type(path.name)[0] or "binary data"
    return None


def glob_match(rel: str, pattern: str) -> bool:
    """Shell-style ``pattern`` against the file name or the workspace-relative path."""
    name = rel.rsplit("/", 1)[-1]
    bare = pattern[3:] if pattern.startswith("**/") else pattern
    return any(fnmatch.fnmatchcase(text, pat) for text in (name, rel) for pat in {pattern, bare})


def _next_line(fh: BinaryIO, cap: int) -> tuple[bytes, bool] | None:
    """The next line, at most ``cap`` bytes of it (the rest is skipped); None at end of file."""
    line = fh.readline(cap)
    if not line:
        return None
    if len(line) >= cap and not line.endswith(b"\n"):
        while (rest := fh.readline(65536)) and not rest.endswith(b"\n"):
            pass
        return line, True
    return line, False


class ReadFileArgs(ToolArgs):
    path: str = Field(description="Path of the file, relative to the workspace root.")
    offset: int = Field(default=1, ge=1, description="Line number to start at (1 = first line).")
    limit: int = Field(default=2000, ge=1, le=100_000, description="Most lines to return.")


class ReadFileTool(Tool):
    name = "read_file"
    description = ("Read a text file from the workspace. Returns numbered lines ('  12<TAB>text'). Use "
                   "offset and limit to page through long files; the answer says where to continue. "
                   "Binary files are described (type and size), not dumped.")
    Args = ReadFileArgs

    def run(self, args: ReadFileArgs, ctx: ToolContext) -> ToolResult:
        ws = workspace_of(ctx)
        cap = ctx.settings.file_max_read_bytes
        line_cap = max(cap // 4, 256)  # one minified line must not use up the whole answer
        with confined(), ws.open(args.path) as fh:
            rel = ws.relative(ws.resolve(args.path))
            size = os.fstat(fh.fileno()).st_size
            kind = binary_kind(fh.read(SNIFF_BYTES), Path(rel))
            if kind:
                return ToolResult(f"{rel} is a binary file ({kind}, {size} bytes); not shown as text.",
                                  data={"path": rel, "binary": True, "size": size})
            if size == 0:
                return ToolResult(f"{rel} is empty (0 bytes).", data={"path": rel, "size": 0})
            fh.seek(0)
            shown, line_no, used, bad_utf8, cut_lines = [], 0, 0, False, []
            next_offset: int | None = None
            while (item := _next_line(fh, line_cap)) is not None:
                line_no += 1
                if line_no < args.offset:
                    continue
                if len(shown) >= args.limit:
                    next_offset = line_no
                    break
                raw, cut = item
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = raw.decode("utf-8", "replace")
                    bad_utf8 = bad_utf8 or not cut
                rendered = f"{line_no:>6}\t{text.rstrip(chr(13) + chr(10))}"
                if shown and used + len(rendered) > cap:
                    next_offset = line_no
                    break
                shown.append(rendered)
                used += len(rendered) + 1
                if cut:
                    cut_lines.append(line_no)
        if not shown:
            raise ToolError(f"{rel} has {line_no} lines; offset {args.offset} is past the end")
        last = args.offset + len(shown) - 1
        if next_offset is None:
            header = f"{rel} (lines {args.offset}-{last} of {line_no})"
        else:
            header = f"{rel} (lines {args.offset}-{last}; the file continues: read again with offset={next_offset})"
        notes = []
        if bad_utf8:
            notes.append("note: the file is not valid UTF-8; undecodable bytes are shown as \ufffd")
        if cut_lines:
            notes.append(f"note: line(s) {', '.join(map(str, cut_lines[:20]))} are longer than {line_cap} bytes "
                         "and were cut")
        content = "\n".join([header, *shown, *notes])
        return ToolResult(content, data={"path": rel, "start_line": args.offset, "end_line": last,
                                         "next_offset": next_offset, "non_utf8": bad_utf8})


class WriteFileArgs(ToolArgs):
    path: str = Field(description="Path of the file, relative to the workspace root. Missing directories "
                                  "are created.")
    content: str = Field(description="The complete new content of the file (UTF-8).")


class WriteFileTool(Tool):
    name = "write_file"
    description = ("Create a file or replace its whole content. For a small change to an existing file "
                   "use edit_file instead.")
    Args = WriteFileArgs
    idempotent = True  # writing the same content twice leaves the same file

    def run(self, args: WriteFileArgs, ctx: ToolContext) -> ToolResult:
        ws = workspace_of(ctx)
        data = args.content.encode("utf-8")
        cap = ctx.settings.file_max_write_bytes
        if len(data) > cap:
            raise ToolError(f"content is {len(data)} bytes; at most {cap} may be written at once. Write the "
                            "file in parts with edit_file, or generate it with a shell command.")
        with confined():
            target = ws.resolve(args.path, for_write=True)
            existed = target.exists()
            with ws.open(args.path, write=True) as fh:
                fh.write(data)
            rel = ws.relative(target)
        lines = args.content.count("\n") + (0 if args.content.endswith("\n") or not args.content else 1)
        verb = "overwrote" if existed else "created"
        return ToolResult(f"{verb} {rel} ({len(data)} bytes, {lines} lines)",
                          data={"path": rel, "bytes": len(data), "created": not existed})


class EditFileArgs(ToolArgs):
    path: str = Field(description="Path of the file, relative to the workspace root.")
    old: str = Field(min_length=1, description="Exact text to replace, including whitespace and indentation. "
                                               "Include enough surrounding lines to make it unique.")
    new: str = Field(description="Text to put in its place.")
    replace_all: bool = Field(default=False, description="Replace every occurrence instead of exactly one.")


class EditFileTool(Tool):
    name = "edit_file"
    description = ("Replace an exact piece of text in a file. Fails if the text is not found, or is found "
                   "more than once (unless replace_all is true). Read the file first to copy the text exactly.")
    Args = EditFileArgs
    idempotent = False  # a repeated replace_all or a new that contains old would apply twice

    def run(self, args: EditFileArgs, ctx: ToolContext) -> ToolResult:
        ws = workspace_of(ctx)
        cap = ctx.settings.file_max_write_bytes
        if args.old == args.new:
            raise ToolError("old and new are identical; nothing to change")
        with confined():
            rel = ws.relative(ws.resolve(args.path, for_write=True))
            with ws.open(args.path) as fh:
                raw = fh.read(cap + 1)
            if len(raw) > cap:
                raise ToolError(f"{rel} is larger than {cap} bytes; edit it with a shell command")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ToolError(f"{rel} is not valid UTF-8 text; edit_file only edits UTF-8 files") from None
            count = text.count(args.old)
            if count == 0:
                raise ToolError(f"old text not found in {rel}. It must match exactly, including whitespace, "
                                "indentation and line breaks; read the file and copy the text.")
            if count > 1 and not args.replace_all:
                raise ToolError(f"old text is found {count} times in {rel}; include more surrounding lines to "
                                "make it unique, or set replace_all=true to replace all of them")
            first_line = text.count("\n", 0, text.index(args.old)) + 1
            updated = text.replace(args.old, args.new) if args.replace_all else text.replace(args.old, args.new, 1)
            data = updated.encode("utf-8")
            if len(data) > cap:
                raise ToolError(f"the edited file would be {len(data)} bytes, over the {cap} byte limit")
            with ws.open(args.path, write=True) as fh:
                fh.write(data)
        replaced = count if args.replace_all else 1
        return ToolResult(f"edited {rel}: replaced {replaced} occurrence(s), first at line {first_line}",
                          data={"path": rel, "replacements": replaced, "first_line": first_line})


class ListFilesArgs(ToolArgs):
    path: str = Field(default=".", description="Directory to list, relative to the workspace root.")
    pattern: str | None = Field(default=None, description="Shell-style glob matched against the file name or "
                                                          "relative path, e.g. '*.py' or 'src/*/test_*.py'.")
    recursive: bool = Field(default=True, description="Include files in subdirectories (.git is skipped).")
    limit: int = Field(default=500, ge=1, le=10_000, description="Most entries to return.")


class ListFilesTool(Tool):
    name = "list_files"
    description = ("List files in the workspace, relative to its root, sorted. Recursive by default; "
                   "non-recursive listings mark directories with a trailing '/'.")
    Args = ListFilesArgs

    def run(self, args: ListFilesArgs, ctx: ToolContext) -> ToolResult:
        ws = workspace_of(ctx)
        with confined():
            base = ws.resolve(args.path)
            if not base.exists():
                raise ToolError(f"{args.path!r} does not exist in the workspace")
            entries = self._recursive(ws, args) if args.recursive or base.is_file() else self._flat(ws, base)
            if args.pattern:
                entries = (e for e in entries if glob_match(e.rstrip("/"), args.pattern))
            shown: list[str] = []
            total = 0
            for entry in entries:
                total += 1
                if len(shown) < args.limit:
                    shown.append(entry)
                elif total >= LIST_COUNT_CAP:  # counting a huge tree would take long; the model needs a hint
                    break
        if not shown:
            return ToolResult("no files match", data={"count": 0})
        counted = f"{total}" if total < LIST_COUNT_CAP else f"at least {total}"
        footer = (f"({total} entries)" if total <= args.limit else
                  f"(showing {len(shown)} of {counted}; narrow the listing with path or pattern)")
        return ToolResult("\n".join([*shown, footer]), data={"count": total, "shown": len(shown)})

    @staticmethod
    def _recursive(ws: Workspace, args: ListFilesArgs) -> Iterator[str]:
        for path in ws.iter_files(args.path):
            yield ws.relative(path)

    @staticmethod
    def _flat(ws: Workspace, base: Path) -> Iterator[str]:
        for entry in sorted(os.scandir(base), key=lambda e: e.name):
            if entry.name == ".git":
                continue
            rel = ws.relative(Path(base, entry.name))
            yield f"{rel}/" if entry.is_dir(follow_symlinks=False) else rel


class GrepArgs(ToolArgs):
    pattern: str = Field(min_length=1, description="Regular expression (Python syntax) searched in each line.")
    path: str = Field(default=".", description="File or directory to search, relative to the workspace root.")
    glob: str | None = Field(default=None, description="Only search files matching this glob, e.g. '*.py'.")
    max_matches: int = Field(default=200, ge=1, le=5000, description="Stop after this many matching lines.")
    ignore_case: bool = Field(default=False, description="Match regardless of letter case.")


class GrepTool(Tool):
    name = "grep"
    description = ("Search file contents in the workspace with a regular expression. Returns "
                   "'path:line:text' for each matching line; binary files and .git are skipped.")
    Args = GrepArgs

    def run(self, args: GrepArgs, ctx: ToolContext) -> ToolResult:
        try:
            regex = re.compile(args.pattern, re.IGNORECASE if args.ignore_case else 0)
        except re.error as exc:
            raise ToolError(f"invalid regular expression {args.pattern!r}: {exc}") from None
        ws = workspace_of(ctx)
        cap = ctx.settings.file_max_read_bytes
        hits: list[str] = []
        used = skipped_big = 0
        stopped = False
        with confined():
            for path in ws.iter_files(args.path):
                rel = ws.relative(path)
                if args.glob and not glob_match(rel, args.glob):
                    continue
                with ws.open(rel) as fh:
                    if os.fstat(fh.fileno()).st_size > GREP_MAX_FILE_BYTES:
                        skipped_big += 1
                        continue
                    raw = fh.read()
                if binary_kind(raw[:SNIFF_BYTES], path):
                    continue
                for no, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
                    if regex.search(line):
                        hit = f"{rel}:{no}:{line[:GREP_MAX_LINE_CHARS]}"
                        if len(hits) >= args.max_matches or used + len(hit) > cap:
                            stopped = True
                            break
                        hits.append(hit)
                        used += len(hit) + 1
                if stopped:
                    break
        notes = []
        if stopped:
            notes.append(f"(stopped after {len(hits)} matches; narrow the pattern, path or glob)")
        if skipped_big:
            notes.append(f"({skipped_big} file(s) larger than {GREP_MAX_FILE_BYTES} bytes were not searched)")
        if not hits:
            return ToolResult("\n".join(["no matches", *notes]), data={"matches": 0})
        return ToolResult("\n".join([*hits, *notes]), data={"matches": len(hits), "complete": not stopped})


FILE_TOOLS: tuple[Tool, ...] = (ReadFileTool(), WriteFileTool(), EditFileTool(), ListFilesTool(), GrepTool())

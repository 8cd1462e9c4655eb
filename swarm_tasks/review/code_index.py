"""Read-through cache of the reviewed code (texts, Python ASTs, JS/TS trees) for repository-wide searches."""

from __future__ import annotations

import ast
import threading
from collections.abc import Iterable
from pathlib import Path

from swarm_tasks.errors import ReviewError
from swarm_tasks.review import jsparse, pyast
from swarm_tasks.review.languages import JS_FAMILY, Language
from swarm_tasks.review.source import SourceFile, read_source


class CodeIndex:
    """The files a review may search (the repository and the dependencies it follows), read lazily
    once each. Safe to share between a worker's threads (one per run and process: every sub-reviewer of
    a run then reads and parses each file once): what it caches is computed whole, then published."""

    def __init__(self, root: Path, files: Iterable[SourceFile] = ()) -> None:
        self.root = root
        self.files: dict[str, SourceFile] = {}
        self._text: dict[str, str | None] = {}
        self._tree: dict[str, ast.Module | None] = {}
        self._js: dict[str, jsparse.JsTree | None] = {}
        self._calls: dict[str, list[tuple[str, ast.Call]]] | None = None
        self._lock = threading.Lock()
        for file in files:
            self.add(file)

    def add(self, file: SourceFile) -> None:
        """Make ``file`` searchable."""
        if file.path not in self.files:
            self.files[file.path] = file
            self._calls = None  # rebuilt with the new file on next use

    def text(self, path: str) -> str | None:
        """The file's text, or None when unknown or unreadable."""
        if path not in self._text:
            file = self.files.get(path)
            try:
                self._text[path] = read_source(self.root, file) if file else None
            except ReviewError:
                self._text[path] = None
        return self._text[path]

    def lines(self, path: str) -> list[str]:
        """The file's lines (empty when unreadable)."""
        text = self.text(path)
        return text.splitlines() if text is not None else []

    def tree(self, path: str) -> ast.Module | None:
        """The parsed Python module, or None (not Python, unreadable, or a syntax error)."""
        if path not in self._tree:
            file, text = self.files.get(path), self.text(path)
            tree = None
            if file is not None and file.language is Language.PYTHON and text is not None:
                try:
                    tree = pyast.parse_python(text, path)
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    tree = None
            self._tree[path] = tree
        return self._tree[path]

    def js(self, path: str) -> jsparse.JsTree | None:
        """The parsed JS/TS file, or None."""
        if path not in self._js:
            file, text = self.files.get(path), self.text(path)
            ok = file is not None and file.language in JS_FAMILY and text is not None
            self._js[path] = jsparse.parse(text, file.language, path) if ok and file and text is not None else None
        return self._js[path]

    def including(self, file: SourceFile) -> CodeIndex:
        """This index with ``file`` besides, this one left as it is: an index shared by a run's sub-reviewers
        must answer each of them the same whatever the others asked before (when one added its file to it,
        the next trace in that process searched that file too, and two runs spawned different sub-reviewers).
        Texts, trees and the call index are shared, not copied."""
        if file.path in self.files:
            return self
        view = CodeIndex(self.root)
        view.files = {**self.files, file.path: file}
        view._text, view._tree, view._js = self._text, self._tree, self._js
        base, extra = self._call_index(), _calls_in(view, [file.path])
        view._calls = {**base, **{name: [*base.get(name, []), *found] for name, found in extra.items()}}
        return view

    def python_calls(self, name: str) -> list[tuple[str, ast.Call]]:
        """(path, call) of every call of a function or method named ``name`` in the indexed Python code.
        The index is built once, on first use, so many traces cost one walk of the code."""
        return self._call_index().get(name, [])

    def _call_index(self) -> dict[str, list[tuple[str, ast.Call]]]:
        calls = self._calls
        if calls is None:
            with self._lock:
                calls = self._calls
                if calls is None:
                    calls = self._calls = _calls_in(self, self.paths(Language.PYTHON))
        return calls

    def paths(self, *languages: Language) -> list[str]:
        """Indexed paths in these languages (all when none given), sorted."""
        return sorted(p for p, f in list(self.files.items()) if not languages or f.language in languages)


def _calls_in(index: CodeIndex, paths: list[str]) -> dict[str, list[tuple[str, ast.Call]]]:
    """Every call in the Python files ``paths`` of ``index``, by the called name."""
    calls: dict[str, list[tuple[str, ast.Call]]] = {}
    for path in paths:
        tree = index.tree(path)
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Call):
                func = node.func
                callee = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                if callee:
                    calls.setdefault(callee, []).append((path, node))
    return calls

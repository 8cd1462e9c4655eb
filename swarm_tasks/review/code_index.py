"""Read-through cache of the reviewed code (texts, Python ASTs, JS/TS trees) for repository-wide searches."""

from __future__ import annotations

import ast
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
        self._calls: dict[str, list[tuple[str, ast.Call]]] = {}  # by called name, each looked for once
        for file in files:
            self.add(file)

    def add(self, file: SourceFile) -> None:
        """Make ``file`` searchable."""
        if file.path not in self.files:
            self.files[file.path] = file
            self._calls = {}  # looked for again, the new file included

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
        return view

    def python_calls(self, name: str) -> list[tuple[str, ast.Call]]:
        """(path, call) of every call of a function or method named ``name`` in the indexed Python code, by
        path, then in ``ast.walk`` order. Only files whose text holds the name are parsed and walked (a call
        names its callee verbatim; a file with non-ASCII text is walked anyway, since Python reads its
        identifiers NFKC-normalised), once per name: a review's traces ask for a few dozen names, where
        indexing every call of every file first cost a parse of the whole repository in each worker."""
        found = self._calls.get(name)
        if found is None:
            paths = [p for p in self.paths(Language.PYTHON) if _may_call(self.text(p), name)]
            found = self._calls[name] = [(p, call) for p, call in _calls_in(self, paths) if _callee(call) == name]
        return found

    def paths(self, *languages: Language) -> list[str]:
        """Indexed paths in these languages (all when none given), sorted."""
        return sorted(p for p, f in list(self.files.items()) if not languages or f.language in languages)


def _may_call(text: str | None, name: str) -> bool:
    return text is not None and (name in text or not text.isascii())


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _calls_in(index: CodeIndex, paths: list[str]) -> list[tuple[str, ast.Call]]:
    """Every call in the Python files ``paths`` of ``index``, in order."""
    empty = ast.Module(body=[], type_ignores=[])
    return [(path, node) for path in paths for node in ast.walk(index.tree(path) or empty)
            if isinstance(node, ast.Call)]

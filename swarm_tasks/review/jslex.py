"""Just enough JavaScript/TypeScript lexing for the heuristics: comments removed, strings masked,
functions found by brace matching. Offsets and line numbers are those of the original text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

_REGEX_BEFORE = set("(,=:[!&|?{};+-*%<>~^") | {""}
_KEYWORDS = frozenset({"if", "for", "while", "switch", "catch", "function", "return", "typeof", "with", "else",
                       "do", "try", "new", "await", "yield", "delete", "void", "in", "of", "instanceof"})


@dataclass
class JsText:
    """``code``: comments blanked; ``skeleton``: comments and string/regex contents blanked. Both keep
    every newline and offset of ``text``."""

    text: str
    code: str
    skeleton: str
    _line_starts: list[int] = field(default_factory=list, repr=False)

    def line_of(self, offset: int) -> int:
        """1-based line number of a character offset."""
        if not self._line_starts:
            self._line_starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        lo, hi = 0, len(self._line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    @cached_property
    def lines(self) -> list[str]:
        """The original lines."""
        return self.text.splitlines()

    @cached_property
    def code_lines(self) -> list[str]:
        """Lines with comments blanked."""
        return self.code.split("\n")


def lex(text: str) -> JsText:
    """Blank comments (and, in the skeleton, string, template and regex contents)."""
    code = list(text)
    skel = list(text)
    i, n = 0, len(text)
    last = ""  # last significant character, to tell a regex literal from a division

    def blank(buf: list[str], start: int, end: int) -> None:
        for k in range(start, end):
            if buf[k] != "\n":
                buf[k] = " "

    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(code, i, end)
            blank(skel, i, end)
            i = end
        elif c == "/" and nxt == "*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(code, i, end)
            blank(skel, i, end)
            i = end
        elif c == "`":
            end = _template_end(text, i, skel)
            i, last = end, c
        elif c in "'\"":
            end = _string_end(text, i, c)
            blank(skel, i + 1, end - 1)
            i, last = end, c
        elif c == "/" and last in _REGEX_BEFORE:
            end = _regex_end(text, i)
            blank(skel, i + 1, end - 1)
            i, last = end, "/"
        else:
            if not c.isspace():
                last = c if not (c.isalnum() or c in "_$") else "a"
            i += 1
    return JsText(text=text, code="".join(code), skeleton="".join(skel))


def _template_end(text: str, start: int, skel: list[str]) -> int:
    """End of a template literal; blanks its literal parts in ``skel`` but keeps ``${...}`` code."""
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            skel[i] = " "
            if i + 1 < n and text[i + 1] != "\n":
                skel[i + 1] = " "
            i += 2
            continue
        if c == "`":
            return i + 1
        if c == "$" and i + 1 < n and text[i + 1] == "{":
            depth, i = 1, i + 2
            while i < n and depth:
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            continue
        if c != "\n":
            skel[i] = " "
        i += 1
    return n


def _string_end(text: str, start: int, quote: str) -> int:
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            return i + 1
        if c == "\n" and quote != "`":
            return i  # unterminated string: stop at the line end
        i += 1
    return n


def _regex_end(text: str, start: int) -> int:
    i, n, in_class = start + 1, len(text), False
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "\n":
            return i
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            return i + 1
        i += 1
    return n


@dataclass(frozen=True, slots=True)
class JsFunction:
    """A function found in JS/TS text."""

    name: str
    start_line: int
    end_line: int
    params: tuple[str, ...]
    max_depth: int
    deepest_line: int
    exported: bool
    has_jsdoc: bool


_FUNC_PATTERNS = (  # named forms first: the first pattern to claim a body names it
    re.compile(r"(?P<export>\bexport\s+)?\b(?:const|let|var)\s+(?P<name>[\w$]+)\s*(?::[^=]+)?=\s*(?:async\s+)?"
               r"(?:function\b\s*\*?\s*[\w$]*\s*)?\("),
    re.compile(r"(?P<export>\b(?:module\.)?exports\.)(?P<name>[\w$]+)\s*=\s*(?:async\s+)?(?:function\b\s*[\w$]*\s*)?\("),
    re.compile(r"(?P<export>\bexport\s+(?:default\s+)?)?(?:async\s+)?\bfunction\b\s*\*?\s*(?P<name>[\w$]*)\s*"
               r"(?:<[^>()]*>)?\s*\("),
    re.compile(r"^[ \t]*(?:(?:public|private|protected|static|async|get|set)\s+)*(?P<name>[\w$]+)\s*\(",
               re.MULTILINE),
)


def functions(js: JsText) -> list[JsFunction]:
    """Functions, arrow functions bound to names, and class methods, each once."""
    found: dict[int, JsFunction] = {}
    sk = js.skeleton
    for pattern in _FUNC_PATTERNS:
        for match in pattern.finditer(sk):
            name = match.group("name") or "<anonymous>"
            if name in _KEYWORDS:
                continue
            open_paren = match.end() - 1
            close_paren = _match(sk, open_paren, "(", ")")
            if close_paren < 0:
                continue
            body = _body_start(sk, close_paren + 1)
            if body < 0:
                continue
            end = _match(sk, body, "{", "}")
            if end < 0 or body in found:
                continue
            depth, deepest = _depth(sk, body, end)
            start_line = js.line_of(match.start("name") if match.group("name") else match.start())
            params = _params(sk[open_paren + 1:close_paren])
            exported = bool(match.groupdict().get("export")) or _exported_later(sk, name)
            found[body] = JsFunction(name=name, start_line=start_line, end_line=js.line_of(end), params=params,
                                     max_depth=depth, deepest_line=js.line_of(deepest),
                                     exported=exported, has_jsdoc=_has_jsdoc(js, match.start()))
    return sorted(found.values(), key=lambda f: f.start_line)


def split_args(text: str, generics: bool = False) -> list[str]:
    """Top-level comma-separated parts of a parameter or argument list (skeleton text); ``generics``
    also nests in ``<...>`` (TS parameter types, where < is not a comparison)."""
    opening, closing_chars = ("([{<", ")]}>") if generics else ("([{", ")]}")
    parts: list[str] = []
    depth, current = 0, []
    for c in text:
        if c in opening:
            depth += 1
        elif c in closing_chars:
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    parts.append("".join(current))
    return parts


def closing(sk: str, open_paren: int) -> int:
    """Offset of the parenthesis closing the one at ``open_paren``, or -1."""
    return _match(sk, open_paren, "(", ")")


def _params(text: str) -> tuple[str, ...]:
    """Parameter names: the leading identifier of each top-level comma-separated part."""
    parts = split_args(text, generics=True)
    names = (re.match(r"\s*(?:\.\.\.)?\s*(?:public\s+|private\s+|readonly\s+)*([\w$]+)", p) for p in parts)
    return tuple(m.group(1) for m in names if m)


def _match(sk: str, start: int, open_c: str, close_c: str) -> int:
    depth = 0
    for i in range(start, len(sk)):
        if sk[i] == open_c:
            depth += 1
        elif sk[i] == close_c:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _body_start(sk: str, after: int) -> int:
    """The ``{`` opening a function body after its parameter list (skipping ``=>`` and TS return types)."""
    arrow = re.compile(r"\s*(?::[^{;=]*?)?\s*(=>)?\s*\{")
    match = arrow.match(sk, after)
    return match.end() - 1 if match else -1


def _depth(sk: str, body: int, end: int) -> tuple[int, int]:
    depth, best, where = 0, 0, body
    for i in range(body + 1, end):
        if sk[i] == "{":
            depth += 1
            if depth > best:
                best, where = depth, i
        elif sk[i] == "}":
            depth -= 1
    return best, where


def _exported_later(sk: str, name: str) -> bool:
    if name == "<anonymous>":
        return False
    escaped = re.escape(name)
    return bool(re.search(rf"\bexport\s*\{{[^}}]*\b{escaped}\b|module\.exports\s*=\s*\{{[^}}]*\b{escaped}\b|"
                          rf"module\.exports\s*=\s*{escaped}\b|exports\.{escaped}\s*=", sk))


def _has_jsdoc(js: JsText, offset: int) -> bool:
    before = js.text[:offset].rstrip()
    return before.endswith("*/") and before[before.rfind("/*"):].startswith("/**")


IMPORT_PATTERNS = (
    re.compile(r"""\bimport\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s+from\s+)?['"]([^'"]+)['"]"""),
    re.compile(r"""\bexport\s+(?:type\s+)?(?:\*|\{[^}]*\})(?:\s+as\s+[\w$]+)?\s+from\s+['"]([^'"]+)['"]"""),
    re.compile(r"""\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)"""),
    re.compile(r"""\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)"""),
)


def imports(js: JsText) -> list[tuple[str, int]]:
    """(specifier, line) of every static import, re-export, require() and literal dynamic import()."""
    seen: dict[tuple[str, int], None] = {}
    for pattern in IMPORT_PATTERNS:
        for match in pattern.finditer(js.code):
            seen.setdefault((match.group(1), js.line_of(match.start())), None)
    return sorted(seen, key=lambda item: (item[1], item[0]))

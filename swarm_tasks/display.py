"""Text from outside (file names, titles, reasons, code) made inert where people read it.

A reviewed repository chooses its file names and contents, and a model chooses its words: a newline in
a name would start a new line of report.md (a forged finding), an escape sequence would drive the
terminal that shows it (clear the screen, rewrite a line, set the title), a bidirectional override would
show code in another order than it runs. :func:`inert` turns every such character into a visible escape
(``\\n``, ``\\x1b``, ``\\u202e``); :func:`code_span`, :func:`md_text` and :func:`console_text` build on it
for Markdown and for rich's console markup.
"""

from __future__ import annotations

import re

from rich.markup import escape as _rich_escape

# C0 controls (tab and newline are handled per call), DEL, C1 controls, and the Unicode marks that
# reorder or hide text (bidi embeddings, overrides and isolates, LRM/RLM/ALM, zero-width joiners kept).
_ALWAYS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_ONE_LINE = re.compile(f"[\t\n{_ALWAYS}]")
_MULTI_LINE = re.compile(f"[{_ALWAYS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BACKTICKS = re.compile(r"`+")
_MD_ACTIVE = re.compile(r"([\\`*_\[\]<>|#])")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str, *, multiline: bool = False) -> str:
    """``text`` with control and reordering characters shown as escapes; ``multiline`` keeps newlines
    and tabs (code), otherwise the text stays on one line."""
    return (_MULTI_LINE if multiline else _ONE_LINE).sub(_escape, text)


def json_inert(text: str) -> str:
    """JSON text with the characters JSON leaves raw (DEL, C1 controls, reordering marks) as ``\\uXXXX``
    escapes: the same data for a parser, nothing active for a terminal that shows the file."""
    return _MULTI_LINE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def code_span(text: str) -> str:
    """Inline Markdown code showing ``text`` (one line, inert) whatever backticks it holds."""
    shown = inert(text)
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(shown)), default=0) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def code_fence(text: str) -> str:
    """A fence for a Markdown code block holding ``text``: longer than any backtick run in it."""
    return "`" * max(3, max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)


def md_text(text: str) -> str:
    """Free text (a title, a note) as one inert line of Markdown: no markup, links or HTML of its own."""
    return _MD_ACTIVE.sub(r"\\\1", inert(text))


def console_text(text: str) -> str:
    """``text`` for rich's console: one inert line whose brackets print as themselves, not as markup."""
    return _rich_escape(inert(text))


def duration(seconds: float) -> str:
    """``42 s``, ``5 min 12 s``, ``3 h 04 min``: a wait as people say it."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


__all__ = ["code_fence", "code_span", "console_text", "duration", "inert", "json_inert", "md_text"]

"""Text from outside shown inert: in one line, in Markdown, in rich's console markup, in JSON."""

from __future__ import annotations

import json

from rich.console import Console

from swarm_tasks.display import code_fence, code_span, console_text, inert, json_inert, md_text

HOSTILE = "a\nb\r\tc\x1b[2J\x07\x9b1m\u202eyp.d"


def test_inert_shows_every_control_and_reordering_character_as_an_escape() -> None:
    assert inert(HOSTILE) == "a\\nb\\r\\tc\\x1b[2J\\x07\\x9b1m\\u202eyp.d"
    assert inert("line one\n\tline two\x1b", multiline=True) == "line one\n\tline two\\x1b"
    assert inert("plain ascii, ünïcode, emoji 🐍") == "plain ascii, ünïcode, emoji 🐍"


def test_code_spans_and_fences_hold_any_backticks() -> None:
    assert code_span("a.py:3") == "`a.py:3`"
    assert code_span("x`y.py") == "``x`y.py``"
    assert code_span("`lead") == "`` `lead ``"
    assert code_span(HOSTILE).count("\n") == 0
    assert code_fence("no ticks") == "```" and code_fence("has ```` four") == "`````"


def test_markdown_text_has_no_markup_of_its_own() -> None:
    shown = md_text("[click](http://evil) <img src=x> *bold* | cell\n# heading")
    assert "](" not in shown.replace("\\](", "") and "<img" not in shown.replace("\\<img", "")
    assert "\n" not in shown and "\\|" in shown


def test_console_text_prints_brackets_and_no_escape_codes() -> None:
    console = Console(record=True, width=200, color_system=None)
    console.print(f"reason: {console_text('[bold red]fake[/] ' + HOSTILE)}")
    out = console.export_text()
    assert "[bold red]fake[/]" in out and "\x1b" not in out and "\\x1b[2J" in out


def test_json_inert_keeps_the_data_and_escapes_what_json_leaves_raw() -> None:
    text = json.dumps({"name": HOSTILE + "\x7f"}, ensure_ascii=False)
    shown = json_inert(text)
    assert json.loads(shown) == json.loads(text)
    assert not any(c in shown for c in "\x1b\x07\x9b\x7f\u202e")

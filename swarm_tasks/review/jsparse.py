"""JavaScript and TypeScript on a real parser: tree-sitter's JavaScript (with JSX), TypeScript and TSX grammars.

:func:`parse` gives a :class:`JsTree`: the syntax tree, the functions in it (name, lines, parameters,
nesting, exported, JSDoc), its imports, and two views of the text with every character offset kept:
``code`` (comments blanked) and ``skeleton`` (comments and the contents of strings, templates and regex
literals blanked, template substitutions kept), for the taint tracer's line-level searches. Both views
are made from the tree, so a ``//`` inside a string or a ``/`` that divides never confuses them.
Parsers are made per call (a tree-sitter parser is not for sharing between threads); languages and
compiled queries are shared.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import tree_sitter as ts
import tree_sitter_javascript as ts_javascript
import tree_sitter_typescript as ts_typescript

from swarm_tasks.review.languages import Language

JAVASCRIPT = ts.Language(ts_javascript.language())
TYPESCRIPT = ts.Language(ts_typescript.language_typescript())
TSX = ts.Language(ts_typescript.language_tsx())
FUNCTION_NODES = frozenset({"function_declaration", "generator_function_declaration", "function_expression",
                            "function", "generator_function", "arrow_function", "method_definition"})
NESTING_NODES = frozenset({"if_statement", "for_statement", "for_in_statement", "while_statement", "do_statement",
                           "switch_statement", "try_statement", "with_statement"})
_STRINGISH = frozenset({"string", "template_string", "regex"})
_queries: dict[tuple[int, str], ts.Query | None] = {}
_queries_lock = threading.Lock()


def grammar_for(language: Language, path: str = "") -> ts.Language:
    """The grammar of a file: TSX for ``.tsx``, TypeScript for other TS files, JavaScript (JSX) otherwise."""
    if path.endswith(".tsx"):
        return TSX
    return TYPESCRIPT if language is Language.TYPESCRIPT else JAVASCRIPT


def query(grammar: ts.Language, source: str) -> ts.Query | None:
    """A compiled query (cached), or None when the grammar has no such nodes (JSX in plain TypeScript)."""
    key = (id(grammar), source)
    if key not in _queries:
        with _queries_lock:
            try:
                _queries[key] = ts.Query(grammar, source)
            except (ts.QueryError, NameError, SyntaxError, ValueError):
                _queries[key] = None
    return _queries[key]


@dataclass(frozen=True, slots=True)
class JsFunction:
    """A function, method or arrow function in JS/TS code."""

    name: str
    start_line: int
    end_line: int
    params: tuple[str, ...]
    max_depth: int
    deepest_line: int
    exported: bool
    has_jsdoc: bool


@dataclass
class JsTree:
    """One parsed JS/TS file. Offsets (``line_of``, ``code``, ``skeleton``) are character offsets of ``text``."""

    text: str
    tree: ts.Tree
    grammar: ts.Language
    _data: bytes = field(repr=False, default=b"")

    @property
    def root(self) -> ts.Node:
        """The tree's root node."""
        return self.tree.root_node

    @cached_property
    def lines(self) -> list[str]:
        """The original lines."""
        return self.text.splitlines()

    @cached_property
    def _line_starts(self) -> list[int]:
        starts = [0]
        starts.extend(i + 1 for i, c in enumerate(self.text) if c == "\n")
        return starts

    def line_of(self, offset: int) -> int:
        """1-based line number of a character offset."""
        return bisect.bisect_right(self._line_starts, offset)

    @cached_property
    def _char_of_byte(self) -> list[int] | None:
        if len(self._data) == len(self.text):
            return None  # ASCII: byte and character offsets agree
        table = [0] * (len(self._data) + 1)
        position = 0
        for index, char in enumerate(self.text):
            width = len(char.encode("utf-8", "surrogatepass"))
            for k in range(width):
                table[position + k] = index
            position += width
        table[position] = len(self.text)
        return table

    def char(self, byte_offset: int) -> int:
        """The character offset of a byte offset the tree gives."""
        table = self._char_of_byte
        return byte_offset if table is None else table[min(byte_offset, len(table) - 1)]

    def node_text(self, node: ts.Node) -> str:
        """The source text of a node."""
        return self._data[node.start_byte:node.end_byte].decode("utf-8", "replace")

    def nodes(self, *types: str) -> Iterator[ts.Node]:
        """Every node of these types, in source order."""
        cursor = self.root.walk()
        wanted = frozenset(types)
        while True:
            node = cursor.node
            if node is not None and node.type in wanted:
                yield node
            if cursor.goto_first_child():
                continue
            while not cursor.goto_next_sibling():
                if not cursor.goto_parent():
                    return

    def _blanked(self, skeleton: bool) -> str:
        chars = list(self.text)
        blank_types = ("comment", *(_STRINGISH if skeleton else ()))
        for node in self.nodes(*blank_types):
            if node.type == "comment":
                spans = [(node.start_byte, node.end_byte)]
            elif node.type == "template_string":  # literal parts only: ${...} stays code
                spans = [(c.start_byte, c.end_byte) for c in node.children if c.type == "string_fragment"]
            else:  # a string or regex: keep its delimiters
                spans = [(node.start_byte + 1, node.end_byte - 1)]
            for start, end in spans:
                for i in range(self.char(start), self.char(end)):
                    if chars[i] != "\n":
                        chars[i] = " "
        return "".join(chars)

    @cached_property
    def code(self) -> str:
        """The text with comments blanked."""
        return self._blanked(skeleton=False)

    @cached_property
    def skeleton(self) -> str:
        """The text with comments and string, template and regex contents blanked."""
        return self._blanked(skeleton=True)

    def syntax_error_line(self) -> int | None:
        """The first line the parser could not make sense of, or None for a clean parse."""
        if not self.root.has_error:
            return None
        for node in self.nodes("ERROR"):
            return node.start_point.row + 1
        missing = next((n for n in _walk(self.root) if n.is_missing), None)
        return missing.start_point.row + 1 if missing is not None else 1

    @cached_property
    def functions(self) -> list[JsFunction]:
        """Functions, methods and arrow functions with a body, in source order."""
        exported_names = _exported_names(self)
        out = []
        for node in self.nodes(*FUNCTION_NODES):
            body = node.child_by_field_name("body")
            if body is None:
                continue
            name, anchor = _name_and_anchor(self, node)
            depth, deepest = _nesting(body)
            out.append(JsFunction(
                name=name, start_line=anchor.start_point.row + 1, end_line=node.end_point.row + 1,
                params=_params(self, node), max_depth=depth,
                deepest_line=(deepest or body).start_point.row + 1,
                exported=_in_export(anchor) or (name in exported_names and _top_level(anchor)),
                has_jsdoc=_has_jsdoc(self, anchor)))
        return out

    @cached_property
    def imports(self) -> list[tuple[str, int]]:
        """(specifier, line) of every import, re-export, ``require('x')`` and literal ``import('x')``."""
        found: dict[tuple[str, int], None] = {}
        for node in self.nodes("import_statement", "export_statement", "call_expression"):
            source = None
            if node.type == "call_expression":
                func, args = node.child_by_field_name("function"), node.child_by_field_name("arguments")
                if func is not None and args is not None and args.named_child_count >= 1 and (
                        func.type == "import" or (func.type == "identifier" and self.node_text(func) == "require")):
                    first = args.named_children[0]
                    source = first if first.type == "string" else None
            else:
                source = node.child_by_field_name("source")
            if source is not None and source.type == "string":
                spec = self.node_text(source)[1:-1]
                if spec:
                    found.setdefault((spec, node.start_point.row + 1), None)
        return sorted(found, key=lambda item: (item[1], item[0]))


def parse(text: str, language: Language, path: str = "") -> JsTree:
    """Parse JS/TS text (never raises: tree-sitter recovers from errors, see :meth:`JsTree.syntax_error_line`)."""
    grammar = grammar_for(language, path)
    data = text.encode("utf-8", "surrogatepass")
    return JsTree(text=text, tree=ts.Parser(grammar).parse(data), grammar=grammar, _data=data)


def _walk(node: ts.Node) -> Iterator[ts.Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _name_and_anchor(js: JsTree, node: ts.Node) -> tuple[str, ts.Node]:
    """A function's name and the node that starts its definition (the declaration holding an arrow)."""
    own = node.child_by_field_name("name")
    if own is not None and node.type != "function_expression":
        return js.node_text(own), node
    parent = node.parent
    if parent is not None:
        if parent.type == "variable_declarator":
            name = parent.child_by_field_name("name")
            holder = parent.parent if parent.parent is not None else parent
            return (js.node_text(name) if name is not None else "<anonymous>"), holder
        if parent.type in ("assignment_expression", "augmented_assignment_expression"):
            left = parent.child_by_field_name("left")
            target = left.child_by_field_name("property") if left is not None and left.type == "member_expression" \
                else left
            holder = parent.parent if parent.parent is not None else parent
            return (js.node_text(target) if target is not None else "<anonymous>"), holder
        if parent.type in ("pair", "public_field_definition", "field_definition"):
            key = parent.child_by_field_name("key") or parent.child_by_field_name("name") or \
                parent.child_by_field_name("property")
            return (js.node_text(key).strip("'\"") if key is not None else "<anonymous>"), parent
    if own is not None:
        return js.node_text(own), node
    return "<anonymous>", node


def _params(js: JsTree, node: ts.Node) -> tuple[str, ...]:
    params = node.child_by_field_name("parameters") or node.child_by_field_name("parameter")
    if params is None:
        return ()
    if params.type == "identifier":
        return (js.node_text(params),)
    names = []
    for child in params.named_children:
        target = child
        if child.type in ("required_parameter", "optional_parameter"):
            target = child.child_by_field_name("pattern") or child
        if target.type == "assignment_pattern":
            target = target.child_by_field_name("left") or target
        if target.type == "rest_pattern" and target.named_child_count:
            target = target.named_children[0]
        if target.type == "identifier":
            names.append(js.node_text(target))
    return tuple(names)


def _nesting(body: ts.Node) -> tuple[int, ts.Node | None]:
    """Deepest nesting of control statements in a function body (nested functions are measured apart;
    ``else if`` is a sibling branch, not a level deeper)."""
    best, deepest = 0, None
    stack: list[tuple[ts.Node, int]] = [(body, 0)]
    while stack:
        node, depth = stack.pop()
        for child in node.named_children:
            if child.type in FUNCTION_NODES:
                continue
            level = depth
            if child.type in NESTING_NODES and not (child.type == "if_statement" and node.type == "else_clause"):
                level = depth + 1
                if level > best:
                    best, deepest = level, child
            stack.append((child, level))
    return best, deepest


def _in_export(anchor: ts.Node) -> bool:
    node: ts.Node | None = anchor
    while node is not None and node.type not in ("program", "statement_block", "class_body"):
        if node.type == "export_statement":
            return True
        node = node.parent
    return False


def _top_level(anchor: ts.Node) -> bool:
    parent = anchor.parent
    return parent is None or parent.type in ("program", "export_statement", "expression_statement")


def _exported_names(js: JsTree) -> set[str]:
    """Names exported apart from their definition: ``export { a }``, ``module.exports = { a }`` / ``= a``,
    ``exports.a = ...``."""
    names: set[str] = set()
    for node in js.nodes("export_specifier", "assignment_expression"):
        if node.type == "export_specifier":
            name = node.child_by_field_name("name")
            if name is not None:
                names.add(js.node_text(name))
            continue
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        target = js.node_text(left) if left is not None else ""
        if target in ("module.exports", "exports") and right is not None:
            if right.type == "identifier":
                names.add(js.node_text(right))
            elif right.type == "object":
                for item in right.named_children:
                    key = item.child_by_field_name("key") if item.type == "pair" else item
                    if key is not None:
                        names.add(js.node_text(key))
        elif target.startswith(("module.exports.", "exports.")):
            names.add(target.rsplit(".", 1)[-1])
    return names


def _has_jsdoc(js: JsTree, anchor: ts.Node) -> bool:
    node = anchor
    while node.parent is not None and node.parent.type == "export_statement":
        node = node.parent
    previous = node.prev_sibling
    if previous is None or previous.type != "comment":
        return False
    between = js.text[js.char(previous.end_byte):js.char(node.start_byte)]
    return js.node_text(previous).startswith("/**") and between.count("\n") <= 1 and not between.strip()


def split_args(text: str, generics: bool = False) -> list[str]:
    """Top-level comma-separated parts of an argument list (skeleton text); ``generics`` also nests in <>."""
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
    """Offset of the parenthesis closing the one at ``open_paren`` in skeleton text, or -1."""
    depth = 0
    for i in range(open_paren, len(sk)):
        if sk[i] == "(":
            depth += 1
        elif sk[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1

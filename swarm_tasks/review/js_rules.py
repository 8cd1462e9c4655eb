"""The JavaScript/TypeScript rules as tree-sitter queries, shared by the quick scan (flags) and the JS
analyzers (findings).

A rule is one or more queries over the syntax tree (see jsparse.py), each capturing the reported node as
``@hit``, and an optional check of the captures in Python for what a query cannot say (that a string is
SQL, that a name is a secret's). Comments are not code in a tree, and a string is one node, so a
commented-out ``eval(`` or a ``//`` inside a string can no longer be misread.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import tree_sitter as ts

from swarm_tasks.review.enums import Category, ScanFlag, Severity
from swarm_tasks.review.jsparse import JsTree, query
from swarm_tasks.review.pyast import PLACEHOLDER, SECRET_NAME, SECRET_VALUE

Captures = dict[str, list[ts.Node]]
SQL = re.compile(r"(?:\bselect\s[^;]*?\bfrom\b|\binsert\s+into\b|\bupdate\s+[\w$.`\"]+\s+set\b|\bdelete\s+from\b"
                 r"|\bwhere\s+[\w$.]+\s*=)", re.IGNORECASE)
_AUTH = re.compile(r"(?i)^(jwt|jsonwebtoken|passport|bcrypt|bcryptjs|login|logout|authenticate|session|signin)$")
_CHILD_PROCESS_OBJECT = re.compile(r"^(child_?process|cp|childProcess|proc|shell)$|child_process", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class JsRule:
    """One rule: queries, what a hit means, and how bad it is."""

    rule: str
    flag: ScanFlag
    category: Category
    severity: Severity | None  # None: a scan signal only, never a finding
    cwe: str | None
    title: str
    recommendation: str
    queries: tuple[str, ...]
    accept: Callable[[JsTree, Captures], bool] | None = None


def _text(js: JsTree, captures: Captures, name: str) -> str:
    nodes = captures.get(name)
    return js.node_text(nodes[0]) if nodes else ""


def _dynamic(node: ts.Node) -> bool:
    """Whether an expression's value is built at run time (not a plain literal)."""
    if node.type == "string":
        return False
    if node.type == "template_string":
        return any(c.type == "template_substitution" for c in node.children)
    if node.type == "binary_expression":
        return any(_dynamic(c) for c in node.named_children)
    if node.type == "parenthesized_expression":
        return any(_dynamic(c) for c in node.named_children)
    return node.type not in ("number", "true", "false", "null", "undefined")


def _exec_call(js: JsTree, captures: Captures) -> bool:
    """child_process exec/execSync with a command built at run time (RegExp#exec is not a shell)."""
    if not _dynamic(captures["arg"][0]):
        return False
    if "obj" in captures:
        return bool(_CHILD_PROCESS_OBJECT.search(_text(js, captures, "obj")))
    return "child_process" in js.text


def _sql_built(js: JsTree, captures: Captures) -> bool:
    node = captures["hit"][0]
    if node.type == "template_string":
        literal = " ".join(js.node_text(c) for c in node.children if c.type == "string_fragment")
        return bool(SQL.search(literal))
    strings = [c for c in node.named_children if c.type in ("string", "template_string")]
    return _dynamic(node) and any(SQL.search(js.node_text(s)) for s in strings)


def _secret(js: JsTree, captures: Captures) -> bool:
    name = _text(js, captures, "name").strip("'\"").rsplit(".", 1)[-1]
    value = _text(js, captures, "value")
    if not SECRET_NAME.search(name) or len(value) < 6 or any(c.isspace() for c in value):
        return False
    return bool(SECRET_VALUE.search(value)) or not PLACEHOLDER.match(value)


def _secret_format(js: JsTree, captures: Captures) -> bool:
    return bool(SECRET_VALUE.search(_text(js, captures, "hit")))


def _html_sink(js: JsTree, captures: Captures) -> bool:
    value = captures.get("value")
    return value is None or _dynamic(value[0])


def _not_null(js: JsTree, captures: Captures) -> bool:
    node = captures["hit"][0]
    return not any(c.type in ("null", "undefined") or (c.type == "identifier" and js.node_text(c) == "undefined")
                   for c in node.named_children)


def _empty_block(js: JsTree, captures: Captures) -> bool:
    return not any(c.type != "comment" for c in captures["body"][0].named_children)


_CALLEE = "[(identifier) @f (member_expression property: (property_identifier) @f)]"
RULES: tuple[JsRule, ...] = (
    JsRule("JS-EVAL", ScanFlag.EVAL, Category.SECURITY, Severity.HIGH, "CWE-95",
           "Dynamic code evaluation (eval / new Function / string timer)",
           "Never evaluate strings as code; parse data with JSON.parse or dispatch on a fixed table.",
           ('(call_expression function: (identifier) @f (#eq? @f "eval")) @hit',
            '(call_expression function: (member_expression object: (identifier) @o property: (property_identifier) '
            '@f) (#match? @o "^(window|globalThis|self|global)$") (#eq? @f "eval")) @hit',
            '(new_expression constructor: (identifier) @f (#eq? @f "Function")) @hit',
            '(call_expression function: (identifier) @f (#eq? @f "Function")) @hit',
            '(call_expression function: (identifier) @f (#match? @f "^set(Timeout|Interval)$") '
            'arguments: (arguments . [(string) (template_string) (binary_expression)] @arg)) @hit')),
    JsRule("JS-EXEC-INJECTION", ScanFlag.SHELL, Category.SECURITY, Severity.CRITICAL, "CWE-78",
           "Shell command built from variables (child_process exec with concatenation or template)",
           "Use execFile/spawn with an argument array and no shell; validate inputs against an allow-list.",
           ('(call_expression function: (identifier) @f (#match? @f "^(exec|execSync)$") '
            'arguments: (arguments . (_) @arg)) @hit',
            '(call_expression function: (member_expression object: (_) @obj property: (property_identifier) @f) '
            '(#match? @f "^(exec|execSync)$") arguments: (arguments . (_) @arg)) @hit'), _exec_call),
    JsRule("JS-SPAWN-SHELL", ScanFlag.SHELL, Category.SECURITY, Severity.HIGH, "CWE-78",
           "Process spawned with shell: true", "Drop shell: true and pass arguments as an array.",
           (f'(call_expression function: {_CALLEE} (#match? @f "^(spawn|spawnSync|execFile|execFileSync)$") '
            'arguments: (arguments (object (pair key: (property_identifier) @k value: (true)) '
            '(#eq? @k "shell")))) @hit',)),
    JsRule("JS-CHILD-PROCESS", ScanFlag.SHELL, Category.SECURITY, None, None, "Uses child_process", "",
           ('((string_fragment) @hit (#match? @hit "^(node:)?child_process$"))',)),
    JsRule("JS-XSS-HTML", ScanFlag.XSS, Category.SECURITY, Severity.HIGH, "CWE-79",
           "HTML built from data written to the DOM (innerHTML / outerHTML / insertAdjacentHTML)",
           "Assign textContent, or sanitize with a vetted library (DOMPurify) before inserting HTML.",
           ('(assignment_expression left: (member_expression property: (property_identifier) @p) right: (_) @value '
            '(#match? @p "^(inner|outer)HTML$")) @hit',
            '(augmented_assignment_expression left: (member_expression property: (property_identifier) @p) '
            'right: (_) @value (#match? @p "^(inner|outer)HTML$")) @hit',
            '(call_expression function: (member_expression property: (property_identifier) @p) '
            '(#eq? @p "insertAdjacentHTML") arguments: (arguments (_) (_) @value)) @hit',
            '(jsx_attribute (property_identifier) @p (#eq? @p "dangerouslySetInnerHTML")) @hit'), _html_sink),
    JsRule("JS-XSS-DOCUMENT-WRITE", ScanFlag.XSS, Category.SECURITY, Severity.MEDIUM, "CWE-79",
           "document.write of dynamic content", "Build DOM nodes and set textContent instead.",
           ('(call_expression function: (member_expression object: (identifier) @o property: (property_identifier) '
            '@p) (#eq? @o "document") (#match? @p "^write(ln)?$") arguments: (arguments (_) @value)) @hit',),
           _html_sink),
    JsRule("JS-SQL-INJECTION", ScanFlag.SQL, Category.SECURITY, Severity.HIGH, "CWE-89",
           "SQL built by string concatenation or template interpolation",
           "Use parameterized queries (placeholders and a values array) from the database driver.",
           ('(template_string (template_substitution)) @hit',
            '(binary_expression left: [(string) (template_string)] operator: "+") @hit',
            '(binary_expression operator: "+" right: [(string) (template_string)]) @hit'), _sql_built),
    JsRule("JS-HARDCODED-SECRET", ScanFlag.SECRETS, Category.SECURITY, Severity.HIGH, "CWE-798",
           "Hard-coded secret", "Load secrets from the environment or a secret manager; rotate this one.",
           ('(variable_declarator name: (identifier) @name value: (string (string_fragment) @value)) @hit',
            '(pair key: [(property_identifier) (string)] @name value: (string (string_fragment) @value)) @hit',
            '(assignment_expression left: [(identifier) (member_expression)] @name '
            'right: (string (string_fragment) @value)) @hit',
            '(public_field_definition name: (property_identifier) @name value: (string (string_fragment) @value)) '
            '@hit',
            '(field_definition property: (property_identifier) @name value: (string (string_fragment) @value)) @hit'),
           _secret),
    JsRule("JS-SECRET-FORMAT", ScanFlag.SECRETS, Category.SECURITY, Severity.HIGH, "CWE-798",
           "String literal in the format of a live credential",
           "Remove the credential from source, rotate it, and load it from the environment.",
           ("(string_fragment) @hit",), _secret_format),
    JsRule("JS-UNSAFE-DESERIALIZATION", ScanFlag.DESERIALIZATION, Category.SECURITY, Severity.HIGH, "CWE-502",
           "Unsafe deserialization (node-serialize unserialize / js-yaml load of untrusted data)",
           "Deserialize with JSON.parse or yaml.load with the default safe schema (js-yaml >= 4).",
           (f'(call_expression function: {_CALLEE} (#eq? @f "unserialize")) @hit',
            '(call_expression function: (member_expression object: (identifier) @o property: (property_identifier) '
            '@f) (#match? @o "(?i)yaml") (#eq? @f "load")) @hit')),
    JsRule("JS-WEAK-HASH", ScanFlag.CRYPTO, Category.SECURITY, Severity.MEDIUM, "CWE-327",
           "Weak hash algorithm (MD5/SHA-1)", "Use SHA-256 or better; for passwords use bcrypt/scrypt/argon2.",
           (f'(call_expression function: {_CALLEE} (#eq? @f "createHash") arguments: (arguments . (string '
            '(string_fragment) @alg) (#match? @alg "(?i)^(md5|sha1)$"))) @hit',)),
    JsRule("JS-TLS-DISABLED", ScanFlag.CRYPTO, Category.SECURITY, Severity.MEDIUM, "CWE-295",
           "TLS certificate verification disabled", "Keep rejectUnauthorized true; trust a CA bundle instead.",
           ('(pair key: (property_identifier) @k value: (false) (#eq? @k "rejectUnauthorized")) @hit',
            '((property_identifier) @hit (#eq? @hit "NODE_TLS_REJECT_UNAUTHORIZED"))',
            '((string_fragment) @hit (#eq? @hit "NODE_TLS_REJECT_UNAUTHORIZED"))')),
    JsRule("JS-NETWORK", ScanFlag.NETWORK, Category.SECURITY, None, None, "Network access", "",
           ('(call_expression function: (identifier) @f (#match? @f "^(fetch|axios)$")) @hit',
            '(call_expression function: (member_expression object: (identifier) @o property: (property_identifier)'
            ' @f) (#match? @o "^(https?|axios)$") (#match? @f "^(request|get|post|put|delete)$")) @hit',
            '(new_expression constructor: (identifier) @f (#match? @f "^(XMLHttpRequest|WebSocket)$")) @hit')),
    JsRule("JS-AUTH", ScanFlag.AUTH, Category.SECURITY, None, None, "Authentication code", "",
           (f'([(identifier) (property_identifier) (string_fragment)] @hit (#match? @hit "{_AUTH.pattern}"))',)),
)
QUALITY: tuple[JsRule, ...] = (
    JsRule("JS-EMPTY-CATCH", ScanFlag.COMPLEX, Category.QUALITY, Severity.MEDIUM, None,
           "Empty catch block swallows errors", "Handle, log or rethrow the error.",
           ("(catch_clause body: (statement_block) @body) @hit",), _empty_block),
    JsRule("JS-DEBUGGER", ScanFlag.COMPLEX, Category.QUALITY, Severity.MEDIUM, None,
           "debugger statement left in code", "Remove it.", ("(debugger_statement) @hit",)),
    JsRule("JS-LOOSE-EQUALITY", ScanFlag.COMPLEX, Category.QUALITY, Severity.LOW, None,
           "Loose equality (== / !=) coerces types", "Use === and !==.",
           ('(binary_expression operator: ["==" "!="]) @hit',), _not_null),
    JsRule("JS-VAR", ScanFlag.COMPLEX, Category.QUALITY, Severity.INFO, None,
           "var declaration (function-scoped)", "Use let or const.", ("(variable_declaration) @hit",)),
)


def matches(js: JsTree, rules: tuple[JsRule, ...] = RULES) -> Iterator[tuple[JsRule, ts.Node]]:
    """(rule, reported node) for every hit, each node once per rule, in source order per rule."""
    for rule in rules:
        seen: set[tuple[int, int]] = set()
        hits: list[ts.Node] = []
        for source in rule.queries:
            compiled = query(js.grammar, source)
            if compiled is None:
                continue
            for _pattern, captures in ts.QueryCursor(compiled).matches(js.root):
                node = captures["hit"][0]
                key = (node.start_byte, node.end_byte)
                if key in seen or (rule.accept is not None and not rule.accept(js, captures)):
                    continue
                seen.add(key)
                hits.append(node)
        yield from ((rule, node) for node in sorted(hits, key=lambda n: n.start_byte))

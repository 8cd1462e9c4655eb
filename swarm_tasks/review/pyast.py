"""Python AST helpers shared by the quick scan, the analyzers and the sub-reviewers."""

from __future__ import annotations

import ast
import contextlib
import functools
import re
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

SQL_TEXT = re.compile(
    r"\b(select\s[\s\S]*\bfrom|insert\s+into|update\s+\w+\s+set|delete\s+from|drop\s+table|"
    r"create\s+table|alter\s+table|where\s+\w+\s*(=|like|in)\b)", re.IGNORECASE)
SECRET_NAME = re.compile(
    r"(passw(or)?d|passwd|pwd|secret|token|api_?key|apikey|access_?key|private_?key|credential|auth_?key)",
    re.IGNORECASE)
# Formats that are secrets whatever the variable is called.
SECRET_VALUE = re.compile(
    r"(AKIA[0-9A-Z]{16}|sk_(live|test)_[0-9A-Za-z]{10,}|gh[pousr]_[0-9A-Za-z]{20,}|xox[abprs]-[0-9A-Za-z-]{10,}"
    r"|-----BEGIN( [A-Z]+)? PRIVATE KEY-----|AIza[0-9A-Za-z_\-]{35}|eyJ[0-9A-Za-z_-]{10,}\.eyJ[0-9A-Za-z_-]{10,})")
PLACEHOLDER = re.compile(r"^(|x+|\*+|changeme|change-me|example|dummy|test|none|null|todo|your[_-].*|<.*>|\$\{.*\})$",
                         re.IGNORECASE)

SHELL_CALLS = frozenset({"os.system", "os.popen", "os.popen2", "os.popen3", "os.spawnl", "os.spawnlp",
                         "os.execl", "os.execlp", "os.execv", "os.execvp", "commands.getoutput",
                         "commands.getstatusoutput", "subprocess.getoutput", "subprocess.getstatusoutput",
                         "pty.spawn"})
SUBPROCESS_CALLS = frozenset({"subprocess.run", "subprocess.call", "subprocess.check_call",
                              "subprocess.check_output", "subprocess.Popen", "asyncio.create_subprocess_shell"})
EVAL_CALLS = frozenset({"eval", "exec", "compile", "builtins.eval", "builtins.exec"})
DESERIALIZE_CALLS = frozenset({
    "pickle.load", "pickle.loads", "cPickle.load", "cPickle.loads", "_pickle.loads", "dill.load", "dill.loads",
    "marshal.load", "marshal.loads", "shelve.open", "yaml.load", "yaml.unsafe_load", "yaml.full_load",
    "yaml.load_all", "yaml.unsafe_load_all", "jsonpickle.decode", "pandas.read_pickle", "torch.load",
    "joblib.load",
})
SQL_METHODS = frozenset({"execute", "executemany", "executescript", "raw", "mogrify", "text"})
WEAK_CRYPTO_CALLS = frozenset({"hashlib.md5", "hashlib.sha1", "md5.new", "sha.new",
                               "ssl._create_unverified_context", "random.random", "random.randint"})
NETWORK_MODULES = frozenset({"requests", "urllib", "urllib3", "http", "httpx", "aiohttp", "socket", "ftplib",
                             "smtplib", "telnetlib", "paramiko", "websocket", "websockets"})
CRYPTO_MODULES = frozenset({"hashlib", "hmac", "Crypto", "Cryptodome", "cryptography", "ssl", "jwt", "secrets"})
AUTH_WORDS = re.compile(r"(login|logout|auth|passw|session|jwt|oauth|permission|credential|signin|signup)",
                        re.IGNORECASE)
# Expressions whose value comes from outside the program: the sources a taint trace looks for.
TAINT_SOURCES = re.compile(
    r"^(request|flask\.request|self\.request|req)\.(args|form|values|json|data|files|cookies|headers|get_json"
    r"|GET|POST|body|query_params|path_params)|^(input|raw_input|sys\.argv|os\.environ|os\.getenv)$|"
    r"^(sys\.stdin|socket\.recv|.*\.recv)")
BLOCK_NODES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.TryStar, ast.Match)
FUNC_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)


# One parse at a time in a process: a worker runs its agents as threads, and on CPython 3.11 neither
# ast.parse (its AST-to-object recursion counter is interpreter-wide: a worker raised "SystemError: AST
# constructor recursion depth mismatch" in `bench all`) nor warnings.catch_warnings (it swaps the
# process's filters) is thread-safe. Tools that parse for themselves (bandit, radon) run under the same
# lock (`exclusive_ast`): outside it, one of two concurrent parses failed now and then, and bandit skipped
# that file, so two runs of one review differed. The GIL serialises the parsing anyway.
_PARSING = threading.RLock()

# The deepest AST the analyzers walk. Theirs (bandit, radon, ast.unparse) and some of ours recurse, two to
# four Python frames per level, under the interpreter's limit of 1,000 frames shared with the worker's own
# stack; CPython itself parses about 3,000 levels. Deeper code (a 600-term ``a + b + ...``, ``f()()()...``)
# is named as too deeply nested to analyse instead of failing the analyzer, or its agent, with RecursionError.
MAX_AST_DEPTH = 250


class NestingTooDeep(RecursionError):
    """The parsed code nests deeper than :data:`MAX_AST_DEPTH`."""

    def __init__(self, depth: int, line: int) -> None:
        super().__init__(f"it nests more than {depth} levels deep at line {line}, deeper than the analyzers walk")
        self.depth = depth
        self.line = line
        self.lineno = line


def exclusive_ast() -> contextlib.AbstractContextManager[object]:
    """Hold while a third-party tool parses Python or swaps warning filters (see ``_PARSING``)."""
    return _PARSING


@functools.lru_cache(maxsize=16)
def parse_python(text: str, filename: str = "<review>") -> ast.Module:
    """ast.parse with the reviewed code's own warnings (bad escapes, ...) silenced: they are not ours.
    :class:`NestingTooDeep` for a tree deeper than :data:`MAX_AST_DEPTH`. The last few trees are kept: a
    file's scan and its reviewers parse the same text one after another. Nothing may change a tree it
    gets from here (none of the analyzers does)."""
    with _PARSING, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = ast.parse(text, filename=filename)
    check_depth(tree)
    return tree


def check_depth(tree: ast.AST, limit: int = MAX_AST_DEPTH) -> None:
    """Raise :class:`NestingTooDeep` if ``tree`` nests deeper than ``limit`` (walked without recursion)."""
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise NestingTooDeep(limit, getattr(node, "lineno", 1))
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def parse_failure(exc: BaseException) -> str:
    """Why a file was not analysed, to follow "the file": too deeply nested, or does not parse."""
    return f"is too deeply nested: {exc}" if isinstance(exc, NestingTooDeep) else f"does not parse: {exc}"


def dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain; calls in the chain appear as ``f()``; else ''."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            break
        elif isinstance(node, ast.Call):
            inner = dotted(node.func)
            if not inner:
                return ""
            parts.append(inner + "()")
            break
        else:
            return ""
    return ".".join(reversed(parts))


def call_name(call: ast.Call, aliases: dict[str, str]) -> str:
    """The dotted name of the called function with import aliases expanded (``sp.run`` -> ``subprocess.run``)."""
    name = dotted(call.func)
    head, _, rest = name.partition(".")
    if head in aliases:
        full = aliases[head]
        return f"{full}.{rest}" if rest else full
    return name


def import_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> imported dotted name, for every import in the module."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                    alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def is_constant_str(node: ast.AST | None) -> bool:
    """A plain string literal (no formatting)."""
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def is_literal(node: ast.AST | None) -> bool:
    """A constant, or a container of constants: data fixed in the code."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(is_literal(e) for e in node.elts)
    return False


def formatted_string(node: ast.AST) -> str | None:
    """The literal text of a string built by f-string, ``%``, ``+`` or ``.format``; None otherwise."""
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        texts = [t for t in (_string_text(node.left), _string_text(node.right)) if t is not None]
        if texts and not (is_literal(node.left) and is_literal(node.right)):
            return " ".join(texts)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
            and is_constant_str(node.func.value) and (node.args or node.keywords)):
        return str(node.func.value.value)  # type: ignore[attr-defined]
    return None


def _string_text(node: ast.AST) -> str | None:
    if is_constant_str(node):
        return str(node.value)  # type: ignore[attr-defined]
    return formatted_string(node)


def is_sql_text(text: str) -> bool:
    """True when a string looks like a SQL statement."""
    return bool(SQL_TEXT.search(text))


def looks_secret(name: str, value: str) -> bool:
    """A string literal bound to a secret-like name (and not a placeholder), or a known token format."""
    if SECRET_VALUE.search(value):
        return True
    if not SECRET_NAME.search(name) or PLACEHOLDER.match(value.strip()):
        return False
    return len(value) >= 6 and " " not in value.strip() and not value.startswith(("http://", "https://", "/"))


@dataclass(frozen=True, slots=True)
class Nesting:
    """The deepest block nesting inside one function."""

    depth: int
    line: int


def nesting(func: ast.FunctionDef | ast.AsyncFunctionDef) -> Nesting:
    """Deepest if/for/while/with/try/match nesting in ``func``'s own body (nested defs count separately)."""
    best = Nesting(0, func.lineno)

    def block(child: ast.AST, depth: int) -> None:
        nonlocal best
        if depth + 1 > best.depth:
            best = Nesting(depth + 1, child.lineno)
        if isinstance(child, ast.If):
            visit_all([child.test, *child.body], depth + 1)
            # An elif is an If alone in orelse: the same level as its if, not one deeper.
            if len(child.orelse) == 1 and isinstance(child.orelse[0], ast.If):
                block(child.orelse[0], depth)
            else:
                visit_all(child.orelse, depth + 1)
        else:
            visit(child, depth + 1)

    def visit_all(nodes: list[ast.AST], depth: int) -> None:
        for node in nodes:
            if isinstance(node, BLOCK_NODES):
                block(node, depth)
            elif not isinstance(node, (*FUNC_NODES, ast.ClassDef, ast.Lambda)):
                visit(node, depth)

    def visit(node: ast.AST, depth: int) -> None:
        visit_all(list(ast.iter_child_nodes(node)), depth)

    visit(func, 0)
    return best


def functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Every function and method in the module, nested ones included."""
    for node in ast.walk(tree):
        if isinstance(node, FUNC_NODES):
            yield node


def enclosing_function(tree: ast.AST, line: int) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The innermost function whose body contains ``line``."""
    best: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    for func in functions(tree):
        end = func.end_lineno or func.lineno
        if func.lineno <= line <= end and (best is None or func.lineno >= best.lineno):
            best = func
    return best


def names_in(node: ast.AST) -> set[str]:
    """Every variable name read in an expression."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def param_names(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """Positional then keyword-only parameter names, in order (``self``/``cls`` included)."""
    args = func.args
    return [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]


def has_docstring(node: ast.AST) -> bool:
    """True if a module, class or function starts with a string literal."""
    body = getattr(node, "body", None)
    return bool(body) and isinstance(body[0], ast.Expr) and is_constant_str(body[0].value)

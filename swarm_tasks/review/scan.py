"""The quick scan: a cheap, deterministic look at one file that decides whether it gets reviewers.

Python is read through its AST, JS/TS through its tree-sitter tree (queries in js_rules.py). The result carries a
risk level, flags with the lines that raised them, and the file's imports (for dependency following).
"""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic import Field

from swarm_tasks.errors import ReviewError
from swarm_tasks.review import js_rules, jsparse, pyast
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import RiskLevel, ScanFlag
from swarm_tasks.review.languages import Language
from swarm_tasks.review.records import Record
from swarm_tasks.review.source import SourceFile, read_source

HIGH_FLAGS = frozenset({ScanFlag.SQL, ScanFlag.SHELL, ScanFlag.EVAL, ScanFlag.DESERIALIZATION,
                        ScanFlag.SECRETS, ScanFlag.XSS})
MEDIUM_FLAGS = frozenset({ScanFlag.CRYPTO, ScanFlag.NETWORK, ScanFlag.AUTH, ScanFlag.COMPLEX,
                          ScanFlag.UNPARSABLE})
# Branch points, for a cheap cyclomatic estimate (radon does the real count in the complexity analyzer).
_BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.With, ast.AsyncWith, ast.IfExp,
             ast.BoolOp, ast.comprehension, ast.Assert, ast.match_case)


class ImportRef(Record):
    """One import statement. Python: ``module`` is dotted, ``level`` counts leading dots and ``names``
    are the imported names (``from m import a, b``). JS/TS: ``module`` is the specifier as written."""

    module: str
    names: list[str] = Field(default_factory=list)
    level: int = Field(default=0, ge=0)
    line: int = Field(ge=1)


class Signal(Record):
    """Why a flag was raised: the line and what was seen there."""

    flag: ScanFlag
    line: int = Field(ge=1)
    detail: str


class ScanResult(Record):
    """The quick scan of one file."""

    path: str
    language: Language
    risk: RiskLevel
    flags: list[ScanFlag] = Field(default_factory=list)
    signals: list[Signal] = Field(default_factory=list)
    imports: list[ImportRef] = Field(default_factory=list)
    flagged: bool = False
    parse_error: str | None = None

    def lines_for(self, flag: ScanFlag) -> list[int]:
        """Lines that raised ``flag``."""
        return sorted({s.line for s in self.signals if s.flag is flag})


def risk_for(flags: set[ScanFlag]) -> RiskLevel:
    """Two distinct dangerous-sink flags: critical; one: high; a medium signal: medium; else low."""
    high = len(flags & HIGH_FLAGS)
    if high >= 2:
        return RiskLevel.CRITICAL
    if high == 1:
        return RiskLevel.HIGH
    if flags & MEDIUM_FLAGS:
        return RiskLevel.MEDIUM
    return RiskLevel.LOW


# Flags whose whole finding the analyzers report exactly (ruff's D1xx, the JSDoc rule), aggregated, for no tokens.
ANALYZERS_SUFFICE = frozenset({ScanFlag.UNDOCUMENTED})


def analyzers_suffice(risk: RiskLevel, flags: set[ScanFlag], config: ReviewConfig) -> bool:
    """Whether a flagged file is left to the analyzer reviewers even in a model review: below the risk
    threshold and flagged only as undocumented. Nearly every file of a real repository lacks some docstring,
    so this flag alone used to send most files to four model reviewers (the triage did nothing) to restate
    what ruff reports line by line; a review with ``risk_threshold=low`` sends every file to the models."""
    return risk.rank < config.risk_threshold.rank and bool(flags) and flags <= ANALYZERS_SUFFICE


def is_flagged(risk: RiskLevel, flags: set[ScanFlag], config: ReviewConfig) -> bool:
    """Whether a file gets the four reviewers: at or above the risk threshold, or (by default) any flag."""
    return risk.rank >= config.risk_threshold.rank or (config.flag_on_any_flag and bool(flags))


def quick_scan(repo_root: Path, file: SourceFile, config: ReviewConfig) -> ScanResult:
    """Scan one file. Never raises for bad content: a file that does not parse is flagged ``unparsable``."""
    try:
        text = read_source(repo_root, file)
    except ReviewError as exc:
        return _result(file, [Signal(flag=ScanFlag.UNPARSABLE, line=1, detail=str(exc))], [], config, str(exc))
    return scan_text(file, text, config)


def scan_text(file: SourceFile, text: str, config: ReviewConfig) -> ScanResult:
    """Scan already-read text (the swarm's scanner agents use this with text they fetched)."""
    if file.language is Language.PYTHON:
        signals, imports, error = scan_python(file.path, text, config)
    else:
        signals, imports, error = scan_js(file.path, text, config, file.language)
    return _result(file, signals, imports, config, error)


def _result(file: SourceFile, signals: list[Signal], imports: list[ImportRef], config: ReviewConfig,
            error: str | None) -> ScanResult:
    unique = sorted({(s.line, s.flag, s.detail): s for s in signals}.values(), key=lambda s: (s.line, s.flag))
    flags = {s.flag for s in unique}
    risk = risk_for(flags)
    return ScanResult(path=file.path, language=file.language, risk=risk, flags=sorted(flags), signals=unique,
                      imports=imports, flagged=is_flagged(risk, flags, config), parse_error=error)


def scan_python(path: str, text: str, config: ReviewConfig) -> tuple[list[Signal], list[ImportRef], str | None]:
    """(signals, imports, parse error) for one Python file."""
    try:
        tree = pyast.parse_python(text, path)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        line = getattr(exc, "lineno", None) or 1
        detail = f"the file {pyast.parse_failure(exc)}"
        return [Signal(flag=ScanFlag.UNPARSABLE, line=max(1, line), detail=detail)], [], str(exc)
    signals: list[Signal] = []
    aliases = pyast.import_aliases(tree)
    imports = _imports(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            signals.extend(_call_signals(node, aliases))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            signals.extend(_secret_signals(node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if pyast.SECRET_VALUE.search(node.value):
                signals.append(Signal(flag=ScanFlag.SECRETS, line=node.lineno, detail="token-like string literal"))
        elif isinstance(node, (ast.JoinedStr, ast.BinOp)):
            built = pyast.formatted_string(node)
            if built is not None and pyast.is_sql_text(built):
                signals.append(Signal(flag=ScanFlag.SQL, line=node.lineno, detail="SQL built by string formatting"))
    for ref in imports:
        top = ref.module.split(".")[0]
        if top in pyast.NETWORK_MODULES:
            signals.append(Signal(flag=ScanFlag.NETWORK, line=ref.line, detail=f"imports {ref.module}"))
        elif top in pyast.CRYPTO_MODULES:
            signals.append(Signal(flag=ScanFlag.CRYPTO, line=ref.line, detail=f"imports {ref.module}"))
    signals.extend(_structure_signals(path, tree, config))
    return signals, imports, None


def _imports(tree: ast.Module) -> list[ImportRef]:
    refs: list[ImportRef] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            refs.extend(ImportRef(module=a.name, line=node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            refs.append(ImportRef(module=node.module or "", names=[a.name for a in node.names], level=node.level,
                                  line=node.lineno))
    return sorted(refs, key=lambda r: (r.line, r.module))


def _call_signals(call: ast.Call, aliases: dict[str, str]) -> list[Signal]:
    name = pyast.call_name(call, aliases)
    line = call.lineno
    out: list[Signal] = []
    shell_kw = any(k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value is True
                   for k in call.keywords)
    if name in pyast.SHELL_CALLS or shell_kw:
        out.append(Signal(flag=ScanFlag.SHELL, line=line, detail=f"{name or 'call'} runs a shell"))
    elif name in pyast.SUBPROCESS_CALLS:
        out.append(Signal(flag=ScanFlag.SHELL, line=line, detail=f"{name} starts a process"))
    if name in pyast.EVAL_CALLS:
        out.append(Signal(flag=ScanFlag.EVAL, line=line, detail=f"{name}()"))
    if name in pyast.DESERIALIZE_CALLS and not _safe_yaml(name, call):
        out.append(Signal(flag=ScanFlag.DESERIALIZATION, line=line, detail=f"{name}()"))
    if name in pyast.WEAK_CRYPTO_CALLS:
        out.append(Signal(flag=ScanFlag.CRYPTO, line=line, detail=f"{name}()"))
    if any(k.arg == "verify" and isinstance(k.value, ast.Constant) and k.value.value is False for k in call.keywords):
        out.append(Signal(flag=ScanFlag.CRYPTO, line=line, detail="TLS verification disabled"))
    method = call.func.attr if isinstance(call.func, ast.Attribute) else ""
    if method in pyast.SQL_METHODS and call.args and not pyast.is_constant_str(call.args[0]):
        out.append(Signal(flag=ScanFlag.SQL, line=line, detail=f".{method}() with a non-literal query"))
    if name.split(".")[0] in ("requests", "httpx", "urllib", "aiohttp", "socket"):
        out.append(Signal(flag=ScanFlag.NETWORK, line=line, detail=f"{name}()"))
    return out


def _safe_yaml(name: str, call: ast.Call) -> bool:
    if name != "yaml.load":
        return False
    loaders = [k.value for k in call.keywords if k.arg == "Loader"] + call.args[1:2]
    return any("Safe" in pyast.dotted(v) for v in loaders)


def _secret_signals(node: ast.Assign | ast.AnnAssign) -> list[Signal]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    value = node.value
    if not pyast.is_constant_str(value):
        return []
    text = str(value.value)  # type: ignore[union-attr]
    out = []
    for target in targets:
        name = pyast.dotted(target) if isinstance(target, (ast.Name, ast.Attribute)) else ""
        if name and pyast.looks_secret(name, text):
            out.append(Signal(flag=ScanFlag.SECRETS, line=node.lineno, detail=f"{name} holds a literal secret"))
    return out


def _structure_signals(path: str, tree: ast.Module, config: ReviewConfig) -> list[Signal]:
    out: list[Signal] = []
    if tree.body and not pyast.has_docstring(tree) and not path.endswith("__init__.py"):
        out.append(Signal(flag=ScanFlag.UNDOCUMENTED, line=1, detail="module has no docstring"))
    for node in ast.walk(tree):
        if isinstance(node, (*pyast.FUNC_NODES, ast.ClassDef)):
            public = not node.name.startswith("_")
            if public and not pyast.has_docstring(node):
                out.append(Signal(flag=ScanFlag.UNDOCUMENTED, line=node.lineno, detail=f"{node.name} has no docstring"))
            if pyast.AUTH_WORDS.search(node.name):
                out.append(Signal(flag=ScanFlag.AUTH, line=node.lineno, detail=f"{node.name} looks auth-related"))
        if isinstance(node, pyast.FUNC_NODES):
            depth = pyast.nesting(node)
            branches = 1 + sum(isinstance(n, _BRANCHES) for n in ast.walk(node))
            if depth.depth > config.max_nesting_depth:
                out.append(Signal(flag=ScanFlag.COMPLEX, line=node.lineno,
                                  detail=f"{node.name} nests {depth.depth} blocks deep"))
            elif branches > config.max_cyclomatic_complexity:
                out.append(Signal(flag=ScanFlag.COMPLEX, line=node.lineno,
                                  detail=f"{node.name} has about {branches} branches"))
    if pyast.AUTH_WORDS.search(path.rsplit("/", 1)[-1]):
        out.append(Signal(flag=ScanFlag.AUTH, line=1, detail="file name looks auth-related"))
    return out


def scan_js(path: str, text: str, config: ReviewConfig,
            language: Language = Language.JAVASCRIPT) -> tuple[list[Signal], list[ImportRef], str | None]:
    """(signals, imports, parse error) for one JS/TS file, from its tree-sitter tree (which recovers from
    syntax errors: the error is said, and what did parse is scanned)."""
    js = jsparse.parse(text, language, path)
    signals = [Signal(flag=rule.flag, line=node.start_point.row + 1, detail=rule.title)
               for rule, node in js_rules.matches(js)]
    for func in js.functions:
        length = func.end_line - func.start_line + 1
        if func.max_depth > config.max_nesting_depth or length > config.max_function_lines:
            signals.append(Signal(flag=ScanFlag.COMPLEX, line=func.start_line,
                                  detail=f"{func.name}: {length} lines, brace depth {func.max_depth}"))
        if func.exported and not func.has_jsdoc:
            signals.append(Signal(flag=ScanFlag.UNDOCUMENTED, line=func.start_line,
                                  detail=f"exported {func.name} has no JSDoc"))
    if pyast.AUTH_WORDS.search(path.rsplit("/", 1)[-1]):
        signals.append(Signal(flag=ScanFlag.AUTH, line=1, detail="file name looks auth-related"))
    imports = [ImportRef(module=spec, line=line) for spec, line in js.imports]
    broken = js.syntax_error_line()
    return signals, imports, None if broken is None else f"does not parse from line {broken}"

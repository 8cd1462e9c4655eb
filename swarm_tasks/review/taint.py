"""taint-trace and deserialization-source: follow the data reaching a sink back to where it comes from.

Python: the sink's statement names the variables; assignments earlier in the function widen the set;
a source expression (``request.args``, ``input()``, a web route's parameters, ...) confirms the finding;
function parameters send the trace to every caller in the indexed code, one hop per depth level. JS/TS
does the same over lexed text with regexes. Everything found becomes ``related`` locations and notes.
"""

from __future__ import annotations

import ast
import builtins
import re

from swarm_tasks.review import jsparse, pyast
from swarm_tasks.review.code_index import CodeIndex
from swarm_tasks.review.enums import SubReviewerKind
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.languages import JS_FAMILY, Language
from swarm_tasks.review.subreview_models import FindingUpdate, SubreviewOutcome
from swarm_tasks.review.subreview_rules import SubreviewRequest

# Where serialized bytes arrive from outside, beyond the general sources: sockets, HTTP bodies, caches.
DESERIALIZATION_SOURCES = re.compile(
    r"\.(recv|recvfrom|cookies|get_data|data|body|stream|content)$|^(urllib\.request\.)?urlopen$|"
    r"^requests\.(get|post)|^redis\.|\.hget$")
ROUTE_DECORATOR = re.compile(r"(route|\.get|\.post|\.put|\.delete|\.patch|api_view|websocket)", re.IGNORECASE)
JS_SOURCES = re.compile(r"\breq(?:uest)?\.(?:query|body|params|headers|cookies|url)\b|\blocation\.(?:hash|search|href)"
                        r"|\bdocument\.(?:URL|cookie|referrer)|\bprocess\.argv|\bwindow\.name|\.value\b")
_BUILTINS = frozenset(dir(builtins))
_JS_WORDS = frozenset({"const", "let", "var", "return", "await", "new", "function", "if", "else", "this", "true",
                       "false", "null", "undefined", "typeof", "async", "of", "in"})


def trace(request: SubreviewRequest, finding: Finding, index: CodeIndex) -> SubreviewOutcome:
    """Run a taint-trace or deserialization-source request."""
    update = FindingUpdate(finding, request)
    file = index.files.get(request.file)
    follow_ups: list[SubreviewRequest] = []
    if file is None:
        update.notes.append(f"{request.reviewer}: {request.file} is not in the reviewed code")
    elif file.language is Language.PYTHON:
        follow_ups = _PythonTrace(request, update, index).run()
    elif file.language in JS_FAMILY:
        follow_ups = _js_trace(request, update, index)
    return SubreviewOutcome(request=request, finding=update.apply(), follow_ups=follow_ups,
                            summary="; ".join(update.notes) or f"{request.reviewer}: nothing more found")


def _source_match(request: SubreviewRequest, name: str) -> bool:
    if pyast.TAINT_SOURCES.search(name):
        return True
    return request.reviewer is SubReviewerKind.DESERIALIZATION_SOURCE and bool(DESERIALIZATION_SOURCES.search(name))


class _PythonTrace:
    def __init__(self, request: SubreviewRequest, update: FindingUpdate, index: CodeIndex) -> None:
        self.request = request
        self.update = update
        self.index = index
        self.label = str(request.reviewer)

    def run(self) -> list[SubreviewRequest]:
        request, update = self.request, self.update
        tree = self.index.tree(request.file)
        if tree is None:
            update.notes.append(f"{self.label}: {request.file} does not parse; trace not possible")
            return []
        func = pyast.enclosing_function(tree, request.line)
        scope: ast.AST = func if func is not None else tree
        stmt = _statement_at(scope, request.line)
        names = set(request.names) or (_data_names(stmt) if stmt is not None else set())
        names, sources = self._widen(scope, names, request.line, stmt)
        where = f"{func.name}()" if func is not None else "module level"
        for line, source in sources:
            update.relate(request.file, line, f"untrusted input: {source}")
        if sources:
            update.notes.append(f"{self.label}: untrusted input ({sources[0][1]}) reaches the sink in {where}")
            update.confirm()
            return []
        if func is None:
            if not names:
                update.doubt(0.5)
                update.notes.append(f"{self.label}: only constant data reaches the sink")
            return []
        params = [p for p in pyast.param_names(func) if p not in ("self", "cls")]
        tainted = [p for p in params if p in names]
        if tainted and _is_route(func):
            update.relate(request.file, func.lineno, f"web route parameter(s) {', '.join(tainted)}")
            update.notes.append(f"{self.label}: route parameter {tainted[0]} of {where} reaches the sink")
            update.confirm()
            return []
        if not tainted:
            if not names:
                update.doubt(0.5)
                update.notes.append(f"{self.label}: only constant data reaches the sink in {where}")
            else:
                update.notes.append(f"{self.label}: input of {where} comes from {', '.join(sorted(names))}; "
                                    "origin not found")
            return []
        return self._callers(func, tainted)

    def _widen(self, scope: ast.AST, names: set[str], line: int,
               stmt: ast.stmt | None) -> tuple[set[str], list[tuple[int, str]]]:
        """Names feeding the sink through earlier assignments, and any source expressions among them. A
        follow-up traces only the names it was given, not everything else on its call line."""
        own_line = stmt is not None and not self.request.names
        sources = [(line, s) for s in _sources_in(stmt, self.request)] if own_line and stmt is not None else []
        assigns = [n for n in ast.walk(scope) if isinstance(n, (ast.Assign, ast.AnnAssign, ast.AugAssign))
                   and n.lineno < line]
        changed = True
        while changed:
            changed = False
            for node in assigns:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                hit = any(isinstance(t, ast.Name) and t.id in names for t in targets)
                if not hit or node.value is None:
                    continue
                new = _data_names(node.value) - names
                for source in _sources_in(node.value, self.request):
                    if (node.lineno, source) not in sources:
                        sources.append((node.lineno, source))
                if new:
                    names |= new
                    changed = True
        return names, sorted(sources)

    def _callers(self, func: ast.FunctionDef | ast.AsyncFunctionDef, tainted: list[str]) -> list[SubreviewRequest]:
        update = self.update
        all_params = pyast.param_names(func)
        method = bool(all_params) and all_params[0] in ("self", "cls")
        follow: list[SubreviewRequest] = []
        calls = 0
        constant_only = True
        for path, call in self.index.python_calls(func.name):
            tree = self.index.tree(path)
            if tree is None:
                continue
            calls += 1
            caller = pyast.enclosing_function(tree, call.lineno)
            for param in tainted:
                arg = _argument(call, all_params, param, method)
                if arg is not None and self._argument(path, call, caller, func.name, param, arg, follow):
                    constant_only = False
        if calls == 0:
            update.notes.append(f"{self.label}: no callers of {func.name}() in the reviewed code; "
                                f"parameter(s) {', '.join(tainted)} reach the sink")
        elif constant_only:
            update.doubt(0.6)
            update.notes.append(f"{self.label}: every caller of {func.name}() passes constant data")
        return follow

    def _argument(self, path: str, call: ast.Call, caller: ast.FunctionDef | ast.AsyncFunctionDef | None,
                  callee: str, param: str, arg: ast.AST, follow: list[SubreviewRequest]) -> bool:
        """Judge what one call passes as ``param``; False when it is constant data."""
        update = self.update
        caller_name = f"{caller.name}()" if caller else "module level"
        update.relate(path, call.lineno, f"{caller_name} passes {ast.unparse(arg)[:80]} as {param}")
        sources = _sources_in(arg, self.request)
        if sources:
            update.notes.append(f"{self.label}: {caller_name} in {path}:{call.lineno} passes untrusted input "
                                f"({sources[0]}) to {callee}({param})")
            update.confirm()
            return True
        names = _data_names(arg)
        if not names:
            return False
        route_params = set(pyast.param_names(caller)) & names if caller and _is_route(caller) else set()
        if caller is not None and route_params:  # a web route's parameters are request input: stop here
            update.relate(path, caller.lineno, f"web route parameter(s) {', '.join(sorted(route_params))}")
            update.notes.append(f"{self.label}: route {caller_name} in {path} passes its parameter "
                                f"to {callee}({param})")
            update.confirm()
        else:
            follow.extend(self._follow(path, call.lineno, sorted(names)))
        return True

    def _follow(self, path: str, line: int, names: list[str]) -> list[SubreviewRequest]:
        request = self.request
        if request.depth + 1 > request.max_depth:
            self.update.notes.append(f"{self.label}: trace stopped at depth {request.depth} ({path}:{line})")
            return []
        return [request.model_copy(update={"file": path, "line": line, "names": names, "depth": request.depth + 1,
                                           "parent_agent_id": request.agent_id})]


def _statement_at(scope: ast.AST, line: int) -> ast.stmt | None:
    best: ast.stmt | None = None
    for node in ast.walk(scope):
        if isinstance(node, ast.stmt) and not isinstance(node, (*pyast.FUNC_NODES, ast.ClassDef)):
            end = node.end_lineno or node.lineno
            span = end - node.lineno
            if node.lineno <= line <= end and (best is None or span < (best.end_lineno or 0) - best.lineno):
                best = node
    return best


def _data_names(node: ast.AST) -> set[str]:
    """Variables whose values flow through ``node``: every Name read, minus called functions and receivers."""
    called: set[str] = set()
    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
        base = pyast.dotted(call.func).split(".")[0]
        if base:
            called.add(base)
    stores = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    loads = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    args = set()
    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            args |= pyast.names_in(arg)
    return ((loads - called - stores) | (args & loads)) - _BUILTINS


def _sources_in(node: ast.AST, request: SubreviewRequest) -> list[str]:
    found: list[str] = []
    for sub in ast.walk(node):
        target = sub.func if isinstance(sub, ast.Call) else sub.value if isinstance(sub, ast.Subscript) else sub
        if isinstance(target, (ast.Attribute, ast.Name)):
            name = pyast.dotted(target)
            if name and _source_match(request, name) and name not in found:
                found.append(name)
    # request.args.get and request.args are one source: keep the shortest spelling
    return [n for n in found if not any(n != o and n.startswith(o + ".") for o in found)]


def _is_route(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for deco in func.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if ROUTE_DECORATOR.search(pyast.dotted(target)):
            return True
    return False


def _argument(call: ast.Call, params: list[str], param: str, method: bool) -> ast.AST | None:
    for kw in call.keywords:
        if kw.arg == param:
            return kw.value
    index = params.index(param) - (1 if method and isinstance(call.func, ast.Attribute) else 0)
    if 0 <= index < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[:index + 1]):
        return call.args[index]
    return None


def _identifiers(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_$][\w$]*", text)) - _JS_WORDS


def _js_trace(request: SubreviewRequest, update: FindingUpdate, index: CodeIndex) -> list[SubreviewRequest]:
    js = index.js(request.file)
    label = str(request.reviewer)
    skeleton = js.skeleton.split("\n") if js is not None else []
    if js is None or request.line > len(skeleton):
        update.notes.append(f"{label}: {request.file} could not be read")
        return []
    # The innermost function around the sink, not a callback that starts on the sink's own line.
    funcs = [f for f in js.functions if f.start_line <= request.line <= f.end_line
             and not (f.name == "<anonymous>" and f.start_line == request.line)]
    func = max(funcs, key=lambda f: f.start_line) if funcs else None
    sink = skeleton[request.line - 1]  # string contents blanked: identifiers only
    names = set(request.names) or _identifiers(sink)
    if not request.names and JS_SOURCES.search(sink):
        update.relate(request.file, request.line, "untrusted input on the sink line")
        update.confirm()
        return []
    first = func.start_line if func else 1
    for number in range(request.line - 1, first - 1, -1):  # earlier assignments feed the sink
        text = skeleton[number - 1]
        match = re.match(r"\s*(?:const|let|var)?\s*([\w$]+)\s*=[^=]", text)
        if match is None or match.group(1) not in names:
            continue
        names |= _identifiers(text[match.end():])
        source = JS_SOURCES.search(text)
        if source:
            update.relate(request.file, number, f"untrusted input: {source.group(0)}")
            update.notes.append(f"{label}: untrusted input ({source.group(0)}) reaches the sink")
            update.confirm()
            return []
    tainted = [p for p in (func.params if func else ()) if p in names]
    if func is None or not tainted:
        update.notes.append(f"{label}: origin of the data not found")
        return []
    return _js_callers(request, update, index, func, tainted)


def _js_callers(request: SubreviewRequest, update: FindingUpdate, index: CodeIndex, func: jsparse.JsFunction,
                tainted: list[str]) -> list[SubreviewRequest]:
    label = str(request.reviewer)
    follow: list[SubreviewRequest] = []
    pattern = re.compile(rf"(?<![\w$.])(?:[\w$]+\.)?{re.escape(func.name)}\s*\(")
    calls, constant_only = 0, True
    for path in index.paths(Language.JAVASCRIPT, Language.TYPESCRIPT):
        js = index.js(path)
        if js is None:
            continue
        for match in pattern.finditer(js.skeleton):
            line = js.line_of(match.start())
            close = jsparse.closing(js.skeleton, match.end() - 1)
            if (path == request.file and line == func.start_line) or close < 0:
                continue
            calls += 1
            args = jsparse.split_args(js.skeleton[match.end():close])
            shown = js.code[match.end():close][:60]
            update.relate(path, line, f"calls {func.name}({shown})")
            for param in tainted:
                position = func.params.index(param)
                arg = args[position] if position < len(args) else ""
                source = JS_SOURCES.search(arg)
                if source:
                    constant_only = False
                    update.notes.append(f"{label}: {path}:{line} passes untrusted input ({source.group(0)}) "
                                        f"to {func.name}({param})")
                    update.confirm()
                elif _identifiers(arg):
                    constant_only = False
                    follow.extend(_js_follow(request, update, path, line, sorted(_identifiers(arg))))
    if calls == 0:
        update.notes.append(f"{label}: no callers of {func.name}() found; parameter(s) {', '.join(tainted)} "
                            "reach the sink")
    elif constant_only:
        update.doubt(0.6)
        update.notes.append(f"{label}: every caller of {func.name}() passes constant data")
    return follow


def _js_follow(request: SubreviewRequest, update: FindingUpdate, path: str, line: int,
               names: list[str]) -> list[SubreviewRequest]:
    if request.depth + 1 > request.max_depth:
        update.notes.append(f"{request.reviewer}: trace stopped at depth {request.depth} ({path}:{line})")
        return []
    return [request.model_copy(update={"file": path, "line": line, "names": names, "depth": request.depth + 1,
                                       "parent_agent_id": request.agent_id})]

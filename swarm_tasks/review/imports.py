"""Resolve imports to files: the repository's own modules and installed third-party packages.

Python: absolute imports against the root, ``src/`` and the importer's directory (scripts import their
siblings), relative imports, packages through ``__init__.py``; third-party top-level packages in the
detected site-packages. JS/TS: relative specifiers with extension and ``index`` resolution, bare
specifiers through ``node_modules`` (``exports`` default, then ``main``, then ``index.js``).
Standard-library and Node built-in modules are not followed.

Nothing outside the review's read scope is followed or even probed: a relative import climbing past the
root (``from ........tmp import x``), ``require("/abs/x.js")`` and a module that is a symlink out
(``shadow.py -> /etc/shadow``) are refused, each as a skipped path with its reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic import Field

from coordination import codec
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import FileOrigin, SkipReason
from swarm_tasks.review.inventory import ThirdPartyRoots
from swarm_tasks.review.languages import JS_FAMILY, Language, language_for_name
from swarm_tasks.review.records import Record
from swarm_tasks.review.scan import ImportRef
from swarm_tasks.review.scope import OutsideRoot, scope_for
from swarm_tasks.review.source import SkippedPath, SourceFile

JS_EXTENSIONS = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts")
NODE_BUILTINS = frozenset({
    "assert", "async_hooks", "buffer", "child_process", "cluster", "console", "constants", "crypto", "dgram",
    "diagnostics_channel", "dns", "domain", "events", "fs", "http", "http2", "https", "inspector", "module", "net",
    "os", "path", "perf_hooks", "process", "punycode", "querystring", "readline", "repl", "stream", "string_decoder",
    "sys", "timers", "tls", "trace_events", "tty", "url", "util", "v8", "vm", "wasi", "worker_threads", "zlib",
})
_CONDITIONS = ("default", "require", "node", "import")


class ImportTarget(Record):
    """A file an import statement resolves to."""

    path: str = Field(description="Relative to the root when inside it, else absolute.")
    origin: FileOrigin
    package: str | None = None
    module: str = Field(description="The import as written.")
    line: int = Field(ge=1)
    fill: bool = Field(default=False, description="Not imported itself: one of a package's first modules.")


class UnresolvedImport(Record):
    """An import that names no file we can see (not installed, or dynamic)."""

    importer: str
    module: str
    line: int = Field(ge=1)


class ImportResolver:
    """Resolves the imports of one file at a time; stateless apart from caches."""

    def __init__(self, root: Path, config: ReviewConfig, third_party: ThirdPartyRoots) -> None:
        self.root = root
        self.config = config
        self.site_roots = [Path(p) for p in third_party.python]
        self.node_roots = [Path(p) for p in third_party.node]
        self.scope = scope_for(root, config)
        self._refused: list[SkippedPath] = []

    # -- paths ----------------------------------------------------------------------------------------
    def shown(self, path: Path) -> str:
        """The path as reports show it: POSIX, relative to the root when inside it."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def origin_of(self, path: Path) -> tuple[FileOrigin, str | None]:
        """Third-party (with its package name) when under a site-packages or node_modules root."""
        for site in self.site_roots:
            if path.is_relative_to(site):
                return FileOrigin.THIRD_PARTY, path.relative_to(site).parts[0].removesuffix(".py")
        parts = path.parts
        if "node_modules" in parts:
            i = len(parts) - 1 - parts[::-1].index("node_modules")
            rest = parts[i + 1:]
            if rest:
                return FileOrigin.THIRD_PARTY, "/".join(rest[:2]) if rest[0].startswith("@") else rest[0]
        return FileOrigin.REPOSITORY, None

    def _inside(self, path: Path) -> bool:
        """Whether ``path`` may be read (else the refusal is noted); a path that is not there is 'inside'
        (nothing to read, nothing to say)."""
        try:
            self.scope.resolve(path)
        except OutsideRoot as exc:
            shown = self.shown(path) if exc.symlink else ""  # a path out is not named: it is not ours
            self._refused.append(SkippedPath(path=shown, reason=SkipReason.SYMLINK if exc.symlink else
                                             SkipReason.OUTSIDE, detail=exc.detail))
            return False
        return True

    def _target(self, path: Path, ref: ImportRef, fill: bool = False) -> ImportTarget:
        origin, package = self.origin_of(path)
        return ImportTarget(path=self.shown(path), origin=origin, package=package, module=_written(ref),
                            line=ref.line, fill=fill)

    def resolve(self, importer: SourceFile, imports: list[ImportRef],
                refused: list[SkippedPath] | None = None) -> tuple[list[ImportTarget], list[UnresolvedImport]]:
        """Targets of ``importer``'s imports (deduplicated, in import order) and what did not resolve.
        Imports leading outside the read scope are neither: they are added to ``refused``, with the reason."""
        base = importer.abs_path(self.root).parent
        targets: dict[str, ImportTarget] = {}
        unresolved: list[UnresolvedImport] = []
        for ref in imports:
            self._refused = []
            if importer.language is Language.PYTHON:
                found = self._python(base, ref, importer.origin)
            else:
                found = self._js(base, ref)
            if self._refused:
                for skip in self._refused:
                    if refused is not None and skip not in refused:
                        refused.append(skip if skip.path else skip.model_copy(update={  # named as written
                            "path": _written(ref),
                            "detail": f"imported by {importer.path} line {ref.line}: {skip.detail}"}))
                if not found:
                    continue
            if found is None:
                unresolved.append(UnresolvedImport(importer=importer.path, module=_written(ref), line=ref.line))
                continue
            for target in found:
                if target.path != importer.path:
                    targets.setdefault(target.path, target)
        return list(targets.values()), unresolved

    # -- Python ---------------------------------------------------------------------------------------
    def _python(self, base: Path, ref: ImportRef, origin: FileOrigin) -> list[ImportTarget] | None:
        """None: not found; []: deliberately not followed (standard library)."""
        parts = [p for p in ref.module.split(".") if p]
        if ref.level:
            anchor = base
            for _ in range(ref.level - 1):
                anchor = anchor.parent
            if not self._inside(anchor):  # climbed past the root: not even looked at
                return []
            found = self._module_files(anchor, parts, ref.names)
            return [self._target(p, ref) for p in found] if found else None
        if not parts:
            return None
        if parts[0] in sys.stdlib_module_names:
            return []
        local = [self.root, self.root / "src", base]
        search = [*self.site_roots, *local] if origin is FileOrigin.THIRD_PARTY else [*local, *self.site_roots]
        for anchor in search:
            found = self._module_files(anchor, parts, ref.names)
            if found:
                targets = [self._target(p, ref) for p in found]
                if anchor in self.site_roots:
                    targets.extend(self._package_fill(anchor, parts[0], ref))
                return targets
        return None

    def _module_files(self, anchor: Path, parts: list[str], names: list[str]) -> list[Path]:
        module = anchor.joinpath(*parts) if parts else anchor
        found: list[Path] = []
        for name in names:  # ``from pkg import submodule`` imports a file per name
            if name != "*":
                found.extend(p for p in (module / f"{name}.py", module / name / "__init__.py") if p.is_file())
        for candidate in (module.with_suffix(".py") if parts else None, module / "__init__.py"):
            if candidate is not None and candidate.is_file() and candidate.resolve().is_relative_to(anchor.resolve()):
                found.insert(0, candidate)
                break
        return [p for p in found if self._inside(p)]

    def _package_fill(self, site: Path, top: str, ref: ImportRef) -> list[ImportTarget]:
        """A third-party package's ``__init__`` and first modules, in name order, as review candidates."""
        package = site / top
        if not package.is_dir():
            return []
        init = [package / "__init__.py"] if (package / "__init__.py").is_file() else []
        modules = sorted(p for p in package.glob("*.py") if p.name != "__init__.py" and not p.name.startswith("test"))
        return [self._target(p, ref, fill=True) for p in [*init, *modules][:self.config.max_files_per_package]
                if self._inside(p)]

    # -- JavaScript / TypeScript ----------------------------------------------------------------------
    def _js(self, base: Path, ref: ImportRef) -> list[ImportTarget] | None:
        spec = ref.module
        if spec.startswith(("./", "../", "/")) or spec in (".", ".."):
            start = Path(os.path.normpath(Path(spec) if spec.startswith("/") else base / spec))
            if not self._inside(start):  # '/abs/x.js', '../../..' past the root: not even looked at
                return []
            found = self._js_file(start)
            return [self._target(found, ref)] if found and self._inside(found) else ([] if found else None)
        name = spec.removeprefix("node:")
        if spec.startswith("node:") or name.split("/")[0] in NODE_BUILTINS:
            return []
        segments = name.split("/")
        package, sub = ("/".join(segments[:2]), segments[2:]) if name.startswith("@") else (segments[0], segments[1:])
        for modules in self._node_module_dirs(base):
            pkg_dir = modules / package
            if pkg_dir.is_dir():
                found = self._package_entry(pkg_dir, "/".join(sub))
                return [self._target(found, ref)] if found and self._inside(found) else ([] if found else None)
        return None

    def _node_module_dirs(self, base: Path) -> list[Path]:
        dirs: list[Path] = []
        current = base
        while True:
            if (current / "node_modules").is_dir():
                dirs.append(current / "node_modules")
            if current in (self.root, current.parent) or not current.is_relative_to(self.root):
                break
            current = current.parent
        return dirs + [d for d in self.node_roots if d not in dirs]

    def _package_entry(self, pkg_dir: Path, sub: str) -> Path | None:
        manifest = _package_json(pkg_dir)
        exports = manifest.get("exports")
        key = f"./{sub}" if sub else "."
        target: str | None = None
        if isinstance(exports, str) and not sub:
            target = exports
        elif isinstance(exports, dict):
            entry = exports.get(key) if any(k.startswith(".") for k in exports) else (exports if not sub else None)
            target = _condition(entry)
        if target is None and sub:
            return self._js_file(pkg_dir / sub)
        if target is None:
            main = manifest.get("main")
            target = main if isinstance(main, str) else "index.js"
        return self._js_file(Path(os.path.normpath(pkg_dir / target)))

    def _js_file(self, path: Path) -> Path | None:
        if path.is_file() and language_for_name(path.name) in JS_FAMILY:
            return path
        if path.suffix in (".js", ".mjs", ".cjs", ".jsx"):  # TS sources imported by their compiled name
            for ext in (".ts", ".tsx", ".mts", ".cts"):
                if path.with_suffix(ext).is_file():
                    return path.with_suffix(ext)
        for ext in JS_EXTENSIONS:
            candidate = path.with_name(path.name + ext)
            if candidate.is_file():
                return candidate
        if path.is_dir():
            main = _package_json(path).get("main")
            if isinstance(main, str) and main.strip("./"):
                found = self._js_file(Path(os.path.normpath(path / main)))
                if found:
                    return found
            for ext in JS_EXTENSIONS:
                if (path / f"index{ext}").is_file():
                    return path / f"index{ext}"
        return None


def _written(ref: ImportRef) -> str:
    return "." * ref.level + ref.module


def _package_json(directory: Path) -> dict[str, object]:
    if (directory / "package.json").is_symlink():  # never read through a link the repository planted
        return {}
    try:  # the reviewed repository wrote it: any size, any depth
        data = codec.loads((directory / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _condition(entry: object) -> str | None:
    """The file an ``exports`` entry names: a string, or the first known condition (nested allowed)."""
    for _ in range(32):  # conditions nest a level or two in practice; a package.json may nest them forever
        if isinstance(entry, str):
            return entry
        if not isinstance(entry, dict):
            return None
        entry = next((entry[c] for c in _CONDITIONS if c in entry), None)
    return None

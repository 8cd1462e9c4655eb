"""Follow imports from the flagged files, breadth first, up to the dependency depth: each file once,
third-party packages bounded by ``max_files_per_package`` for each importing file, with the chain of
importers kept."""

from __future__ import annotations

from collections import Counter, deque
from pathlib import Path

from pydantic import Field

from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import FileOrigin, SkipReason
from swarm_tasks.review.imports import ImportResolver, ImportTarget, UnresolvedImport
from swarm_tasks.review.inventory import describe_file
from swarm_tasks.review.records import Record
from swarm_tasks.review.scan import ImportRef, ScanResult, quick_scan
from swarm_tasks.review.source import SkippedPath, SourceFile


class ImportEdge(Record):
    """``importer`` imports ``target`` at ``line``."""

    importer: str
    target: str
    module: str
    line: int = Field(ge=1)


class DependencyFile(Record):
    """A file reviewed because a reviewed file imports it."""

    file: SourceFile
    depth: int = Field(ge=1)
    imported_by: str
    module: str
    line: int = Field(ge=1)
    chain: list[str] = Field(description="From the flagged file that started it down to the direct importer.")


class DependencyGraph(Record):
    """What following imports found."""

    files: list[DependencyFile] = Field(default_factory=list)
    edges: list[ImportEdge] = Field(default_factory=list)
    unresolved: list[UnresolvedImport] = Field(default_factory=list)
    skipped: list[SkippedPath] = Field(default_factory=list)


def follow_imports(root: Path, config: ReviewConfig, resolver: ImportResolver,
                   start: list[tuple[SourceFile, list[ImportRef]]],
                   known: dict[str, SourceFile]) -> tuple[DependencyGraph, list[ScanResult]]:
    """Dependency files of the ``start`` files (each with its imports), and the quick scans of those
    dependency files (made to read their imports). ``known`` are the inventory's files, reused instead of
    being described again; files in ``start`` are never listed as dependencies."""
    graph = DependencyGraph()
    scans: list[ScanResult] = []
    visited = {file.path for file, _ in start}
    refused: dict[str, SkippedPath] = {}
    queue = deque((file, imports, 0, [file.path]) for file, imports in start)
    while queue:
        file, imports, depth, chain = queue.popleft()
        if depth >= config.dependency_depth:
            continue
        outside: list[SkippedPath] = []
        targets, unresolved = resolver.resolve(file, imports, outside)
        graph.skipped.extend(skip for skip in outside if skip not in graph.skipped)
        graph.unresolved.extend(u for u in unresolved if not u.module.startswith("."))
        budget = PackageBudget(config)
        for target in targets:
            graph.edges.append(ImportEdge(importer=file.path, target=target.path, module=target.module,
                                          line=target.line))
            if not budget.admit(target):
                if (skip := budget.refusal(target)) is not None:
                    refused.setdefault(target.path, skip)
                continue
            if target.path in visited:
                continue
            source = _describe(root, config, target, known, graph)
            if source is None:
                continue
            visited.add(target.path)
            graph.files.append(DependencyFile(file=source, depth=depth + 1, imported_by=file.path,
                                              module=target.module, line=target.line, chain=chain))
            scan = quick_scan(root, source, config)
            scans.append(scan)
            queue.append((source, scan.imports, depth + 1, [*chain, source.path]))
    graph.skipped.extend(skip for path, skip in sorted(refused.items()) if path not in visited)
    return graph, scans


class PackageBudget:
    """Which third-party files one importing file may have reviewed: at most ``max_files_per_package``
    of each package, in the order its imports name them (what it imports by name, then the package's
    ``__init__`` and first modules). Counted per importer, not per run: a run-wide count admitted whichever
    files of a package were asked for first, so two reviews of one tree reviewed different files of it."""

    def __init__(self, config: ReviewConfig) -> None:
        self.config = config
        self.taken: Counter[str] = Counter()

    def admit(self, target: ImportTarget) -> bool:
        if target.origin is not FileOrigin.THIRD_PARTY:
            return True
        if not self.config.follow_third_party:
            return False
        package = target.package or target.path
        if self.taken[package] >= self.config.max_files_per_package:
            return False
        self.taken[package] += 1
        return True

    def refusal(self, target: ImportTarget) -> SkippedPath | None:
        """Why ``admit`` refused ``target`` (None: third-party files are not followed at all). Worded the
        same whoever imported it, so a report names it the same way every time."""
        if not self.config.follow_third_party:
            return None
        return SkippedPath(path=target.path, reason=SkipReason.VENDORED,
                           detail=f"package {target.package or target.path}: more than "
                                  f"{self.config.max_files_per_package} of its files imported by one file; "
                                  "the rest were not reviewed")


def _describe(root: Path, config: ReviewConfig, target: ImportTarget, known: dict[str, SourceFile],
              graph: DependencyGraph) -> SourceFile | None:
    source = known.get(target.path)
    if source is None:
        described = describe_file(root, target.path, config, origin=target.origin, package=target.package)
        if not isinstance(described, SourceFile):
            graph.skipped.append(described)
            return None
        source = described
    return source

"""Import resolution (Python and JS/TS, local and third-party) and following them to a depth."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.dependencies import follow_imports
from swarm_tasks.review.enums import FileOrigin, SkipReason
from swarm_tasks.review.imports import ImportResolver
from swarm_tasks.review.inventory import build_inventory
from swarm_tasks.review.scan import quick_scan
from tests.review.helpers import write_tree

SITE = ".venv/lib/python3.11/site-packages"


def repo(tmp_path: Path) -> Path:
    return write_tree(tmp_path, {
        "app.py": "import os\nimport shop.db\nfrom shop import cart\nfrom shop.util import helper\nimport extlib\n"
                  "import missing_pkg\nimport sibling\n",
        "sibling.py": "x = 1\n",
        "shop/__init__.py": "",
        "shop/db.py": "from .util import helper\nfrom . import cart\n",
        "shop/cart.py": "from ..sibling import x\n",
        "shop/util.py": "import extlib.core\n",
        f"{SITE}/extlib/__init__.py": "from extlib.core import run\n",
        f"{SITE}/extlib/core.py": "from . import helpers\n",
        f"{SITE}/extlib/helpers.py": "import extlib.deep\n",
        f"{SITE}/extlib/deep.py": "",
        f"{SITE}/extlib/zzz.py": "",
        "web/main.js": "import a from './lib/a';\nconst b = require('../web/lib/b.js');\nimport c from './comp';\n"
                       "import fs from 'fs';\nimport 'node:path';\nconst t = require('tiny');\n"
                       "import { s } from '@scope/pkg/sub';\nimport x from 'exp';\nimport n from 'nothere';\n",
        "web/lib/a.ts": "", "web/lib/b.js": "", "web/comp/index.tsx": "",
        "node_modules/tiny/package.json": '{"name": "tiny", "main": "lib/main.js"}',
        "node_modules/tiny/lib/main.js": "module.exports = require('./inner');\n",
        "node_modules/tiny/lib/inner.js": "",
        "node_modules/@scope/pkg/package.json": '{"name": "@scope/pkg"}',
        "node_modules/@scope/pkg/sub.js": "",
        "node_modules/exp/package.json": '{"exports": {".": {"import": "./esm.mjs", "default": "./cjs.js"}}}',
        "node_modules/exp/cjs.js": "", "node_modules/exp/esm.mjs": "",
    })


def resolve(root: Path, path: str, config: ReviewConfig | None = None):
    config = config or ReviewConfig()
    inv = build_inventory(root, config)
    file = inv.by_path()[path]
    resolver = ImportResolver(root, config, inv.third_party)
    return resolver.resolve(file, quick_scan(root, file, config).imports)


def test_python_local_relative_packages_and_third_party(tmp_path: Path) -> None:
    root = repo(tmp_path)
    targets, unresolved = resolve(root, "app.py")
    got = {t.path: (t.origin, t.package, t.line, t.fill) for t in targets}
    assert got["shop/db.py"] == (FileOrigin.REPOSITORY, None, 2, False)
    assert got["shop/__init__.py"][2] == 3 and got["shop/cart.py"][2] == 3  # from shop import cart
    assert got["shop/util.py"][2] == 4 and got["sibling.py"][2] == 7
    assert got[f"{SITE}/extlib/__init__.py"] == (FileOrigin.THIRD_PARTY, "extlib", 5, False)
    assert got[f"{SITE}/extlib/core.py"][3] is True  # one of the package's first modules
    assert not any(t.module == "os" for t in targets)  # the standard library is not followed
    assert [u.module for u in unresolved] == ["missing_pkg"]
    rel, _ = resolve(root, "shop/db.py")
    assert {t.path for t in rel} == {"shop/util.py", "shop/__init__.py", "shop/cart.py"}
    up, _ = resolve(root, "shop/cart.py")
    assert [t.path for t in up] == ["sibling.py"]


def test_js_relative_index_and_node_modules(tmp_path: Path) -> None:
    root = repo(tmp_path)
    targets, unresolved = resolve(root, "web/main.js")
    got = {t.module: (t.path, t.origin, t.package) for t in targets}
    assert got["./lib/a"] == ("web/lib/a.ts", FileOrigin.REPOSITORY, None)
    assert got["../web/lib/b.js"][0] == "web/lib/b.js"
    assert got["./comp"][0] == "web/comp/index.tsx"
    assert got["tiny"] == ("node_modules/tiny/lib/main.js", FileOrigin.THIRD_PARTY, "tiny")
    assert got["@scope/pkg/sub"] == ("node_modules/@scope/pkg/sub.js", FileOrigin.THIRD_PARTY, "@scope/pkg")
    assert got["exp"][0] == "node_modules/exp/cjs.js"  # exports "." -> default condition
    assert "fs" not in got and "node:path" not in got
    assert [u.module for u in unresolved] == ["nothere"]


def test_follow_imports_depth_chain_and_package_budget(tmp_path: Path) -> None:
    root = repo(tmp_path)
    config = ReviewConfig(dependency_depth=2, max_files_per_package=2)
    inv = build_inventory(root, config)
    app = inv.by_path()["app.py"]
    resolver = ImportResolver(root, config, inv.third_party)
    graph, scans = follow_imports(root, config, resolver, [(app, quick_scan(root, app, config).imports)],
                                  inv.by_path())
    assert {s.path for s in scans} == {d.file.path for d in graph.files}
    deps = {d.file.path: d for d in graph.files}
    assert deps["shop/db.py"].depth == 1 and deps["shop/db.py"].chain == ["app.py"]
    extlib = sorted(p.removeprefix(f"{SITE}/extlib/") for p in deps if p.startswith(SITE))
    # two files of the package for each file importing it: app.py and shop/util.py get __init__ and core
    # (what they name, then the first modules), core.py the helpers it imports; deep.py, third for both, is not
    assert extlib == ["__init__.py", "core.py", "helpers.py"]
    assert all(deps[f"{SITE}/extlib/{p}"].file.origin is FileOrigin.THIRD_PARTY for p in extlib)
    assert "app.py" not in deps  # the start file is never its own dependency
    assert {(e.importer, e.target) for e in graph.edges} >= {("app.py", "shop/db.py"), ("shop/db.py", "shop/util.py")}
    none = ReviewConfig(dependency_depth=0)
    empty, _ = follow_imports(root, none, resolver, [(app, quick_scan(root, app, none).imports)], inv.by_path())
    assert empty.files == []


def test_which_files_of_a_package_are_followed_does_not_depend_on_which_importer_came_first(
        tmp_path: Path) -> None:
    """Four files name four modules of one package; each may have 2 of its files reviewed. A count per run
    admitted whichever were asked for first (in the swarm: by timing), so the order of the start files
    changed which of the package's files were reviewed."""
    site = f"{SITE}/big"
    root = write_tree(tmp_path, {f"{site}/__init__.py": "", **{f"{site}/m{i}.py": "" for i in range(8)},
                                 **{f"user{i}.py": f"from big import m{7 - i}\n" for i in range(4)}})
    config = ReviewConfig(max_files_per_package=2)
    inv = build_inventory(root, config)
    users = [inv.by_path()[f"user{i}.py"] for i in range(4)]
    followed, skipped = [], []
    for start in (users, users[::-1], users[1::2] + users[::2]):
        graph, _ = follow_imports(root, config, ImportResolver(root, config, inv.third_party),
                                  [(u, quick_scan(root, u, config).imports) for u in start], inv.by_path())
        followed.append(sorted(d.file.path.removeprefix(f"{site}/") for d in graph.files))
        skipped.append(graph.skipped)
    assert followed[0] == ["__init__.py", "m4.py", "m5.py", "m6.py", "m7.py"]  # what each names, and __init__
    assert followed[1] == followed[0] and followed[2] == followed[0]
    (fill,) = skipped[0]  # the package's first module, third for every importer, is named as left out
    assert fill.path == f"{site}/m0.py" and fill.reason is SkipReason.VENDORED
    assert fill.detail == "package big: more than 2 of its files imported by one file; the rest were not reviewed"
    assert skipped[1] == skipped[0] and skipped[2] == skipped[0]


def test_depth_bound_on_a_chain(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"a.py": "import b\n", "b.py": "import c\n", "c.py": "import d\n",
                                 "d.py": "import a\n"})
    for depth, expected in ((1, ["b.py"]), (2, ["b.py", "c.py"]), (5, ["b.py", "c.py", "d.py"])):
        config = ReviewConfig(dependency_depth=depth)
        inv = build_inventory(root, config)
        a = inv.by_path()["a.py"]
        graph, _ = follow_imports(root, config, ImportResolver(root, config, inv.third_party),
                                  [(a, quick_scan(root, a, config).imports)], inv.by_path())
        assert [d.file.path for d in graph.files] == expected  # the cycle back to a.py ends it
        assert [d.chain for d in graph.files] == [["a.py", "b.py", "c.py"][:i + 1] for i in range(len(expected))]


def test_third_party_following_can_be_switched_off(tmp_path: Path) -> None:
    root = repo(tmp_path)
    config = ReviewConfig(follow_third_party=False)
    inv = build_inventory(root, config)
    app = inv.by_path()["app.py"]
    graph, _ = follow_imports(root, config, ImportResolver(root, config, inv.third_party),
                              [(app, quick_scan(root, app, config).imports)], inv.by_path())
    assert all(d.file.origin is FileOrigin.REPOSITORY for d in graph.files)


def test_external_site_packages_root(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "repo", {"main.py": "import outer\n"})
    site = write_tree(tmp_path / "site", {"outer/__init__.py": "import pickle\npickle.loads(b'')\n"})
    config = ReviewConfig(third_party_roots=(site,))
    targets, _ = resolve(root, "main.py", config)
    assert targets[0].path == str(site / "outer" / "__init__.py") and targets[0].package == "outer"


def test_a_package_json_nested_without_end_resolves_to_nothing(tmp_path: Path) -> None:
    deep_exports = '{"exports": {".": ' + '{"import": ' * 40 + '"./x.js"' + "}" * 40 + "}}"
    root = write_tree(tmp_path, {"main.js": "import a from 'deep';\nimport b from 'huge';\n",
                                 "node_modules/deep/package.json": deep_exports, "node_modules/deep/x.js": "",
                                 "node_modules/huge/package.json": "[" * 100_000 + "]" * 100_000,
                                 "node_modules/huge/index.js": ""})
    targets, unresolved = resolve(root, "main.js")
    assert {t.module: t.path for t in targets} == {"huge": "node_modules/huge/index.js"}  # main defaults to index
    assert [u.module for u in unresolved] == ["deep"]

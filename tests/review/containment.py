"""A repository that tries to make a review read files outside it: symlinks out, relative imports and
``require`` climbing past the root, absolute paths. Shared by the containment tests."""

from __future__ import annotations

import os
from pathlib import Path

from tests.review.helpers import write_tree

OUTSIDE_PY = "OUTSIDE_SECRET = eval(input())  # outside-marker-py-7f3\n"
OUTSIDE_JS = "module.exports = eval(process.argv[2]); // outside-marker-js-7f3\n"
HOST_FILES = [Path("/etc/passwd"), Path("/etc/shadow")]


def hostile_repo(tmp_path: Path) -> Path:
    """``tmp_path/repo``, whose imports lead to ``tmp_path/outside`` and to /etc through symlinks."""
    outside = write_tree(tmp_path / "outside", {"x.py": OUTSIDE_PY, "x.js": OUTSIDE_JS, "__init__.py": ""})
    repo = write_tree(tmp_path / "repo", {
        "pkg/__init__.py": "",
        "pkg/app.py": ('"""App."""\nimport os\nfrom . import shadow\nfrom . import passwd\nfrom . import near\n'
                       "from ...outside import x\nfrom ...outside.x import OUTSIDE_SECRET\n\n\n"
                       'def run(cmd):\n    """Run."""\n    os.system(cmd)\n'),
        "web/index.js": (f'const a = require("{outside}/x.js");\nconst b = require("../../..");\n'
                         'const c = require("../../outside/x");\neval(process.argv[1]);\n'),
    })
    os.symlink("/etc/shadow", repo / "pkg" / "shadow.py")
    os.symlink("/etc/passwd", repo / "pkg" / "passwd.py")
    os.symlink(outside / "x.py", repo / "pkg" / "near.py")
    return repo


def outside_lines(tmp_path: Path) -> list[str]:
    """Every line of every file outside the repository the hostile repository points at (that this
    process can read), long enough to be recognised."""
    lines = [OUTSIDE_PY.strip(), OUTSIDE_JS.strip(), "outside-marker"]
    for host in HOST_FILES:
        try:
            lines += host.read_text(errors="replace").splitlines()
        except OSError:
            continue
    return [line.strip() for line in lines if len(line.strip()) >= 8]


def assert_quotes_nothing_outside(text: str, tmp_path: Path, where: str) -> None:
    leaked = [line for line in outside_lines(tmp_path) if line in text]
    assert not leaked, f"{where} quotes files outside the repository: {leaked[:3]}"

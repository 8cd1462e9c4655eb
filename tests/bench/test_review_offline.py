"""bench review's offline rows: the swarm's deterministic review and the analyzers run directly, same tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.review_offline import offline_rows


@pytest.mark.slow
def test_offline_rows_measure_both_sides_on_the_same_tree(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text('"""App."""\nimport os\n\n\ndef run(cmd):\n    """Run."""\n'
                                     '    return os.system("x " + cmd)\n')
    (tmp_path / "ui.js").write_text("export function show(html) { document.body.innerHTML = html; }\n")
    rows, details = offline_rows({"tiny": tmp_path}, workers=1)
    review, start_up = rows
    # without models: the inventory and a group per file (two files: fewer than the four groups at least)
    assert details["tiny"]["status"] == "completed" and details["tiny"]["agents"] == 3
    assert review.ours and review.baseline and review.ratio == review.ours / review.baseline
    assert review.goal == "<= 2x" and start_up.goal == "< 3 s" and start_up.ours and start_up.ours > 0

"""docs/workflows.md describes every shipped workflow: one row in the workflow tables (what it
does) and one in the result-card table (what its thumbnail shows), and no row for a workflow that
is not shipped."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(path.stem for path in (REPO_ROOT / "workflows").glob("*.json"))
DOC = (REPO_ROOT / "docs" / "workflows.md").read_text(encoding="utf-8")


def first_cells(heading: str) -> list[str]:
    """The first cell of every table row after the table header ``| heading | ...``."""
    cells, in_table = [], False
    for line in DOC.splitlines():
        if line.startswith(f"| {heading} |"):
            in_table = True
        elif in_table and line.startswith("|") and not line.startswith("| ---"):
            cells.append(line.split("|")[1].strip())
        elif not line.startswith("|"):
            in_table = False
    return cells


def test_every_shipped_workflow_has_one_row_saying_what_it_does():
    rows = first_cells("file")
    named = sorted(cell.strip("`").removesuffix(".json") for cell in rows)
    assert named == SHIPPED, "one `| `<name>.json` | what it does |` row per workflows/*.json"
    for line in DOC.splitlines():
        if line.startswith("| `") and line.split("|")[1].strip().strip("`").removesuffix(".json") in SHIPPED:
            assert len(line.split("|")[2].strip()) > 40, f"say what it does: {line[:80]}"
    count = re.search(r"^(\w+) ready-made workflows ship", DOC, re.MULTILINE).group(1).lower()
    words = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen".split()
    assert words.index(count) == len(SHIPPED), "the count at the top of docs/workflows.md"


def test_every_shipped_workflow_has_its_result_card_described():
    cards = [name.strip("` ") for cell in first_cells("workflow") for name in cell.split(",")]
    assert sorted(cards) == SHIPPED, "one row per workflow in the result-card table"

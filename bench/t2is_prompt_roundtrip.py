"""Check that grid prompts round-trip on every row of a T2IS jsonl file.

For each row: parse the prompt, check the layout against the row's ``layout`` field and
the judge theme against the text before the first tag, rebuild the prompt from the
parsed parts and compare it with the original, then parse the rebuilt prompt again.

Usage:
    python bench/t2is_prompt_roundtrip.py ../shared/data/t2is/all_layouts.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from paco_core.errors import InputError
from paco_core.prompts import build_grid_prompt, parse_grid_prompt


def check_row(row: dict) -> str:
    """``"exact"``, ``"normalised"`` (the rebuilt prompt differs only in punctuation the
    builder adds and is a fixed point), or a failure description."""
    prompt = row["prompt"]
    try:
        parsed = parse_grid_prompt(prompt)
    except InputError as error:
        return f"parse failed: {error}"
    if str(parsed.layout) != row["layout"]:
        return f"layout {parsed.layout} != row layout {row['layout']}"
    first_tag = prompt.index(parsed.layout.panel_tags[0])
    if parsed.judge_theme != prompt[:first_tag].strip():
        return "judge theme is not the text before the first tag"
    if not parsed.shared_description:
        return "theme and shared description not separated"
    rebuilt = build_grid_prompt(parsed.theme, parsed.shared_description, parsed.panel_prompts, parsed.layout)
    if rebuilt == prompt:
        return "exact"
    again = parse_grid_prompt(rebuilt)
    same_parts = (again.shared_description, again.panel_prompts) == (
        parsed.shared_description,
        parsed.panel_prompts,
    )
    fixed_point = build_grid_prompt(again.theme, again.shared_description, again.panel_prompts, again.layout)
    if same_parts and fixed_point == rebuilt:
        return "normalised"
    return "rebuilt prompt does not parse back to the same parts"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jsonl", help="T2IS rows, one JSON object per line")
    args = parser.parse_args(argv)
    outcomes: Counter[str] = Counter()
    with open(args.jsonl, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            outcome = check_row(row)
            outcomes[outcome] += 1
            if outcome not in ("exact", "normalised"):
                print(f"row {row['idx']}: {outcome}")
    total = sum(outcomes.values())
    print(
        f"{total} rows: {outcomes['exact']} exact, {outcomes['normalised']} normalised, "
        f"{total - outcomes['exact'] - outcomes['normalised']} failed"
    )
    return 0 if outcomes["exact"] + outcomes["normalised"] == total else 1


if __name__ == "__main__":
    sys.exit(main())

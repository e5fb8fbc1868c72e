"""`paco prompt-set`: training prompt rows for a character from a short description.

Writes ``<name>.train.jsonl``, ``<name>.eval.jsonl`` (held-out scenes) and
``<name>.report.json`` (counts, held-out scenes, near-duplicate rows) for
``data.train_file`` / ``data.eval_file`` (:mod:`paco_core.jobs.prompt_sets`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

LISTS = {
    "scene": "scenes",
    "pose": "poses",
    "expression": "expressions",
    "camera-angle": "camera_angles",
}


def register(subparsers) -> None:
    from paco_core.jobs import prompt_sets

    parser = subparsers.add_parser(
        "prompt-set",
        help="build training prompt rows for a character (scenes x poses x expressions x camera angles)",
        description="Build set rows for `paco train` from a subject and four editable lists; the held-out rows "
        "take whole scenes, so no eval row shares a scene with training. Repeat a list option to replace "
        "its default list.",
    )
    parser.add_argument(
        "--subject", required=True, help="the character, e.g. 'a red-haired girl with a green scarf'"
    )
    parser.add_argument("--style", default="", help="what every panel shares besides the subject (optional)")
    for option, field in LISTS.items():
        default = getattr(prompt_sets, f"DEFAULT_{field.upper()}")
        parser.add_argument(
            f"--{option}",
            action="append",
            dest=field,
            metavar="TEXT",
            help=f"one entry (repeat); default: {'; '.join(default)}",
        )
    parser.add_argument("--layout", default="2x2", help="panels per set, e.g. 2x2, 1x3 (default 2x2)")
    parser.add_argument("--rows-per-scene", type=int, default=4, help="sets per scene (default 4)")
    parser.add_argument(
        "--held-out-scenes", type=int, default=1, help="scenes held out for evaluation (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the panel order and the held-out scenes")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--name", default="prompt-set", help="file name prefix (default prompt-set)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from paco_core.jobs.prompt_sets import PromptSetSpec, build_prompt_set, write_prompt_set

    lists = {field: tuple(getattr(args, field)) for field in LISTS.values() if getattr(args, field)}
    spec = PromptSetSpec(
        args.subject,
        style=args.style,
        layout=args.layout,
        rows_per_scene=args.rows_per_scene,
        held_out_scenes=args.held_out_scenes,
        seed=args.seed,
        **lists,
    )
    prompt_set = build_prompt_set(spec)
    files = write_prompt_set(prompt_set, args.out, args.name)
    print(f"{len(prompt_set.train)} training rows: {files.train_file}")
    if files.eval_file is not None:
        print(
            f"{len(prompt_set.eval)} held-out rows ({'; '.join(prompt_set.held_out_scenes)}): {files.eval_file}"
        )
    print(
        f"{prompt_set.num_duplicates_removed} duplicate rows removed, {len(prompt_set.near_duplicates)} near-duplicate "
        f"pairs reported: {files.report_file}"
    )
    return 0

"""`paco guarded-chain`: an edit chain judged against its origin at every step, retried and
re-anchored when it drifts.

A command of its own rather than a flag on `paco edit`: it needs a judge (its own
--judge-* options, apart from the pipeline's --lora/--dtype/--device) and writes a report
of every try; `paco edit` stays a plain edit with no judge.

Example:
    paco guarded-chain --model models/FLUX.1-Kontext-dev --judge models/PaCo-Reward-7B \\
        --image photo.png --instruction "make it winter" --instruction "make it night" \\
        --threshold 0.6 --tries 3 --out chain
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from paco_core.commands.generate import cli_hooks, load_with_loras, save_png
from paco_core.commands.model_arguments import add_model_arguments, add_precision_arguments
from paco_core.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "guarded-chain",
        help="an edit chain that does not drift: each step judged against the origin, retried, re-anchored",
        description="Apply instructions one after another (Kontext / Qwen-Image-Edit). Each step is judged "
        "against the origin (under the instructions so far) and the previous image; a step below --threshold "
        "is retried with other seeds (up to --tries), and when it still drifts, redone from the origin with the "
        "instructions so far. Writes edit_1.png ..., step_scores.png and result.json into --out and prints "
        "the per-step report.",
    )
    add_model_arguments(parser)
    judge = parser.add_argument_group("judge")
    source = judge.add_mutually_exclusive_group(required=True)
    source.add_argument("--judge", metavar="DIR", help="judge folder or hub id (local judge)")
    source.add_argument("--judge-url", metavar="URL", help="OpenAI-compatible judge server URL")
    judge.add_argument("--judge-lora", metavar="DIR", help="peft adapter folder for a base judge")
    add_precision_arguments(judge, prefix="judge-", device_default=None, what="local judge ")
    parser.add_argument("--image", required=True, type=Path, help="the origin image")
    parser.add_argument("--instruction", action="append", required=True, help="one step; repeat in order")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="lowest guard score kept without retrying, 0..1 (default 0.5)",
    )
    parser.add_argument("--tries", type=int, default=3, help="most seeds per step (default 3)")
    parser.add_argument(
        "--no-reanchor", action="store_true", help="never redo a drifting step from the origin"
    )
    parser.add_argument("--steps", type=int, default=28, help="denoising steps per edit (default 28)")
    parser.add_argument("--guidance", type=float, default=None, help="Kontext guidance / Qwen true-CFG")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first step's first try (default 0)")
    parser.add_argument("--max-area", type=int, default=None, help="pixel area to work at (default: input's)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of the report")
    parser.set_defaults(func=run_guarded_chain)


def run_guarded_chain(args: argparse.Namespace) -> int:
    from paco_core.consistency.drift import GuardOptions, guarded_edit_chain
    from paco_core.consistency.pictures import render_chain_scores
    from paco_core.generate import EditOptions
    from paco_core.images import open_image_file
    from paco_core.io import atomic_write_json, check_output_folder
    from paco_core.reward import is_server_url, open_judge

    # 1. every check before a model loads
    origin = open_image_file(args.image, what="--image")
    guard = GuardOptions(threshold=args.threshold, tries=args.tries, reanchor=not args.no_reanchor)
    options = EditOptions(steps=args.steps, guidance=args.guidance, seed=args.seed, max_area=args.max_area)
    if args.judge_url and not is_server_url(args.judge_url):
        raise InputError(f"--judge-url should start with http:// or https://, got {args.judge_url!r}.")
    check_output_folder(args.out)
    # 2. models, then the chain
    view = load_with_loras(args)
    judge = open_judge(
        args.judge_url or args.judge, lora=args.judge_lora, dtype=args.judge_dtype, device=args.judge_device
    )
    chain = guarded_edit_chain(view, judge, origin, args.instruction, options, guard, hooks=cli_hooks())
    # 3. outputs
    for number, image in enumerate(chain.images, start=1):
        save_png(image, args.out / f"edit_{number}.png")
    save_png(render_chain_scores(chain), args.out / "step_scores.png")
    atomic_write_json(args.out / "result.json", chain.to_json())
    print(json.dumps(chain.to_json()) if args.json else chain.report())
    return 0

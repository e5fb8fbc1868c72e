"""`paco score`, `paco score-edit` and `paco serve-judge`: the PaCo-Reward judge from the shell.

Examples:
    paco score --judge models/PaCo-Reward-7B --theme "a fox in four seasons" --layout 2x2 grid.png --json
    paco score --url http://127.0.0.1:8000 panel1.png panel2.png panel3.png --json
    paco score-edit --judge models/PaCo-Reward-7B --instruction "make it night" before.png after.png --json
    paco serve-judge --judge models/PaCo-Reward-7B --port 8000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from paco_core.commands.model_arguments import add_judge_arguments, add_precision_arguments, judge_from_args
from paco_core.errors import InputError
from paco_core.prompts import DEFAULT_JUDGE_THEME_SOURCE, JUDGE_THEME_SOURCES


def register(subparsers) -> None:
    score = subparsers.add_parser(
        "score",
        help="score the consistency of a set of images with the PaCo-Reward judge",
        description="Score how consistent a set of images is: every pair is asked to the judge; the set score "
        "is the mean pair score. Give two or more images, or one grid image with --layout.",
    )
    add_judge_arguments(score)
    score.add_argument(
        "images", nargs="+", type=Path, metavar="IMG", help="the set's images (or one grid image)"
    )
    score.add_argument(
        "--theme", default=None, help="the set's theme prompt (default: the theme-less prompt)"
    )
    score.add_argument(
        "--prompt",
        default=None,
        metavar="GRID_PROMPT",
        help="the grid prompt the set was generated from: the judge's theme is taken from it (--judge-theme)",
    )
    score.add_argument(
        "--judge-theme",
        default=DEFAULT_JUDGE_THEME_SOURCE,
        choices=JUDGE_THEME_SOURCES,
        help="with --prompt: preamble = the prompt's text before the first panel tag (as the released "
        "PaCo-GRPO code; default), theme = --theme (or the theme part of the prompt)",
    )
    score.add_argument(
        "--layout", default=None, metavar="RxC", help="split the single IMG into a RxC grid of panels"
    )
    score.add_argument("--both-orders", action="store_true", help="ask each pair in both orders and average")
    score.add_argument(
        "--json", action="store_true", help='print {"score", "pairs": [[i, j, p]], "per_image"}'
    )
    score.set_defaults(func=run_score)

    edit = subparsers.add_parser(
        "score-edit",
        help="score an edit (consistency, instruction following, overall) with the PaCo-Reward judge",
        description="Score one edit: consistency with the original outside the asked change, instruction "
        "following, and overall = sqrt(consistency x following).",
    )
    add_judge_arguments(edit)
    edit.add_argument("original", type=Path, metavar="ORIGINAL", help="the image before the edit")
    edit.add_argument("edited", type=Path, metavar="EDITED", help="the image after the edit")
    edit.add_argument("--instruction", required=True, help="the edit instruction")
    edit.add_argument("--json", action="store_true", help='print {"consistency", "following", "overall"}')
    edit.set_defaults(func=run_score_edit)

    serve = subparsers.add_parser(
        "serve-judge",
        help="serve a local judge over an OpenAI-compatible chat-completions API (no vLLM needed)",
        description="Serve a local judge at http://HOST:PORT/v1/chat/completions with logprobs, for "
        "`paco score --url`, the Judge Loader node or training runs. Binds 127.0.0.1 by default.",
    )
    serve.add_argument(
        "--judge",
        required=True,
        metavar="DIR",
        help="judge folder or hub id (downloaded once into the hub cache)",
    )
    serve.add_argument("--lora", default=None, metavar="DIR", help="peft adapter folder for a base judge")
    add_precision_arguments(serve, device_default=None)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--model-name", default="paco-judge", help="the model name clients use")
    serve.add_argument("--max-logprobs", type=int, default=20, help="largest top_logprobs accepted")
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than loopback (the judge becomes reachable from other machines)",
    )
    serve.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' on every request (default: $PACO_JUDGE_API_KEY, else none)",
    )
    limits = serve.add_argument_group("limits per request")
    limits.add_argument(
        "--max-tokens", type=int, default=512, help="largest max_tokens accepted (default 512)"
    )
    limits.add_argument(
        "--max-body-mb", type=float, default=32.0, help="largest request body in MiB (default 32)"
    )
    limits.add_argument(
        "--max-in-flight-mb",
        type=float,
        default=None,
        help="request bodies held at once in MiB; more wait, then get 503 (default 4 x --max-body-mb)",
    )
    limits.add_argument(
        "--max-image-pixels",
        type=int,
        default=4096 * 4096,
        help="most pixels of one image, checked before decoding (default 16777216 = 4096x4096)",
    )
    limits.add_argument(
        "--generation-seconds",
        type=float,
        default=60.0,
        help="longest a generated answer may run before it stops (default 60)",
    )
    limits.add_argument(
        "--read-timeout", type=float, default=10.0, help="seconds to wait for a request's bytes (default 10)"
    )
    limits.add_argument(
        "--busy-wait",
        type=float,
        default=10.0,
        help="seconds a request waits for the busy judge before a 503 with Retry-After (default 10)",
    )
    serve.set_defaults(func=run_serve_judge)


def read_image(path: Path):
    """An RGB PIL image from a file, or InputError naming the file."""
    from paco_core.images import open_image_file

    return open_image_file(path, what="image")


def set_images(paths: list[Path], layout: str | None) -> list:
    """The set's panels: the images as given, or the panels of one grid with ``layout``."""
    if layout is None:
        return [read_image(path) for path in paths]
    if len(paths) != 1:
        raise InputError(f"--layout splits one grid image into panels; got {len(paths)} images.")
    from paco_core.images import split_grid

    return split_grid(read_image(paths[0]), layout)


def progress_printer(label: str):
    """Hooks that print ``label done/total`` to stderr."""
    from paco_core.callbacks import Hooks

    def progress(done: int, total: int) -> None:
        print(f"\r{label} {done}/{total}", end="\n" if done >= total else "", file=sys.stderr, flush=True)

    return Hooks(progress=progress)


def theme_of(args: argparse.Namespace) -> str | None:
    """The theme the judge sees: from --prompt by ``judge_theme`` when given, else --theme."""
    from paco_core.prompts import judge_theme

    if args.prompt is None:
        return args.theme
    return judge_theme(args.prompt, source=args.judge_theme, theme=args.theme)


def run_score(args: argparse.Namespace) -> int:
    from paco_core.reward.report import format_set_report
    from paco_core.reward.scoring import check_set, score_set

    images = check_set(set_images(args.images, args.layout))
    judge = judge_from_args(args)
    result = score_set(
        judge, images, theme_of(args), both_orders=args.both_orders, hooks=progress_printer("pairs")
    )
    print(json.dumps(result.to_json()) if args.json else format_set_report(result))
    return 0


def run_score_edit(args: argparse.Namespace) -> int:
    from paco_core.reward.scoring import score_edit

    original, edited = read_image(args.original), read_image(args.edited)
    judge = judge_from_args(args)
    result = score_edit(judge, original, edited, args.instruction)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(
            f"consistency {result.consistency:.3f}  following {result.following:.3f}  overall {result.overall:.3f}"
        )
    return 0


def run_serve_judge(args: argparse.Namespace) -> int:
    import os

    from paco_core.reward.judge_server import (
        API_KEY_ENV,
        JudgeHTTPServer,
        ServerLimits,
        check_bind_address,
        return_freed_memory_promptly,
    )

    if not 0 < args.max_body_mb <= 1024:
        raise InputError(f"--max-body-mb should be above 0 and at most 1024, got {args.max_body_mb:g}.")
    if args.max_in_flight_mb is not None and not 0 < args.max_in_flight_mb <= 65536:
        raise InputError(
            f"--max-in-flight-mb should be above 0 and at most 65536, got {args.max_in_flight_mb:g}."
        )
    limits = ServerLimits(
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_bytes_in_flight=None
        if args.max_in_flight_mb is None
        else int(args.max_in_flight_mb * 1024 * 1024),
        max_image_pixels=args.max_image_pixels,
        max_tokens=args.max_tokens,
        generation_seconds=args.generation_seconds,
        read_timeout=args.read_timeout,
        busy_wait=args.busy_wait,
    )
    if args.max_logprobs < 0:
        raise InputError(f"--max-logprobs should be a whole number >= 0, got {args.max_logprobs}.")
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    check_bind_address(args.host, args.port, allow_remote=args.allow_remote)  # before the slow load
    if args.allow_remote:
        print(
            f"warning: serving on {args.host}, reachable from other machines"
            + ("" if api_key else f" by anyone (no API key: set --api-key or ${API_KEY_ENV})"),
            file=sys.stderr,
            flush=True,
        )

    from paco_core.reward import is_server_url, open_judge

    if is_server_url(args.judge):
        raise InputError(
            f"serve-judge serves a local judge; {args.judge} is already a server. Give a judge folder or hub id."
        )
    judge = open_judge(args.judge, lora=args.lora, dtype=args.dtype, device=args.device)
    return_freed_memory_promptly()  # memory follows the limits, not the requests seen
    server = JudgeHTTPServer(
        judge,
        host=args.host,
        port=args.port,
        model_name=args.model_name,
        max_logprobs=args.max_logprobs,
        limits=limits,
        api_key=api_key,
        allow_remote=args.allow_remote,
    )
    print(f"serving {args.judge} as {args.model_name!r} at {server.url}/v1/chat/completions", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0

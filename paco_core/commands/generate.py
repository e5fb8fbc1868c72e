"""`paco generate` (consistent image sets) and `paco edit` (edits and edit chains)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paco_core.commands.model_arguments import add_model_arguments, open_from_args
from paco_core.errors import InputError


def register(subparsers) -> None:
    register_generate(subparsers)
    register_edit(subparsers)


def register_generate(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate consistent image sets (grid prompt -> grid -> panels)",
        description="Generate a consistent set: the panel prompts go into one grid prompt, FLUX draws one "
        "grid of layout x panel size, the grid is cut into panels. Writes grid.png, panel_1.png, ... and "
        "settings.json into --out (with --num-sets K > 1: into --out/set_1 ... set_K).",
    )
    add_model_arguments(parser)
    parser.add_argument("--theme", required=True, help="what the whole set shows")
    parser.add_argument(
        "--description", default="", help="what every panel shares (style, setting, identity)"
    )
    parser.add_argument(
        "--panel",
        action="append",
        default=[],
        required=True,
        help="one panel prompt, row-major; repeat per panel",
    )
    parser.add_argument("--layout", default="2x2", help="rows x columns, e.g. 2x2, 1x3 (default 2x2)")
    parser.add_argument(
        "--panel-size", default="512", help="panel size in pixels: N or WxH, multiples of 16 (default 512)"
    )
    parser.add_argument("--steps", type=int, default=28, help="denoising steps (default 28)")
    parser.add_argument("--guidance", type=float, default=3.5, help="FLUX guidance scale (default 3.5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first set (default 0)")
    parser.add_argument("--num-sets", type=int, default=1, help="sets to generate, seeds seed..seed+K-1")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.set_defaults(func=run_generate)


def register_edit(subparsers) -> None:
    parser = subparsers.add_parser(
        "edit",
        help="edit an image with one or more instructions (Kontext / Qwen-Image-Edit)",
        description="Edit an image. Several --instruction values make a chain: each step edits the previous "
        "result (or the reference with --from-reference). Writes edit_1.png, ... and settings.json into "
        "--out; every output has the input image's size.",
    )
    add_model_arguments(parser)
    parser.add_argument("--image", required=True, type=Path, help="the image to edit")
    parser.add_argument(
        "--instruction", action="append", required=True, help="what to change; repeat for a chain"
    )
    parser.add_argument("--from-reference", action="store_true", help="every step edits the original image")
    parser.add_argument("--steps", type=int, default=28, help="denoising steps per edit (default 28)")
    parser.add_argument(
        "--guidance", type=float, default=None, help="Kontext guidance / Qwen true-CFG (default 2.5 / 4.0)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first edit (default 0)")
    parser.add_argument(
        "--max-area", type=int, default=None, help="pixel area to work at (default: the input's own size)"
    )
    parser.add_argument(
        "--condition-area",
        type=int,
        default=None,
        help="Qwen-Image-Edit condition image area (default: working)",
    )
    parser.add_argument("--auto-resize", action="store_true", help="Kontext: use its preferred resolutions")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.set_defaults(func=run_edit)


def parse_panel_size(text: str) -> tuple[int, int]:
    """``"512"`` -> (512, 512); ``"768x512"`` -> (768, 512) as (width, height)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2):
        raise InputError(f"--panel-size should be N or WxH (e.g. 512 or 768x512), got {text!r}.")
    return (sizes[0], sizes[-1])


def print_progress(done: int, total: int) -> None:
    """One updating line on a terminal, one line per step otherwise (logs, pipes)."""
    if sys.stderr.isatty():
        print(f"\rstep {done}/{total}", end="\n" if done >= total else "", file=sys.stderr, flush=True)
    else:
        print(f"step {done}/{total}", file=sys.stderr, flush=True)


def cli_hooks():
    from paco_core.callbacks import Hooks

    return Hooks(progress=print_progress)


def load_with_loras(args: argparse.Namespace):
    """The pipeline named by --model & co, with every --lora stacked."""
    from paco_core.models.lora import LoraSpec, apply_loras

    loaded = open_from_args(args)
    specs = [LoraSpec.parse(text) for text in args.lora]
    view = apply_loras(loaded, specs) if specs else loaded
    for lora in view.loras:
        print(
            f"LoRA {lora.path}: {lora.format}, {lora.num_matched}/{lora.num_keys} keys matched, "
            f"strength {lora.strength:g}",
            file=sys.stderr,
        )
    return view


def save_png(image, path: Path) -> Path:
    from paco_core.io import atomic_write

    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def write_set(result, folder: Path) -> list[Path]:
    """grid.png, panel_1.png ... and settings.json of one generated set."""
    from paco_core.io import atomic_write_json

    written = [save_png(result.grid, folder / "grid.png")]
    for index, panel in enumerate(result.panels, start=1):
        written.append(save_png(panel, folder / f"panel_{index}.png"))
    written.append(atomic_write_json(folder / "settings.json", result.settings))
    return written


def run_generate(args: argparse.Namespace) -> int:
    from paco_core.generate import SetRequest, check_num_sets, generate_sets
    from paco_core.io import check_output_folder

    width, height = parse_panel_size(args.panel_size)
    request = SetRequest(
        theme=args.theme,
        panels=tuple(args.panel),
        layout=args.layout,
        description=args.description,
        panel_width=width,
        panel_height=height,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
    )
    check_num_sets(args.num_sets)
    check_output_folder(args.out)
    view = load_with_loras(args)
    sets = generate_sets(view, request, num_sets=args.num_sets, hooks=cli_hooks())
    for index, result in enumerate(sets, start=1):
        folder = args.out if len(sets) == 1 else args.out / f"set_{index}"
        write_set(result, folder)
        print(f"set {index} (seed {result.seed}): {folder}")
    return 0


def run_edit(args: argparse.Namespace) -> int:
    from paco_core.generate import EditOptions, edit_chain
    from paco_core.images import open_image_file
    from paco_core.io import atomic_write_json, check_output_folder

    reference = open_image_file(args.image, what="--image")
    options = EditOptions(
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        max_area=args.max_area,
        condition_area=args.condition_area,
        auto_resize=args.auto_resize,
    )
    check_output_folder(args.out)
    view = load_with_loras(args)
    chain = edit_chain(
        view, reference, args.instruction, options, from_reference=args.from_reference, hooks=cli_hooks()
    )
    for index, step in enumerate(chain.steps, start=1):
        path = save_png(step.image, args.out / f"edit_{index}.png")
        print(f"edit {index}: {path}  ({step.instruction})")
    atomic_write_json(args.out / "settings.json", {"steps": [step.settings for step in chain.steps]})
    return 0

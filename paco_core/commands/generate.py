"""`paco generate` (consistent image sets) and `paco edit` (edits and edit chains)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from paco_core.devices import DTYPE_CHOICES, OFFLOAD_CHOICES
from paco_core.errors import InputError


def register(subparsers) -> None:
    register_generate(subparsers)
    register_edit(subparsers)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model or ComfyUI's files (--transformer-file, --text-encoder-file, --vae-file,
    --checkpoint-file, --kind, --config-folder, --comfyui-dir), --lora, --dtype, --device, --offload."""
    add_model_source_arguments(parser)
    parser.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="FILE[:STRENGTH]",
        help="LoRA file or peft folder, optionally with a strength (default 1.0); repeat to stack",
    )
    parser.add_argument(
        "--dtype", choices=DTYPE_CHOICES, default="auto", help="bf16 on GPU, fp32 on CPU by default"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument(
        "--offload", choices=OFFLOAD_CHOICES, default="none", help="GPU memory saving: model or sequential"
    )


def add_model_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the pipeline comes from: a diffusers folder, or the files ComfyUI keeps."""
    from paco_core.models.comfy_files import FILE_KINDS

    group = parser.add_argument_group(
        "model", "a diffusers folder (--model), or ComfyUI's files without --model (see docs/model-files.md)"
    )
    group.add_argument("--model", help="diffusers folder (with model_index.json) or hub id")
    group.add_argument(
        "--transformer-file",
        help="diffusion model file (models/diffusion_models, e.g. flux1-dev.safetensors); with --model: "
        "a FLUX transformer replacing the folder's",
    )
    group.add_argument(
        "--text-encoder-file",
        action="append",
        default=[],
        metavar="FILE",
        help="text encoder file (models/text_encoders); repeat: clip_l and t5xxl for FLUX, qwen_2.5_vl_7b for Qwen",
    )
    group.add_argument(
        "--vae-file", help="VAE file (models/vae): ae.safetensors or qwen_image_vae.safetensors"
    )
    group.add_argument(
        "--checkpoint-file", help="all-in-one checkpoint (models/checkpoints) instead of split files"
    )
    group.add_argument(
        "--kind",
        choices=FILE_KINDS,
        default="auto",
        help="pipeline kind of the files (auto: flux for a FLUX transformer, qwen-image-edit for Qwen-Image; "
        "Kontext and 2509 cannot be told from their weights: name them)",
    )
    group.add_argument(
        "--config-folder", help="config folder for files of another size (default: the shipped one)"
    )
    group.add_argument(
        "--comfyui-dir",
        default=os.environ.get("COMFYUI_DIR"),
        help="ComfyUI folder whose tokenizers the files use (default: $COMFYUI_DIR)",
    )


def open_from_args(args: argparse.Namespace):
    """The pipeline the model arguments name (no LoRAs)."""
    from paco_core.models.pipelines import open_pipeline

    return open_pipeline(
        args.model,
        transformer_file=args.transformer_file,
        text_encoder_files=args.text_encoder_file,
        vae_file=args.vae_file,
        checkpoint_file=args.checkpoint_file,
        kind=args.kind,
        config_folder=args.config_folder,
        comfyui_dir=args.comfyui_dir,
        dtype=args.dtype,
        device=args.device,
        offload=args.offload,
    )


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

"""`paco tiny-models DEST`: write the tiny offline models as standard model folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from paco_core.errors import InputError
from paco_core.testing import TINY_MODEL_NAMES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tiny-models",
        help="write tiny random-weight models (FLUX, Kontext, Qwen-Image-Edit, judge, CLIP)",
        description=(
            "Write tiny random-weight models as standard diffusers / transformers folders "
            "(DEST/<name>), for tests, the demo and benchmarks. The same files, byte for byte, "
            "on every run. Folders already complete are kept."
        ),
    )
    parser.add_argument("dest", type=Path, nargs="?", metavar="DEST", help="folder to write the models into")
    parser.add_argument(
        "--comfyui",
        type=Path,
        metavar="COMFYUI_DIR",
        help="put the models into this ComfyUI's models/ folders under the names the shipped workflows' tiny "
        "runs use (diffusers/tiny-flux, tiny-flux-kontext, tiny-qwen-image-edit, text_encoders/tiny-judge, "
        "loras/paco_tiny.safetensors) instead of DEST",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=TINY_MODEL_NAMES,
        help=f"build only these models (default: all of {', '.join(TINY_MODEL_NAMES)})",
    )
    parser.set_defaults(func=run)


def folder_summary(folder: Path) -> tuple[int, int]:
    """``(number of files, total bytes)`` under ``folder``."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


def run(args: argparse.Namespace) -> int:
    from transformers.utils.logging import disable_progress_bar

    from paco_core.testing import build_tiny_models

    disable_progress_bar()  # one summary line per model instead of a bar per weights file
    if args.comfyui is not None:
        return install_into_comfyui(args)
    if args.dest is None:
        raise InputError("paco tiny-models: give DEST (a folder) or --comfyui COMFYUI_DIR.")
    folders = build_tiny_models(args.dest, args.only)
    for name, folder in folders.items():
        num_files, num_bytes = folder_summary(folder)
        print(f"{name:<22} {folder}  {num_files} files, {num_bytes / 1024:.0f} KiB")
    return 0


def install_into_comfyui(args: argparse.Namespace) -> int:
    from paco_core.testing.comfyui_models import comfyui_models_dir, install_tiny_models

    if args.dest is not None or args.only:
        raise InputError(
            "paco tiny-models --comfyui: give no DEST and no --only (all tiny models go into ComfyUI)."
        )
    models = comfyui_models_dir(args.comfyui)
    for name, path in install_tiny_models(models).items():
        print(f"{name:<22} {path}")
    print(
        "Restart ComfyUI (or press R in the frontend), then choose these names in the PaCo loaders; "
        "docs/workflows.md (Try them on the tiny models) says which."
    )
    return 0

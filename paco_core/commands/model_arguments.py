"""The model arguments of the commands, defined once: where a pipeline or a judge comes from, and the
precision and device it runs at.

- :func:`add_precision_arguments`: ``--dtype`` and ``--device`` (or ``--judge-dtype`` ...), every
  model command (generate, edit, reference-set, repair, guarded-chain, demo, score, score-edit,
  pool, serve-judge).
- :func:`add_model_arguments`: a pipeline (a diffusers folder or ComfyUI's files), its LoRAs,
  precision, device and offload (generate, edit, reference-set, repair, guarded-chain);
  :func:`open_from_args` opens it.
- :func:`add_judge_arguments`: a judge (a folder or a server URL) and how to ask it (score,
  score-edit, pool); :func:`judge_from_args` opens it.
"""

from __future__ import annotations

import argparse
import os

from paco_core.devices import DTYPE_CHOICES, OFFLOAD_CHOICES
from paco_core.errors import InputError

ANSWER_SETS = ("exact", "case")


def add_precision_arguments(
    parser, *, prefix: str = "", device_default: str | None = "auto", what: str = ""
) -> None:
    """``--{prefix}dtype`` and ``--{prefix}device`` on ``parser`` (a parser or an argument group).

    Args:
        device_default: "auto" or None (both: the GPU if any, else the CPU).
        what: the words the help starts with, e.g. "local judge ".
    """
    parser.add_argument(
        f"--{prefix}dtype",
        choices=DTYPE_CHOICES,
        default="auto",
        help=f"{what}weights precision (auto: bf16 on a GPU, fp32 on the CPU)",
    )
    parser.add_argument(
        f"--{prefix}device",
        default=device_default,
        help=f"{what}device: auto (the GPU if any, else the CPU), cpu, cuda, cuda:N, mps",
    )


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
    add_precision_arguments(parser)
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


def add_judge_arguments(parser: argparse.ArgumentParser) -> None:
    """--judge or --url, --lora, --server-model, --top-logprobs, --dtype, --device, --answers, --batch-size."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--judge",
        metavar="DIR",
        help="judge folder or hub id (downloaded once into the hub cache): local judge",
    )
    source.add_argument(
        "--url", help="OpenAI-compatible server URL (vllm serve, paco serve-judge), checked before scoring"
    )
    parser.add_argument("--lora", default=None, metavar="DIR", help="peft adapter folder for a base judge")
    parser.add_argument("--server-model", default=None, help="with --url: the served model name")
    parser.add_argument(
        "--top-logprobs",
        type=int,
        default=20,
        help="with --url: log-probabilities asked per answer (default 20)",
    )
    add_precision_arguments(parser, device_default=None, what="local ")
    parser.add_argument(
        "--answers", default="exact", choices=ANSWER_SETS, help="count exact Yes/No or case variants"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="local: image pairs per forward pass")


def judge_from_args(args: argparse.Namespace):
    """The judge the arguments ask for (``--url`` or ``--judge``), through the one opener."""
    from paco_core.reward import is_server_url, open_judge

    if args.url and not is_server_url(args.url):
        raise InputError(
            f"--url should start with http:// or https://, got {args.url!r}; give a folder as --judge."
        )
    if args.url and args.lora:
        raise InputError("--lora applies to a local --judge; a server already serves its model.")
    return open_judge(
        args.url or args.judge,
        lora=args.lora,
        server_model=args.server_model,
        dtype=args.dtype,
        device=args.device,
        answers=args.answers,
        batch_size=args.batch_size,
        top_logprobs=args.top_logprobs,
    )

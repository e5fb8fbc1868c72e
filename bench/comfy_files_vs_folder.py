"""The same 2x2 FLUX set from ComfyUI's split files and from the diffusers folder, side by side.

For each source: load time (cold: the pipeline cache cleared), seconds per set (median of
``--repeats`` after a warm-up, alternating the two), peak GPU memory on CUDA, and whether
the two sets are pixel-equal. Prints ratios files / folder.

By default on the tiny FLUX (CPU is fine; the ComfyUI layout written by the tiny-model
factory). With ``--folder`` and the file options it compares real models, e.g. on a GPU:

    python -m bench.comfy_files_vs_folder --folder models/diffusers/FLUX.1-dev \\
        --transformer-file models/diffusion_models/flux1-dev.safetensors \\
        --text-encoder-file models/text_encoders/clip_l.safetensors \\
        --text-encoder-file models/text_encoders/t5xxl_fp16.safetensors \\
        --vae-file models/vae/ae.safetensors --comfyui-dir ~/ComfyUI --panel-size 512 --steps 28
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from paco_core.families import FLUX


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", help="diffusers folder (default: the tiny FLUX)")
    parser.add_argument("--transformer-file")
    parser.add_argument("--text-encoder-file", action="append", default=[])
    parser.add_argument("--vae-file")
    parser.add_argument("--config-folder")
    parser.add_argument("--comfyui-dir")
    parser.add_argument("--panel-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    return parser.parse_args(argv)


def tiny_sources(cache: Path) -> dict:
    from paco_core.testing import build_tiny_model

    models = build_tiny_model("comfyui", cache) / "models"
    return {
        "folder": str(cache / FLUX.kind),
        "transformer_file": str(models / "diffusion_models" / "tiny-flux.safetensors"),
        "text_encoder_files": [
            str(models / "text_encoders" / "tiny-flux-clip_l.safetensors"),
            str(models / "text_encoders" / "tiny-flux-t5xxl.safetensors"),
        ],
        "vae_file": str(models / "vae" / "tiny-flux-ae.safetensors"),
        "config_folder": str(models / "paco_configs" / "tiny-flux"),
        "comfyui_dir": None,
    }


def compare(
    sources: dict, *, panel_size: int, steps: int, repeats: int, device: str = "auto", dtype: str = "auto"
) -> dict:
    """Load time, median seconds per 2x2 set and peak GPU memory (GiB, NaN on the CPU) of the
    pipeline from each source ("folder", "files"), and its first set's grid as an array."""
    import numpy as np
    import torch

    from paco_core.generate import SetRequest, generate_sets
    from paco_core.models.pipelines import clear_pipeline_cache, open_pipeline

    common = {"dtype": dtype, "device": device}
    openers = {
        "folder": lambda: open_pipeline(sources["folder"], **common),
        "files": lambda: open_pipeline(
            None, transformer_file=sources["transformer_file"], text_encoder_files=sources["text_encoder_files"],
            vae_file=sources["vae_file"], config_folder=sources["config_folder"],
            comfyui_dir=sources["comfyui_dir"], **common,
        ),
    }  # fmt: skip
    request = SetRequest(
        theme="a red fox",
        panels=("packs a map", "crosses a bridge", "climbs a hill", "sleeps in a tent"),
        layout="2x2",
        panel_width=panel_size,
        panel_height=panel_size,
        steps=steps,
        seed=7,
    )
    cuda = torch.cuda.is_available() and device != "cpu"
    results = {}
    for name, opener in openers.items():
        clear_pipeline_cache()
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        loaded = opener()
        if cuda:
            torch.cuda.synchronize()
        load_s = time.perf_counter() - started
        grid = np.asarray(generate_sets(loaded, request)[0].grid)  # warm-up, and the image compared
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            generate_sets(loaded, request)  # ends in PIL images: the GPU work is done when it returns
            times.append(time.perf_counter() - started)
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        results[name] = {"load_s": load_s, "set_s": statistics.median(times), "peak_gib": peak, "grid": grid}
        del loaded
        clear_pipeline_cache()
    return results


def main(argv=None) -> int:
    import numpy as np
    import torch

    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.folder:
        sources = {
            "folder": args.folder, "transformer_file": args.transformer_file,
            "text_encoder_files": args.text_encoder_file, "vae_file": args.vae_file,
            "config_folder": args.config_folder, "comfyui_dir": args.comfyui_dir,
        }  # fmt: skip
    else:
        sources = tiny_sources(Path(tempfile.mkdtemp(prefix="paco-bench-")))
    results = compare(
        sources,
        panel_size=args.panel_size,
        steps=args.steps,
        repeats=args.repeats,
        device=args.device,
        dtype=args.dtype,
    )
    folder, files = results["folder"], results["files"]
    print(f"{'':8} {'load s':>9} {'s / set':>9} {'peak GiB':>9}")
    for name, row in results.items():
        print(f"{name:8} {row['load_s']:9.3f} {row['set_s']:9.4f} {row['peak_gib']:9.2f}")
    print(
        f"ratio files/folder: load {files['load_s'] / folder['load_s']:.2f}, set {files['set_s'] / folder['set_s']:.3f}"
        + (f", peak {files['peak_gib'] / folder['peak_gib']:.3f}" if torch.cuda.is_available() else "")
    )
    difference = np.abs(files["grid"].astype(int) - folder["grid"].astype(int)).max()
    print(f"largest pixel difference between the two sets: {difference}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Seconds per PaCo-GRPO iteration (rollout + reward + update) at two train resolutions.

Measures the cost of resolution decoupling: the paper trains T2IS at 512 and evaluates
at 1024, and reports about half the end-to-end time of training at 1024.

    python -m bench.grpo_step                      # tiny FLUX, CPU or GPU, 256 vs 512
    python -m bench.grpo_step --real-dims          # random-weight FLUX.1-dev-sized transformer (GPU), 512 vs 1024

``--real-dims`` builds a FluxTransformer2DModel with FLUX.1-dev's dimensions (19 double +
38 single blocks, 24 heads x 128, joint dim 4096, pooled dim 768; about 12B parameters)
on the meta device and materialises it with random weights on the GPU. The text
encoders keep one layer (with FLUX's output widths, 4096 and 768) and the VAE stays the
tiny test VAE: their cost is negligible next to the transformer's, so the timing is the
transformer's. G = 4 images per prompt, one prompt, PPO update with LoRA rank 64 and
gradient checkpointing. Each resolution gets one warm-up iteration, then ``--iterations``
timed ones; peak GPU memory is measured per resolution.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

from paco_core.config import config_from_dict  # noqa: E402
from paco_core.families import FLUX  # noqa: E402
from paco_core.rl.config import RewardSpec, TrainConfig  # noqa: E402
from paco_core.rl.rewards import RewardSet  # noqa: E402
from paco_core.rl.trainer import GrpoTrainer  # noqa: E402

PROMPT = (
    "FOUR-PANEL Images with a 2x2 grid layout depicting a red fox in a snowy forest. All images share the same "
    "watercolor style. [TOP]-[LEFT]:The fox sits on a log. [TOP]-[RIGHT]:The fox leaps over a stream. "
    "[BOTTOM]-[LEFT]:The fox sleeps under a pine. [BOTTOM]-[RIGHT]:The fox watches the moon."
)


def mean_brightness(images, prompts, metadata):
    return [float(np.asarray(image.convert("L"), dtype=np.float64).mean() / 255.0) for image in images]


def make_config(args, model_path: str, data_file: Path, output_dir: Path, device: str) -> TrainConfig:
    return config_from_dict(
        TrainConfig,
        {
            "model": {"kind": FLUX.kind, "path": model_path, "device": device},
            "lora": {"rank": args.lora_rank, "alpha": 2 * args.lora_rank},
            "sampling": {
                "num_steps": args.steps,
                "noise_steps": [1],
                "noise_level": 0.7,
                "guidance_scale": 3.5,
                "train_resolution": args.resolutions[0],
                "eval_resolution": args.resolutions[1],
                "reference_resolution": 1024,
                "group_size": args.group_size,
                "batch_size": args.batch_size,
                "prompts_per_iteration": 1,
                "max_sequence_length": args.max_sequence_length,
            },
            "data": {"train_file": str(data_file), "eval_fraction": 0.0},
            "rewards": {"rewards": [{"name": "bench:mean_brightness"}], "aggregation": "weighted_sum"},
            "optim": {
                "gradient_checkpointing": args.gradient_checkpointing,
                "clip_range": 1e-4,
                "mixed_precision": args.mixed_precision,
            },
            "num_iterations": 1_000_000,
            "output_dir": str(output_dir),
            "eval_every": 0,
            "checkpoint_every": 1_000_000,
        },
    )


def time_resolution(trainer: GrpoTrainer, resolution: int, iterations: int, device: str) -> dict:
    # One trainer serves both resolutions (its LoRA sits in the shared transformer): the
    # train resolution is read from the config at every iteration.
    trainer.config.sampling.train_resolution = resolution
    trainer.run_iteration(0)  # warm-up (kernels, allocator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, cpu_times, parts = [], [], []
    for step in range(1, iterations + 1):
        started, cpu_started = time.perf_counter(), time.process_time()
        metrics = trainer.run_iteration(step)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
        # CPU seconds of this process: on a shared CPU machine steadier than wall time
        cpu_times.append(time.process_time() - cpu_started)
        parts.append({k: metrics[k] for k in ("time/rollout_s", "time/reward_s", "time/update_s")})
    peak = torch.cuda.max_memory_allocated() / 1024**3 if device.startswith("cuda") else float("nan")
    return {
        "resolution": resolution,
        "seconds_per_iteration": float(np.median(times)),
        "cpu_seconds_per_iteration": float(np.median(cpu_times)),
        "rollout_s": float(np.median([p["time/rollout_s"] for p in parts])),
        "update_s": float(np.median([p["time/update_s"] for p in parts])),
        "peak_gpu_gb": peak,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--real-dims", action="store_true", help="FLUX.1-dev-sized random transformer (needs a GPU)"
    )
    parser.add_argument("--resolutions", type=int, nargs=2, default=None, help="two train resolutions")
    parser.add_argument("--iterations", type=int, default=2, help="timed iterations per resolution")
    parser.add_argument("--steps", type=int, default=10, help="sampling steps (paper: 10)")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="micro-batch (default: 1 real dims, 4 tiny)"
    )
    parser.add_argument("--lora-rank", type=int, default=64)
    parser.add_argument("--max-sequence-length", type=int, default=512)
    parser.add_argument("--num-layers", type=int, default=19, help="double blocks for --real-dims")
    parser.add_argument("--num-single-layers", type=int, default=38, help="single blocks for --real-dims")
    parser.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    parser.add_argument(
        "--mixed-precision", choices=("auto", "no", "bf16"), default="auto", help="optim.mixed_precision"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--tiny-flux", type=Path, help="tiny FLUX folder (tokenizers, VAE); default: built and cached"
    )
    args = parser.parse_args(argv)
    args.resolutions = args.resolutions or ([512, 1024] if args.real_dims else [256, 512])
    args.batch_size = args.batch_size or (1 if args.real_dims else args.group_size)

    if args.tiny_flux:
        tiny_flux = args.tiny_flux
    else:
        from paco_core.testing import build_tiny_model, default_cache_dir

        tiny_flux = build_tiny_model(FLUX.kind, default_cache_dir())
    work = Path(tempfile.mkdtemp(prefix="paco-bench-"))
    data_file = work / "prompts.jsonl"
    data_file.write_text(
        json.dumps({"prompt": PROMPT, "height": 1024, "width": 1024, "layout": "2x2"}) + "\n"
    )
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    started = time.perf_counter()
    if args.real_dims:
        from paco_core.testing.real_size import random_flux_pipeline

        pipeline = random_flux_pipeline(
            tiny_flux,
            args.device,
            dtype,
            num_layers=args.num_layers,
            num_single_layers=args.num_single_layers,
        )
    else:
        from paco_core.models.pipelines import load_pipeline

        pipeline = load_pipeline(tiny_flux, dtype=dtype, device=args.device)
    build_s = time.perf_counter() - started
    num_params = sum(p.numel() for p in pipeline.pipe.transformer.parameters())
    config = make_config(args, str(tiny_flux), data_file, work / "run", args.device)
    rewards = RewardSet([RewardSpec("bench:mean_brightness")], {"bench:mean_brightness": mean_brightness})
    trainer = GrpoTrainer(config, pipeline=pipeline, rewards=rewards, eval_rewards=rewards)
    trainer.check_config()
    trainer.setup()
    num_lora = sum(p.numel() for _, p in trainer.named_trainable)
    results = [time_resolution(trainer, res, args.iterations, args.device) for res in args.resolutions]

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"device: {device_name}; transformer: {'FLUX.1-dev dims' if args.real_dims else 'tiny FLUX'} "
        f"({num_params / 1e9:.3f}B params, built in {build_s:.1f}s); LoRA {num_lora / 1e6:.1f}M params"
    )
    print(
        f"G={args.group_size}, micro-batch {args.batch_size}, {args.steps} steps, noise step [1], "
        f"gradient checkpointing {args.gradient_checkpointing}, median of {args.iterations} iterations"
    )
    print(
        f"{'train res':>9} {'s/iter':>8} {'cpu s/iter':>10} {'rollout s':>10} {'update s':>9} {'peak GB':>8}"
    )
    for r in results:
        print(
            f"{r['resolution']:>9} {r['seconds_per_iteration']:>8.2f} {r['cpu_seconds_per_iteration']:>10.2f} "
            f"{r['rollout_s']:>10.2f} {r['update_s']:>9.2f} {r['peak_gpu_gb']:>8.1f}"
        )
    ratio = results[0]["seconds_per_iteration"] / results[1]["seconds_per_iteration"]
    print(
        f"ratio {args.resolutions[0]}/{args.resolutions[1]}: {ratio:.2f} (paper, 8xH100 end to end: 6.0 h / 12.0 h = 0.50)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "device": device_name,
                    "real_dims": args.real_dims,
                    "results": results,
                    "ratio": ratio,
                    "args": {k: str(v) for k, v in vars(args).items()},
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

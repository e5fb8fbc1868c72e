"""How judge time and training-iteration time grow with the work, with the fitted exponent.

Two tables, each measured in one run:

1. Judge time against N panels per set (2 to 16; N (N - 1) / 2 pairs), for today's local
   backend and with prefix sharing; the fitted exponent b of time ~ pairs^b (1 = linear
   in pairs) and of time ~ N^b (2 = quadratic in panels).
2. Training iteration time (rollout + reward + update) against group size G at one
   resolution, and against the train resolution at one G; fitted exponents of
   time ~ G^b and time ~ pixels^b.

The exponent is the least-squares slope in log-log space. Small work on the tiny models
is dominated by fixed per-call costs (b below 1); real dimensions on a GPU move it towards
the compute's exponent.

Usage:
    python -m bench.scaling_growth                              # tiny judge + tiny FLUX, CPU
    python -m bench.scaling_growth --device cuda --real-dims    # random Qwen2.5-VL-7B / FLUX.1-dev dims
    python -m bench.scaling_growth --part judge --panels 2 4 8 16
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

from paco_core.families import FLUX


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("judge", "train", "both"), default="both")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the GPU if any)")
    parser.add_argument(
        "--real-dims", action="store_true", help="random-weight models with the real dimensions"
    )
    parser.add_argument("--panels", type=int, nargs="+", default=[2, 3, 4, 6, 8, 12, 16])
    parser.add_argument(
        "--panel-size", type=int, default=None, help="judge panel side (64 tiny, 512 real dims)"
    )
    parser.add_argument("--judge-batch-size", type=int, default=8)
    parser.add_argument("--group-sizes", type=int, nargs="+", default=None, help="default 2 4 8 (tiny)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=None, help="default 32 64 128 (tiny)")
    parser.add_argument("--steps", type=int, default=4, help="sampling steps of the training iterations")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per point (median kept)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    return parser.parse_args(argv)


def fitted_exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def judge_table(args: argparse.Namespace) -> dict:
    from bench import judge_throughput as base
    from paco_core.reward.backend import PairRequest
    from paco_core.reward.prompts import set_consistency_prompt

    judge_args = base.parse_args(
        ["--batch-size", str(args.judge_batch_size)]
        + (["--device", args.device] if args.device else [])
        + (["--real-dims"] if args.real_dims else [])
    )
    judge = (
        base.build_real_dims_judge(judge_args)
        if args.real_dims
        else base.load_tiny_or_given_judge(judge_args)
    )
    side = args.panel_size or (512 if args.real_dims else 64)
    prompt = set_consistency_prompt("a red fox walking through the seasons")
    rows = []
    print(
        f"judge: {judge.name} on {judge.device} ({judge.dtype}), {side} px panels, batch {judge.batch_size}"
    )
    print(f"{'N':>3} {'pairs':>5} {'plain s':>9} {'shared s':>9} {'ratio':>6}")
    for num_panels in args.panels:
        panels = base.random_panels(num_panels, side, seed=num_panels)
        pairs = [PairRequest(panels[i], panels[j], prompt) for i, j in combinations(range(num_panels), 2)]
        seconds = {}
        for sharing in (False, True):
            judge.prefix_sharing = sharing
            seconds[sharing] = median_seconds(lambda pairs=pairs: judge.score_pairs(pairs), args.repeats)
        rows.append(
            {"panels": num_panels, "pairs": len(pairs), "plain_s": seconds[False], "shared_s": seconds[True]}
        )
        print(
            f"{num_panels:>3} {len(pairs):>5} {seconds[False]:>9.3f} {seconds[True]:>9.3f} "
            f"{seconds[False] / seconds[True]:>6.2f}"
        )
    fits = {}
    for key in ("plain_s", "shared_s"):
        fits[key] = {
            "vs_pairs": fitted_exponent([r["pairs"] for r in rows], [r[key] for r in rows]),
            "vs_panels": fitted_exponent([r["panels"] for r in rows], [r[key] for r in rows]),
        }
        print(
            f"fitted growth ({key[:-2]}): time ~ pairs^{fits[key]['vs_pairs']:.2f}, "
            f"time ~ N^{fits[key]['vs_panels']:.2f}"
        )
    big = [r for r in rows if r["pairs"] >= 6]  # past the fixed per-call costs
    if len(big) >= 2:
        fits["plain_s_from_6_pairs"] = fitted_exponent([r["pairs"] for r in big], [r["plain_s"] for r in big])
        print(f"fitted growth (plain, N >= 4 only): time ~ pairs^{fits['plain_s_from_6_pairs']:.2f}")
    return {"rows": rows, "fits": fits}


def train_table(args: argparse.Namespace) -> dict:
    import torch

    from bench.grpo_step import PROMPT, mean_brightness
    from paco_core.config import config_from_dict
    from paco_core.models.pipelines import load_pipeline
    from paco_core.rl.config import RewardSpec, TrainConfig
    from paco_core.rl.rewards import RewardSet
    from paco_core.rl.trainer import GrpoTrainer
    from paco_core.testing import build_tiny_model, default_cache_dir
    from paco_core.testing.real_size import random_flux_pipeline

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    group_sizes = args.group_sizes or ([2, 4, 8] if not args.real_dims else [2, 4, 8])
    resolutions = args.resolutions or ([32, 64, 128] if not args.real_dims else [256, 512, 768])
    tiny_flux = build_tiny_model(FLUX.kind, default_cache_dir())
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if args.real_dims:
        pipeline = random_flux_pipeline(tiny_flux, device, dtype)
    else:
        pipeline = load_pipeline(tiny_flux, dtype=dtype, device=device)
    work = Path(tempfile.mkdtemp(prefix="paco-growth-"))
    data_file = work / "prompts.jsonl"
    data_file.write_text(
        json.dumps({"prompt": PROMPT, "height": 1024, "width": 1024, "layout": "2x2"}) + "\n"
    )
    config = config_from_dict(
        TrainConfig,
        {
            "model": {"kind": FLUX.kind, "path": str(tiny_flux), "device": device},
            "lora": {"rank": 8 if not args.real_dims else 64, "alpha": 16 if not args.real_dims else 128},
            "sampling": {
                "num_steps": args.steps,
                "noise_steps": [1],
                "train_resolution": resolutions[0],
                "group_size": max(group_sizes),
                "batch_size": 1 if args.real_dims else 2,
                "prompts_per_iteration": 1,
                "max_sequence_length": 64,
            },
            "data": {"train_file": str(data_file), "eval_fraction": 0.0},
            "rewards": {"rewards": [{"name": "bench:mean_brightness"}], "aggregation": "weighted_sum"},
            "optim": {"gradient_checkpointing": args.real_dims, "clip_range": 1e-4},
            "output_dir": str(work / "run"),
            "eval_every": 0,
            "num_iterations": 10**6,
            "checkpoint_every": 10**6,
        },
    )
    rewards = RewardSet([RewardSpec("bench:mean_brightness")], {"bench:mean_brightness": mean_brightness})
    trainer = GrpoTrainer(config, pipeline=pipeline, rewards=rewards, eval_rewards=rewards)
    trainer.check_config()
    trainer.setup()
    sampling = trainer.config.sampling
    step = [0]

    def iteration():
        trainer.run_iteration(step[0])
        step[0] += 1
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    by_group, by_resolution = [], []
    fixed_resolution, fixed_group = resolutions[len(resolutions) // 2], group_sizes[len(group_sizes) // 2]
    print(f"training: {'FLUX.1-dev dims' if args.real_dims else 'tiny FLUX'} on {device}, {args.steps} steps")
    print(f"{'G':>3} {'res':>5} {'s/iter':>8}")
    for group in group_sizes:
        sampling.group_size, sampling.train_resolution = group, fixed_resolution
        seconds = median_seconds(iteration, args.repeats)
        by_group.append({"group_size": group, "resolution": fixed_resolution, "seconds": seconds})
        print(f"{group:>3} {fixed_resolution:>5} {seconds:>8.3f}")
    for resolution in resolutions:
        sampling.group_size, sampling.train_resolution = fixed_group, resolution
        seconds = median_seconds(iteration, args.repeats)
        by_resolution.append({"group_size": fixed_group, "resolution": resolution, "seconds": seconds})
        print(f"{fixed_group:>3} {resolution:>5} {seconds:>8.3f}")
    fits = {
        "vs_group_size": fitted_exponent(
            [r["group_size"] for r in by_group], [r["seconds"] for r in by_group]
        ),
        "vs_pixels": fitted_exponent(
            [r["resolution"] ** 2 for r in by_resolution], [r["seconds"] for r in by_resolution]
        ),
    }
    print(f"fitted growth: time ~ G^{fits['vs_group_size']:.2f}, time ~ pixels^{fits['vs_pixels']:.2f}")
    return {"by_group": by_group, "by_resolution": by_resolution, "fits": fits}


def main(argv=None) -> int:
    import torch

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {}
    if args.part in ("judge", "both"):
        results["judge"] = judge_table(args)
    if args.part in ("train", "both"):
        results["train"] = train_table(args)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

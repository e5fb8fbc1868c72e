"""How close the pre-run estimate (paco_core/rl/estimate.py) comes to real runs.

For each setting, in one run: the estimate's seconds per iteration (one probed prompt's
group, scaled), then a real training run of the same config, timed between the end of its
first iteration and the end of its last (so the models' loading and the first, warming
iteration are left out, as the estimate leaves them out); evaluations fall inside that window.
Prints estimate / actual (1.00 = exact) and the peak memory of both.

Usage (from the repository root):
    python -m bench.estimate_accuracy                       # tiny FLUX on the CPU
    python -m bench.estimate_accuracy --iterations 6 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from paco_core.families import FLUX

SETTINGS = (
    {"label": "G=2, 1 prompt/iteration", "group_size": 2, "prompts": 1, "eval_every": 0},
    {"label": "G=4, 2 prompts/iteration", "group_size": 4, "prompts": 2, "eval_every": 0},
    {"label": "G=2, 3 prompts/iteration, eval every 2", "group_size": 2, "prompts": 3, "eval_every": 2},
)


def brightness(images, prompts, metadata):
    """The bench's reward (``bench.estimate_accuracy:brightness``): mean brightness in [0, 1]."""
    import numpy as np

    return [float(np.asarray(image.convert("L"), dtype=np.float32).mean() / 255.0) for image in images]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, default=5, help="iterations of each real run (>= 3)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="sampling steps")
    parser.add_argument("--json-out", type=Path, default=None)
    return parser.parse_args(argv)


def run_config(model: Path, setting: dict, args, output_dir: str) -> dict:
    return {
        "model": {"kind": FLUX.kind, "path": str(model), "device": args.device},
        "lora": {"rank": 4, "alpha": 8},
        "sampling": {"num_steps": args.steps, "noise_steps": [0], "train_resolution": args.resolution,
                     "eval_resolution": args.resolution, "group_size": setting["group_size"], "batch_size": 2,
                     "prompts_per_iteration": setting["prompts"], "max_sequence_length": 16},
        "data": {"train_file": str(Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "rl" / "sets.jsonl"),
                 "num_eval_prompts": 2},
        "rewards": {"rewards": [{"name": "bench.estimate_accuracy:brightness"}], "aggregation": "weighted_sum"},
        "optim": {"lr": 1e-2, "clip_range": 0.2},
        "eval_every": setting["eval_every"], "num_iterations": args.iterations, "checkpoint_every": 10_000,
        "output_dir": output_dir,
    }  # fmt: skip


def actual_seconds_per_iteration(config) -> tuple[float, float | None]:
    """(seconds per iteration after the first, the run's peak memory in GB)."""
    from paco_core.callbacks import Hooks
    from paco_core.rl.trainer import GrpoTrainer

    marks: dict[int, float] = {}
    trainer = GrpoTrainer(
        config, hooks=Hooks(progress=lambda done, total: marks.setdefault(done, time.perf_counter()))
    )
    trainer.train()
    first, last = min(marks), max(marks)
    peaks = [m["memory/peak_gb"] for m in trainer.run_folder.read_metrics() if "memory/peak_gb" in m]
    return (marks[last] - marks[first]) / (last - first), max(peaks) if peaks else None


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.iterations < 3:
        raise SystemExit("--iterations should be at least 3")
    from paco_core.config import config_from_dict
    from paco_core.rl.config import TrainConfig
    from paco_core.rl.estimate import estimate_run
    from paco_core.testing import build_tiny_model, default_cache_dir

    model = build_tiny_model(FLUX.kind, default_cache_dir())
    results = []
    print(
        f"estimate vs real runs: tiny FLUX on {args.device}, {args.resolution} px, {args.steps} steps, "
        f"{args.iterations} iterations per run"
    )
    print(
        f"{'setting':42s} {'estimate s/it':>13s} {'actual s/it':>11s} {'ratio':>6s} {'peak est/act GB':>16s}"
    )
    for setting in SETTINGS:
        with tempfile.TemporaryDirectory() as folder:
            config = config_from_dict(TrainConfig, run_config(model, setting, args, folder))
            estimate = estimate_run(config)
            actual, peak = actual_seconds_per_iteration(config)
        ratio = estimate.s_per_iteration / actual
        results.append(
            {
                **setting,
                "estimate_s": estimate.s_per_iteration,
                "actual_s": actual,
                "ratio": ratio,
                "estimate_peak_gb": estimate.peak_memory_gb,
                "actual_peak_gb": peak,
            }
        )
        peaks = f"{estimate.peak_memory_gb or 0:.2f}/{peak or 0:.2f}"
        print(
            f"{setting['label']:42s} {estimate.s_per_iteration:13.3f} {actual:11.3f} {ratio:6.2f} {peaks:>16s}"
        )
    print(f"median ratio {statistics.median(r['ratio'] for r in results):.2f}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

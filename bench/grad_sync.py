"""Gradient all-reduces per optimizer step: synced once per step (today) against after every
backward pass (the former way), under several processes, side by side in one run.

The script launches itself under ``accelerate launch`` (``--num-processes`` processes; on
the CPU they join a gloo group), trains the tiny FLUX (or ``--model``) both ways with the
same seed, counts DDP's all-reduces with a communication hook and prints per optimizer
step: all-reduce rounds, bucket all-reduces, seconds per iteration, and the ratios.

Usage:
    python -m bench.grad_sync                                 # 2 CPU processes, tiny FLUX
    python -m bench.grad_sync --device cuda --num-processes 8 # 8 GPUs
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paco_core.families import FLUX

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "FOUR-PANEL Images with a 2x2 grid layout a red fox. [TOP]-[LEFT]:sits. [TOP]-[RIGHT]:leaps. [BOTTOM]-[LEFT]:sleeps. [BOTTOM]-[RIGHT]:watches."


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--model", default=None, help="FLUX pipeline folder (default: the tiny FLUX)")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=1, help="images per micro-batch")
    parser.add_argument("--accumulation", type=int, default=4, help="optim.gradient_accumulation_steps")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument(
        "--iterations", type=int, default=2, help="timed iterations per mode (after one warm-up)"
    )
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def mean_brightness(images, prompts, metadata):
    import numpy as np

    return [float(np.asarray(image.convert("L"), dtype=np.float64).mean() / 255.0) for image in images]


def worker(args: argparse.Namespace) -> None:
    """One process of the launched run: both modes, results of rank 0 written to ``args.worker``."""
    import torch

    from paco_core.config import config_from_dict
    from paco_core.rl.comm_count import count_all_reduces
    from paco_core.rl.config import RewardSpec, TrainConfig
    from paco_core.rl.rewards import RewardSet
    from paco_core.rl.trainer import GrpoTrainer

    work = args.worker.parent
    results = {}
    for mode in ("every", "step"):
        config = config_from_dict(
            TrainConfig,
            {
                "model": {"kind": FLUX.kind, "path": args.model, "device": args.device},
                "lora": {"rank": 8, "alpha": 16},
                "sampling": {
                    "num_steps": 4,
                    "noise_steps": [1],
                    "train_resolution": args.resolution,
                    "group_size": args.group_size,
                    "batch_size": args.batch_size,
                    "prompts_per_iteration": 1,
                    "max_sequence_length": 32,
                },
                "data": {"train_file": str(work / "prompts.jsonl"), "eval_fraction": 0.0},
                "rewards": {"rewards": [{"name": "bench:brightness"}], "aggregation": "weighted_sum"},
                "optim": {"gradient_accumulation_steps": args.accumulation, "clip_range": 1e-4},
                "output_dir": str(work / f"run-{mode}"),
                "eval_every": 0,
                "num_iterations": 10**6,
                "checkpoint_every": 10**6,
            },
        )
        rewards = RewardSet([RewardSpec("bench:brightness")], {"bench:brightness": mean_brightness})
        trainer = GrpoTrainer(config, rewards=rewards, eval_rewards=rewards)
        trainer.check_config()
        trainer.setup()
        trainer.updater.sync_every_backward = mode == "every"
        counter = count_all_reduces(trainer.train_model)
        trainer.run_iteration(0)  # warm-up
        rounds, buckets, steps, times = counter.rounds, counter.buckets, 0, []
        for step in range(1, args.iterations + 1):
            trainer.accelerator.wait_for_everyone()
            started = time.perf_counter()
            metrics = trainer.run_iteration(step)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
            steps += metrics["policy/optimizer_steps"]
        results[mode] = {
            "rounds_per_step": (counter.rounds - rounds) / steps,
            "buckets_per_step": (counter.buckets - buckets) / steps,
            "seconds_per_iteration": sorted(times)[len(times) // 2],
            "update_s": metrics["time/update_s"],
        }
        del trainer
    if int(os.environ.get("RANK", "0")) == 0:
        args.worker.write_text(json.dumps(results))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.model is None:
        from paco_core.testing import build_tiny_model, default_cache_dir

        args.model = str(build_tiny_model(FLUX.kind, default_cache_dir()))
    work = Path(tempfile.mkdtemp(prefix="paco-grad-sync-"))
    (work / "prompts.jsonl").write_text(json.dumps({"prompt": PROMPT, "layout": "2x2"}) + "\n")
    out = work / "results.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(args.num_processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
        "--main_process_port", str(free_port()), __file__, "--worker", str(out), "--model", args.model,
        "--device", args.device, "--group-size", str(args.group_size), "--batch-size", str(args.batch_size),
        "--accumulation", str(args.accumulation), "--resolution", str(args.resolution),
        "--iterations", str(args.iterations),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr)
        return done.returncode
    results = json.loads(out.read_text())
    micro = args.group_size // args.batch_size // args.num_processes
    print(
        f"{args.num_processes} processes on {args.device}, G={args.group_size}, micro-batch {args.batch_size}, "
        f"{micro} micro-batches per process, accumulation {args.accumulation}, {args.resolution} px, 1 SDE step"
    )
    print(f"{'sync':>6} {'all-reduce rounds/step':>23} {'buckets/step':>13} {'s/iter':>8} {'update s':>9}")
    for mode in ("every", "step"):
        r = results[mode]
        print(
            f"{mode:>6} {r['rounds_per_step']:>23.1f} {r['buckets_per_step']:>13.1f} "
            f"{r['seconds_per_iteration']:>8.3f} {r['update_s']:>9.3f}"
        )
    every, step = results["every"], results["step"]
    print(
        f"ratio every/step: all-reduces {every['rounds_per_step'] / step['rounds_per_step']:.1f}x, "
        f"iteration time {every['seconds_per_iteration'] / step['seconds_per_iteration']:.2f}x"
    )
    if args.json_out:
        args.json_out.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

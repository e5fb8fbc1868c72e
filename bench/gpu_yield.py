"""GPU yield: how fast a training job pauses for ComfyUI, and what a pause gives the generation.

A real ``paco train`` process (``gpu_policy: yield``) trains a LoRA; this script plays
ComfyUI: it asks the run to pause at random moments (``RunFolder.request_pause``, the
control file), measures the time until ``progress.json`` says ``paused``, holds the pause,
releases it, and at the end compares the LoRA with an unpaused run of the same config.

    python -m bench.gpu_yield                          # tiny FLUX on the CPU: pause latency vs step time
    python -m bench.gpu_yield --device cuda            # also: a FLUX set generated on an idle GPU,
                                                       # next to a training job, and during its pause
    python -m bench.gpu_yield --device cuda --model models/diffusers/FLUX.1-dev --resolution 512 \\
        --panel 512 --gen-steps 28 --offload           # the real model (weights moved off while paused)

Printed: the step time of the job, the pause latency (request -> ``paused``; at most one
step), whether the paused run's LoRA equals the unpaused one, and with ``--device cuda``
the generation time and peak GPU memory (the generator's own peak and the device's used
memory, which includes the job's) of each case, with ratios to the idle GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent

from paco_core.families import FLUX  # noqa: E402
from paco_core.run_folder import RunFolder  # noqa: E402

REWARD = "gpu_yield:brightness"
"""The job's reward: this file's :func:`brightness` (the job imports it from bench/)."""


def brightness(images, prompts, metadata):
    """Mean pixel value in [0, 1] (a reward that needs no model)."""
    import numpy as np

    return [float(np.asarray(image.convert("L"), dtype=np.float64).mean() / 255.0) for image in images]


def job_config(args, model: str, output_dir: Path, *, policy: str) -> dict:
    train_file = REPO / "tests" / "fixtures" / "rl" / "sets.jsonl"
    return {
        "model": {"kind": FLUX.kind, "path": model, "device": args.device},
        "lora": {"rank": 4 if args.tiny else 64, "alpha": 8 if args.tiny else 128},
        "sampling": {"num_steps": 2 if args.tiny else 10, "noise_steps": [0, 1], "train_resolution": args.resolution,
                     "eval_resolution": args.resolution, "group_size": 2 if args.tiny else 4, "batch_size": 2,
                     "prompts_per_iteration": 2, "max_sequence_length": 16 if args.tiny else 512},
        "data": {"train_file": str(train_file)},
        "rewards": {"rewards": [{"name": REWARD}], "aggregation": "weighted_sum"},
        "optim": {"lr": 1e-2, "clip_range": 0.2},
        "ema": {"use_ema": True, "update_every": 1},
        "num_iterations": args.iterations, "checkpoint_every": args.iterations, "eval_every": 0,
        "output_dir": str(output_dir), "gpu_policy": policy, "yield_offload": args.offload,
    }  # fmt: skip


def start_job(config: dict, folder: Path) -> subprocess.Popen:
    path = folder / f"{Path(config['output_dir']).name}.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "bench")])}
    log = open(folder / f"{Path(config['output_dir']).name}.log", "w")  # noqa: SIM115 - the job's log
    return subprocess.Popen(
        [sys.executable, "-m", "paco_core.cli", "train", "--config", str(path)],
        stdout=log,
        stderr=log,
        env=env,
    )


def wait_for(predicate, timeout: float, job: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if job is not None and job.poll() is not None:
            raise SystemExit(f"the job exited with {job.returncode} (see its log)")
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.005)


def lora_equal(a: Path, b: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


class Generator:
    """Plays ComfyUI's queue: one FLUX set, timed, with the GPU memory it saw."""

    def __init__(self, args, model: str):
        from paco_core.generate import SetRequest
        from paco_core.models.pipelines import load_pipeline

        self.args = args
        self.loaded = load_pipeline(model, device=args.device)
        self.request = SetRequest(
            theme="a red fox in a snowy forest",
            panels=("sits", "leaps", "sleeps", "watches"),
            layout="2x2",
            panel_width=args.panel,
            panel_height=args.panel,
            steps=args.gen_steps,
            seed=3,
            max_sequence_length=16 if args.tiny else 512,
        )

    def run(self) -> dict:
        import torch

        from paco_core.generate import generate_sets

        cuda = self.args.device.startswith("cuda")
        peak_used = [0]
        done = threading.Event()

        def sample_device() -> None:  # the whole device's used memory, the job's included
            while not done.is_set():
                free, total = torch.cuda.mem_get_info()
                peak_used[0] = max(peak_used[0], total - free)
                time.sleep(0.002)

        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            sampler = threading.Thread(target=sample_device, daemon=True)
            sampler.start()
        started = time.perf_counter()
        generate_sets(self.loaded, self.request, num_sets=self.args.sets)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        done.set()
        result = {"seconds": round(seconds, 4)}
        if cuda:
            result["own_peak_gb"] = round(torch.cuda.max_memory_allocated() / 1024**3, 3)
            result["device_peak_used_gb"] = round(peak_used[0] / 1024**3, 3)
        return result


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--model", default="", help="FLUX diffusers folder (default: the tiny test FLUX)")
    parser.add_argument("--iterations", type=int, default=16, help="training steps of the job")
    parser.add_argument("--pauses", type=int, default=5, help="pauses requested during the job")
    parser.add_argument("--hold", type=float, default=0.3, help="seconds each pause is held (CPU runs)")
    parser.add_argument("--resolution", type=int, default=32, help="the job's train resolution")
    parser.add_argument("--panel", type=int, default=16, help="panel size of the generated set")
    parser.add_argument("--gen-steps", type=int, default=2, help="sampling steps of the generated set")
    parser.add_argument("--sets", type=int, default=1, help="sets per generation")
    parser.add_argument(
        "--offload", action="store_true", help="yield_offload: move the job's models off while paused"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the pause times")
    args = parser.parse_args(argv)
    args.tiny = not args.model
    return args


def measure(args: argparse.Namespace) -> dict:
    """Run the reference and the paused job (and the generations on CUDA); returns the report."""
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="paco-gpu-yield-") as tmp:
        folder = Path(tmp)
        model = args.model
        if not model:
            from paco_core.testing import build_tiny_model, default_cache_dir

            model = str(build_tiny_model(FLUX.kind, default_cache_dir()))
        generator = Generator(args, model) if args.device.startswith("cuda") else None
        report: dict = {"device": args.device, "model": "tiny FLUX" if args.tiny else model}
        if generator is not None:
            generator.run()  # warm-up
            report["generate_idle_gpu"] = generator.run()

        # the unpaused reference job
        reference = RunFolder(folder / "reference")
        job = start_job(job_config(args, model, reference.path, policy="yield"), folder)
        started = time.perf_counter()
        if job.wait() != 0:
            raise SystemExit(f"the reference job failed: see {folder}/reference.log")
        report["job_unpaused_s"] = round(time.perf_counter() - started, 3)

        # the paused job
        run = RunFolder(folder / "paused")
        job = start_job(job_config(args, model, run.path, policy="yield"), folder)
        started = time.perf_counter()
        wait_for(lambda: run.read_progress().get("step", 0) >= 1, 600, job)
        step_s = statistics.median(m["time/step_s"] for m in run.read_metrics() if "time/step_s" in m)
        steps_of_requests: list[int] = []
        latencies, reported, generations = [], [], {"next_to_job": [], "during_pause": []}
        for _ in range(args.pauses):
            if job.poll() is not None:
                break
            time.sleep(rng.uniform(0, step_s))  # anywhere in a step
            if generator is not None:
                generations["next_to_job"].append(generator.run())
            running_step = run.read_progress().get("step", 0) + 1  # the step the request falls into
            requested = time.time()
            run.request_pause("bench: ComfyUI runs a prompt", holder="comfyui")
            wait_for(lambda: run.read_progress().get("state") == "paused" or job.poll() is not None, 600)
            if job.poll() is not None:
                break
            latencies.append(time.time() - requested)
            steps_of_requests.append(running_step)
            reported.append(run.read_progress()["pause_latency_s"])
            if generator is not None:
                generations["during_pause"].append(generator.run())
            else:
                time.sleep(args.hold)
            run.release_pause("comfyui")
            wait_for(lambda: run.read_progress().get("state") != "paused", 600, None)
        if job.wait() != 0:
            raise SystemExit(f"the paused job failed: see {folder}/paused.log")
        report["job_paused_s"] = round(time.perf_counter() - started, 3)
        if not latencies:
            raise SystemExit("the job finished before any pause landed: give it more --iterations")
        step_times = {m["step"]: m["time/step_s"] for m in run.read_metrics() if "time/step_s" in m}
        steps = list(step_times.values())
        # a pause lands at the next pause point: never later than the end of the step the request fell into
        of_step = [
            lat / step_times[s]
            for lat, s in zip(latencies, steps_of_requests, strict=True)
            if s in step_times
        ]
        last = f"checkpoint-{args.iterations}/lora.safetensors"
        report.update(
            step_s_median=round(statistics.median(steps), 4),
            step_s_max=round(max(steps), 4),
            pauses=len(latencies),
            pause_latency_s={
                "mean": round(statistics.mean(latencies), 4),
                "max": round(max(latencies), 4),
                "reported_by_trainer_max": round(max(reported), 4),
            },
            latency_over_its_step_max=round(max(of_step), 3),
            latency_max_over_step_median=round(max(latencies) / statistics.median(steps), 3),
            same_lora_as_unpaused=lora_equal(reference.path / last, run.path / last),
        )
        if generator is not None:
            idle = report["generate_idle_gpu"]
            for case, results in generations.items():
                if not results:
                    continue
                seconds = statistics.median(r["seconds"] for r in results)
                entry = {"seconds": seconds, "time_vs_idle": round(seconds / idle["seconds"], 3)}
                for key in ("own_peak_gb", "device_peak_used_gb"):
                    entry[key] = max(r[key] for r in results)
                report[f"generate_{case}"] = entry
    return report


def main(argv=None) -> int:
    print(json.dumps(measure(parse_args(argv)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rollouts overlapped with server scoring: seconds per training iteration with the judge
behind ``paco serve-judge``, scoring after the rollouts (sequential) against scoring each
micro-batch while the next one rolls out (overlapped), side by side in one run.

The script starts ``paco serve-judge`` on the tiny judge (or uses ``--judge-url``, e.g. a
vLLM server), then trains one tiny FLUX run whose consistency reward asks that server,
alternating the two modes iteration by iteration (same trainer, so the same models and
caches), and prints the median seconds per iteration of each and the ratio.

Usage:
    python -m bench.overlap_scoring                                   # CPU: tiny FLUX + paco serve-judge (tiny judge)
    python -m bench.overlap_scoring --device cuda --judge-device cuda  # both on the GPU
    python -m bench.overlap_scoring --device cuda --judge-url http://127.0.0.1:8000 --server-model PaCo-Reward-7B
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from paco_core.families import FLUX

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = (
    "FOUR-PANEL Images with a 2x2 grid layout a red fox in a snowy forest. [TOP]-[LEFT]:The fox sits on a log. "
    "[TOP]-[RIGHT]:The fox leaps over a stream. [BOTTOM]-[LEFT]:The fox sleeps. [BOTTOM]-[RIGHT]:The fox watches the moon."
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="training device")
    parser.add_argument("--judge-device", default="cpu", help="device of the started paco serve-judge")
    parser.add_argument("--judge-url", default=None, help="use this judge server instead of starting one")
    parser.add_argument(
        "--server-model", default="tiny-judge", help="with --judge-url: the served model name"
    )
    parser.add_argument(
        "--top-logprobs", type=int, default=None, help="default: the tiny judge's vocabulary; 20 for a URL"
    )
    parser.add_argument("--model", default=None, help="FLUX pipeline folder (default: the tiny FLUX)")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per mode")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads of the trainer and of the started server (CPU runs)",
    )
    parser.add_argument("--json-out", type=Path, default=None)
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen | None, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"paco serve-judge exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no judge server answered at {url}")


def main(argv=None) -> int:
    import torch

    from paco_core.config import config_from_dict
    from paco_core.rl.config import TrainConfig
    from paco_core.rl.trainer import GrpoTrainer
    from paco_core.testing import build_tiny_model, default_cache_dir

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model = args.model or str(build_tiny_model(FLUX.kind, default_cache_dir()))
    server = None
    url = args.judge_url
    top_logprobs = args.top_logprobs or 20
    if url is None:
        judge = build_tiny_model("judge", default_cache_dir())
        vocab = json.loads((judge / "config.json").read_text())
        vocab_size = int(vocab.get("text_config", vocab).get("vocab_size") or vocab["vocab_size"])
        top_logprobs = args.top_logprobs or vocab_size  # a random judge may rank Yes/No anywhere
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        env["OMP_NUM_THREADS"] = str(args.threads)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paco_core.cli",
                "serve-judge",
                "--judge",
                str(judge),
                "--port",
                str(port),
                "--device",
                args.judge_device,
                "--model-name",
                args.server_model,
                "--max-logprobs",
                str(top_logprobs),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        wait_for_server(url, server)
        work = Path(tempfile.mkdtemp(prefix="paco-overlap-"))
        (work / "prompts.jsonl").write_text(json.dumps({"prompt": PROMPT, "layout": "2x2"}) + "\n")
        config = config_from_dict(
            TrainConfig,
            {
                "model": {"kind": FLUX.kind, "path": model, "device": args.device},
                "lora": {"rank": 8, "alpha": 16},
                "sampling": {
                    "num_steps": args.steps,
                    "noise_steps": [1],
                    "train_resolution": args.resolution,
                    "group_size": args.group_size,
                    "batch_size": args.batch_size,
                    "prompts_per_iteration": 1,
                    "max_sequence_length": 64,
                },
                "data": {"train_file": str(work / "prompts.jsonl"), "eval_fraction": 0.0},
                "rewards": {
                    "rewards": [{"name": "consistency"}],
                    "aggregation": "weighted_sum",
                    "judge_url": url,
                    "judge_server_model": args.server_model,
                    "judge_top_logprobs": top_logprobs,
                },
                "ema": {"use_ema": False},
                "output_dir": str(work / "run"),
                "eval_every": 0,
                "num_iterations": 10**6,
                "checkpoint_every": 10**6,
            },
        )
        trainer = GrpoTrainer(config)
        trainer.check_config()
        trainer.setup()
        times: dict[bool, list[float]] = {False: [], True: []}
        parts: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        trainer.run_iteration(0)  # warm-up
        step = 1
        for _ in range(args.iterations):
            for overlap in (False, True):
                trainer.config.rewards.overlap_scoring = overlap
                started = time.perf_counter()
                metrics = trainer.run_iteration(step)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[overlap].append(time.perf_counter() - started)
                parts[overlap].append((metrics["time/rollout_s"], metrics["time/reward_s"]))
                step += 1
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    micro = args.group_size // args.batch_size
    print(
        f"training on {args.device}, judge server {url} ({'paco serve-judge, ' + args.judge_device if server else 'given'}); "
        f"G={args.group_size}, {micro} micro-batches of {args.batch_size}, {args.resolution} px, {args.steps} steps"
    )
    print(f"{'mode':>10} {'s/iter':>8} {'rollout s':>10} {'wait for rewards s':>19}")
    result = {}
    for overlap in (False, True):
        name = "overlapped" if overlap else "sequential"
        seconds = statistics.median(times[overlap])
        rollout = statistics.median(p[0] for p in parts[overlap])
        reward = statistics.median(p[1] for p in parts[overlap])
        result[name] = {"seconds_per_iteration": seconds, "rollout_s": rollout, "reward_wait_s": reward}
        print(f"{name:>10} {seconds:>8.3f} {rollout:>10.3f} {reward:>19.3f}")
    ratio = result["sequential"]["seconds_per_iteration"] / result["overlapped"]["seconds_per_iteration"]
    print(
        f"ratio sequential/overlapped: {ratio:.2f} (median of {args.iterations} iterations each, interleaved)"
    )
    if args.json_out:
        args.json_out.write_text(json.dumps({"ratio": ratio, **result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

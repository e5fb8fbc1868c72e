"""Judge throughput: the model card's one-pair-per-forward method against our batched judge.

For sets of N panels (default N = 4 and 8), every unordered pair is scored

- by the reference method of the judge's model card: ``processor(text, images)`` then
  ``model(**inputs).logits[:, -1]``, one pair per forward pass, full logits;
- by ``LocalJudge`` (left-padded batches, last-position logits only, each distinct
  panel's vision encoding computed once and reused), and by ``LocalJudge`` without the
  vision reuse, to show what each part brings;

on the same model, and prints pairs/s of each, the ratio and the largest score difference.

Usage:
    python -m bench.judge_throughput                      # the tiny judge on the CPU
    python -m bench.judge_throughput --judge models/PaCo-Reward-7B --device cuda
    python -m bench.judge_throughput --real-dims          # random Qwen2.5-VL-7B dimensions, bf16, 512 px panels
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse_args(argv=None) -> argparse.Namespace:
    from paco_core.devices import DTYPE_CHOICES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judge", default=None, help="judge folder (default: the tiny judge)")
    parser.add_argument(
        "--real-dims", action="store_true", help="random-weight judge with Qwen2.5-VL-7B dimensions"
    )
    parser.add_argument(
        "--text-layers", type=int, default=None, help="--real-dims: fewer text layers (smoke runs)"
    )
    parser.add_argument(
        "--vision-depth", type=int, default=None, help="--real-dims: fewer vision blocks (smoke runs)"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8], help="panels per set (default 4 8)")
    parser.add_argument(
        "--panel", type=int, default=None, help="panel side in px (default 64; 512 with --real-dims)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per forward pass of our judge")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (the median is kept)")
    parser.add_argument("--device", default=None, help="cpu, cuda ... (default: the GPU if any)")
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPE_CHOICES,
        help="auto: bf16 on a GPU, fp32 on the CPU (--real-dims: bf16)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the results as JSON here")
    return parser.parse_args(argv)


def random_panels(count: int, side: int, seed: int) -> list:
    """``count`` distinct random RGB panels."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(count)]


def load_tiny_or_given_judge(args: argparse.Namespace):
    from paco_core.reward import open_judge

    if args.judge is None:
        from paco_core.testing import build_tiny_model, default_cache_dir

        source = build_tiny_model("judge", default_cache_dir())
    else:
        source = args.judge
    return open_judge(source, dtype=args.dtype, device=args.device, batch_size=args.batch_size, cache_size=0)


def build_real_dims_judge(args: argparse.Namespace):
    """A random-weight Qwen2.5-VL with the 7B dimensions, built directly on the device
    (``paco_core.testing.real_size``), as a ``LocalJudge``."""
    import torch

    from paco_core.devices import resolve_device, resolve_dtype
    from paco_core.reward.local import LocalJudge
    from paco_core.testing.real_size import random_qwen2_5_vl_judge

    device = resolve_device(args.device)
    dtype = resolve_dtype("bf16" if args.dtype == "auto" else args.dtype, device)
    started = time.perf_counter()
    weights = random_qwen2_5_vl_judge(
        device, dtype, text_layers=args.text_layers, vision_depth=args.vision_depth
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    num_params = sum(parameter.numel() for parameter in weights.model.parameters())
    print(f"built random judge: {num_params / 1e9:.2f} B parameters in {time.perf_counter() - started:.1f} s")
    return LocalJudge(
        weights.model, weights.processor, batch_size=args.batch_size, cache_size=0, name=weights.name
    )


def reference_scores(judge, pairs) -> list[float]:
    """The model card's method: one pair per forward pass, full logits, last position."""
    import torch

    from paco_core.reward.local import chat_messages

    model, processor = judge.model, judge.processor
    yes_id, no_id = judge.yes_ids[0], judge.no_ids[0]
    scores = []
    for pair in pairs:
        text = processor.apply_chat_template(
            chat_messages(pair.prompt), tokenize=False, add_generation_prompt=True
        )
        inputs = processor(text=[text], images=[pair.first, pair.second], return_tensors="pt").to(
            judge.device
        )
        with torch.inference_mode():
            logits = model(**inputs).logits[:, -1, :].float()
        scores.append(torch.sigmoid(logits[0, yes_id] - logits[0, no_id]).item())
    return scores


def timed(function: Callable[[], list[float]], repeats: int) -> tuple[float, list[float]]:
    """Median seconds of ``repeats`` runs after one warm-up run, and the last result."""
    result = function()
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations), result


def consistency_pairs(num_panels: int, side: int) -> list:
    """Every unordered pair of ``num_panels`` random panels, with one set-consistency prompt."""
    from itertools import combinations

    from paco_core.reward.backend import PairRequest
    from paco_core.reward.prompts import set_consistency_prompt

    panels = random_panels(num_panels, side, seed=num_panels)
    prompt = set_consistency_prompt("a red fox walking through four seasons")
    return [PairRequest(panels[i], panels[j], prompt) for i, j in combinations(range(num_panels), 2)]


def bench_size(judge, num_panels: int, side: int, repeats: int) -> dict:
    pairs = consistency_pairs(num_panels, side)

    def ours(reuse_vision: bool) -> Callable[[], list[float]]:
        def run() -> list[float]:
            judge.reuse_vision = reuse_vision
            return judge.score_pairs(pairs)

        return run

    reference_s, reference = timed(lambda: reference_scores(judge, pairs), repeats)
    no_reuse_s, no_reuse = timed(ours(False), repeats)
    ours_s, batched = timed(ours(True), repeats)
    return {
        "panels": num_panels,
        "pairs": len(pairs),
        "reference_pairs_per_s": len(pairs) / reference_s,
        "batched_no_vision_reuse_pairs_per_s": len(pairs) / no_reuse_s,
        "ours_pairs_per_s": len(pairs) / ours_s,
        "ratio": reference_s / ours_s,
        "max_abs_diff": max(abs(a - b) for a, b in zip(batched, reference, strict=True)),
        "max_abs_diff_no_reuse": max(abs(a - b) for a, b in zip(no_reuse, reference, strict=True)),
    }


def open_bench_judge(args: argparse.Namespace) -> tuple:
    """(judge, panel side, device name) the arguments ask for; prints what was opened."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    judge = build_real_dims_judge(args) if args.real_dims else load_tiny_or_given_judge(args)
    side = args.panel or (512 if args.real_dims else 64)
    device_name = torch.cuda.get_device_name(judge.device) if judge.device.type == "cuda" else "CPU"
    print(
        f"judge: {judge.name} on {device_name} ({judge.dtype}), panels {side}x{side}, batch size "
        f"{judge.batch_size}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    return judge, side, device_name


def write_results(path: Path, judge, device_name: str, side: int, rows: list[dict]) -> None:
    meta = {"judge": judge.name, "device": device_name, "dtype": str(judge.dtype), "panel": side}
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    judge, side, device_name = open_bench_judge(args)
    header = f"{'N':>3} {'pairs':>5} {'reference/s':>12} {'batched/s':>10} {'ours/s':>10} {'ratio':>6} {'max|diff|':>10}"
    print(header)
    rows = []
    for num_panels in args.sizes:
        row = bench_size(judge, num_panels, side, args.repeats)
        rows.append(row)
        print(
            f"{row['panels']:>3} {row['pairs']:>5} {row['reference_pairs_per_s']:>12.2f} "
            f"{row['batched_no_vision_reuse_pairs_per_s']:>10.2f} {row['ours_pairs_per_s']:>10.2f} "
            f"{row['ratio']:>6.2f} {row['max_abs_diff']:>10.2e}"
        )
    print(
        "reference = one pair per forward pass with full logits (model card); batched = our batches without"
    )
    print("vision reuse; ours = batches + last-position logits + each panel's vision encoding once.")
    if args.json_out:
        write_results(args.json_out, judge, device_name, side, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

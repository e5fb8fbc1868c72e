"""The most consistent set from a pool against best-of-N, at the same generation budget.

For each of ``--seeds`` seeds, K candidate sets of the same panels are generated once
(seeds ``seed*K .. seed*K+K-1``); side by side on those same K sets:

- ``best-of-N``: the judge scores each whole set (K * N(N-1)/2 questions), the best is kept;
- ``pool``: the judge scores every pair of panels across the sets (K^2 * N(N-1)/2
  questions, each panel encoded once) and one candidate per panel is chosen
  (``paco_core.consistency.assemble_from_pool``).

The generation is shared, so the budget is equal by construction. It prints, per seed and
overall: how often the assembled set scores higher than the best whole set, by how much
(mean and largest gain, the mean score ratio), and the judge's cost ratio (questions and
seconds). Tiny models on the CPU by default (their scores are noise around 0.3: the figures
show the machinery and the cost, not a real gain); ``--flux`` and ``--judge`` take real ones.

Usage:
    python -m bench.consistency_pool                 # tiny models, 20 seeds, K=4, 2x2
    python -m bench.consistency_pool --candidates 3 --layout 1x3 --seeds 5
    python -m bench.consistency_pool --flux models/FLUX.1-dev --judge models/PaCo-Reward-7B --panel 512 --steps 28
"""

from __future__ import annotations

import argparse
import statistics
import time

from paco_core.families import FLUX


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="pools to compare (default 20)")
    parser.add_argument("--candidates", type=int, default=4, help="K: candidate sets per pool (default 4)")
    parser.add_argument("--layout", default="2x2", help="panels of each set (default 2x2)")
    parser.add_argument("--panel", type=int, default=32, help="panel side in pixels (default 32)")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps (default 2)")
    parser.add_argument("--flux", default=None, help="a FLUX.1-dev folder (default: the tiny model)")
    parser.add_argument("--judge", default=None, help="a judge folder (default: the tiny judge)")
    parser.add_argument("--device", default="auto", help="device of the pipeline and judge")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from paco_core.consistency.pool import assemble_from_pool
    from paco_core.generate import SetRequest, generate_sets
    from paco_core.models.pipelines import load_pipeline
    from paco_core.prompts import parse_layout
    from paco_core.reward import open_judge
    from paco_core.reward.scoring import rank_sets
    from paco_core.testing import ensure_tiny_models

    args = parse_args(argv)
    tiny = ensure_tiny_models() if not (args.flux and args.judge) else {}
    flux = load_pipeline(args.flux or tiny[FLUX.kind], device=args.device)
    judge = open_judge(args.judge or tiny["judge"], device=args.device)
    layout = parse_layout(args.layout)
    panels = tuple(f"scene {index + 1}" for index in range(layout.num_panels))
    theme = "a red fox"
    rows, gains, ratios, judge_ratio = [], [], [], []
    print(f"K={args.candidates} sets of {layout.num_panels} panels ({args.layout}), {args.seeds} seeds")
    print(
        f"{'seed':>4} {'best-of-N':>10} {'assembled':>10} {'gain':>8} {'search':>7} {'s best':>7} {'s pool':>7}"
    )
    for seed in range(args.seeds):
        request = SetRequest(
            theme=theme,
            panels=panels,
            layout=args.layout,
            panel_width=args.panel,
            panel_height=args.panel,
            steps=args.steps,
            seed=seed * args.candidates,
        )
        candidates = [item.panels for item in generate_sets(flux, request, num_sets=args.candidates)]
        judge.cache.clear()
        start = time.perf_counter()
        ranking = rank_sets(judge, candidates, theme)
        best_s = time.perf_counter() - start
        judge.cache.clear()
        start = time.perf_counter()
        result = assemble_from_pool(judge, candidates, theme)
        pool_s = time.perf_counter() - start
        best = ranking[0].score
        gains.append(result.score - best)
        ratios.append(result.score / best)
        judge_ratio.append(pool_s / best_s)
        rows.append(result)
        print(
            f"{seed:>4} {best:>10.4f} {result.score:>10.4f} {result.score - best:>+8.4f} {result.search:>7} "
            f"{best_s:>7.2f} {pool_s:>7.2f}"
        )
    higher = sum(gain > 1e-9 for gain in gains)
    pairs = layout.num_panels * (layout.num_panels - 1) // 2
    print()
    print(f"assembled set higher than best-of-{args.candidates}: {higher} of {args.seeds} pools")
    print(
        f"gain: mean {statistics.mean(gains):+.4f}, largest {max(gains):+.4f}, never below 0: {min(gains) >= -1e-9}"
    )
    print(f"score ratio assembled / best-of-N: mean {statistics.mean(ratios):.4f}x")
    print(
        f"judge questions per pool: {args.candidates**2 * pairs} vs {args.candidates * pairs} "
        f"({args.candidates:.0f}x); judge time ratio pool / best-of-N: median {statistics.median(judge_ratio):.2f}x"
    )
    print("generation: the same K sets for both (equal budget)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Edit chains with and without the drift guard: consistency with the origin, and the cost.

For each of ``--seeds`` seeds, one origin picture (drawn, different per seed) is edited by a
chain of ``--instructions`` steps, side by side:

- ``plain``: the chain as ``paco edit`` makes it (``guarded_edit_chain`` with threshold 0,
  which is the plain chain, pixel for pixel, judged at every step);
- ``guarded``: the same chain with the guard (``--threshold``, ``--tries``, re-anchoring).

The threshold defaults to the median guard score of the plain chains' steps (so about half
of the steps are below it): the tiny judge's scores sit around 0.3, where a fixed real-model
threshold would retry every step. It prints, per seed and overall: the mean consistency of
the chain's steps with the origin, plain and guarded, their ratio, the worst step of each,
how often the guarded chain is at least as consistent, and the cost ratios (edits, judge
questions, seconds).

Usage:
    python -m bench.edit_chain_guard                     # tiny Kontext and judge, CPU, 20 seeds
    python -m bench.edit_chain_guard --seeds 5 --tries 2 --threshold 0.3
    python -m bench.edit_chain_guard --kontext models/FLUX.1-Kontext-dev --judge models/PaCo-Reward-7B \\
        --side 1024 --steps 28 --threshold 0.6
"""

from __future__ import annotations

import argparse
import statistics
import time

from paco_core.families import FLUX_KONTEXT

INSTRUCTIONS = (
    "Change the season to winter and cover the ground with fresh snow.",
    "Make it night, lit by warm lantern light.",
    "Add a red scarf to the fox.",
    "Turn the picture into a watercolor painting.",
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="chains to compare (default 20)")
    parser.add_argument("--instructions", type=int, default=3, help="steps per chain, 1..4 (default 3)")
    parser.add_argument("--threshold", type=float, default=None, help="guard threshold (default: see above)")
    parser.add_argument("--tries", type=int, default=3, help="tries per step (default 3)")
    parser.add_argument("--side", type=int, default=48, help="origin side in pixels (default 48)")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps per edit (default 2)")
    parser.add_argument("--kontext", default=None, help="a FLUX.1-Kontext-dev folder (default: tiny)")
    parser.add_argument("--judge", default=None, help="a judge folder (default: the tiny judge)")
    parser.add_argument("--device", default="auto", help="device of the pipeline and judge")
    return parser.parse_args(argv)


def drawn_origin(seed: int, side: int):
    """A simple drawn picture (sky, sun, hill) that differs per seed."""
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", (side, side), (rng.randint(80, 140), rng.randint(150, 200), 230))
    draw = ImageDraw.Draw(image)
    sun = rng.randint(side // 8, side // 4)
    x, y = rng.randint(sun, side - sun), rng.randint(sun, side // 2)
    draw.ellipse((x - sun, y - sun, x + sun, y + sun), fill=(255, rng.randint(170, 220), 60))
    draw.ellipse((-side // 3, side // 2, side + side // 3, side * 2), fill=(70, rng.randint(120, 170), 80))
    return image


def main(argv=None) -> int:
    from paco_core.consistency.drift import GuardOptions, guarded_edit_chain
    from paco_core.generate import EditOptions
    from paco_core.models.pipelines import load_pipeline
    from paco_core.reward import open_judge
    from paco_core.testing import ensure_tiny_models

    args = parse_args(argv)
    tiny = ensure_tiny_models() if not (args.kontext and args.judge) else {}
    kontext = load_pipeline(args.kontext or tiny[FLUX_KONTEXT.kind], device=args.device)
    judge = open_judge(args.judge or tiny["judge"], device=args.device)
    instructions = list(INSTRUCTIONS[: args.instructions])

    def chain(seed: int, guard: GuardOptions):
        options = EditOptions(steps=args.steps, seed=seed * 100)
        start = time.perf_counter()
        result = guarded_edit_chain(
            kontext, judge, drawn_origin(seed, args.side), instructions, options, guard
        )
        return result, time.perf_counter() - start

    plain = [chain(seed, GuardOptions(threshold=0.0)) for seed in range(args.seeds)]
    steps = [step.chosen.guard_score for result, _ in plain for step in result.steps]
    threshold = args.threshold if args.threshold is not None else statistics.median(steps)
    guard = GuardOptions(threshold=threshold, tries=args.tries, reanchor=True)
    guarded = [chain(seed, guard) for seed in range(args.seeds)]

    print(
        f"{args.seeds} chains of {len(instructions)} steps; guard: threshold {threshold:.4f}, {args.tries} tries"
    )
    print(
        f"{'seed':>4} {'plain':>8} {'guarded':>8} {'ratio':>7} {'worst p':>8} {'worst g':>8} {'edits':>6} {'re-anch':>7}"
    )
    ratios, at_least, worst_plain, worst_guarded = [], 0, [], []
    for seed, ((p, _), (g, _)) in enumerate(zip(plain, guarded, strict=True)):
        ratios.append(g.mean_origin_score / p.mean_origin_score)
        at_least += g.mean_origin_score >= p.mean_origin_score - 1e-9
        worst_plain.append(min(p.origin_scores))
        worst_guarded.append(min(g.origin_scores))
        reanchored = sum(step.reanchored for step in g.steps)
        print(
            f"{seed:>4} {p.mean_origin_score:>8.4f} {g.mean_origin_score:>8.4f} {ratios[-1]:>6.3f}x "
            f"{worst_plain[-1]:>8.4f} {worst_guarded[-1]:>8.4f} {g.num_edits:>6} {reanchored:>7}"
        )

    def total(results, name):
        return sum(getattr(result, name) for result, _ in results)

    seconds_plain, seconds_guarded = sum(s for _, s in plain), sum(s for _, s in guarded)
    print()
    print(
        f"consistency with the origin (mean over steps): plain {statistics.mean(r.mean_origin_score for r, _ in plain):.4f}, "
        f"guarded {statistics.mean(r.mean_origin_score for r, _ in guarded):.4f}, ratio {statistics.mean(ratios):.4f}x"
    )
    print(
        f"worst step: plain {statistics.mean(worst_plain):.4f}, guarded {statistics.mean(worst_guarded):.4f} "
        f"(mean over chains); guarded at least as consistent in {at_least} of {args.seeds} chains"
    )
    print(
        f"cost ratio guarded / plain: edits {total(guarded, 'num_edits') / total(plain, 'num_edits'):.2f}x, "
        f"judge questions {total(guarded, 'num_questions') / total(plain, 'num_questions'):.2f}x, "
        f"time {seconds_guarded / seconds_plain:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

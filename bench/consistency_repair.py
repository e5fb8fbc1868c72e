"""Judge calls and generation steps per repair round, measured on the tiny models (CPU).

For several seeds: a 2x2 set is generated, then repaired (target 0.99, so every round runs)
with K tries per round. Per round it prints the pairs the judge really scored (cache misses:
a try's pairs that do not involve the new panel are the same images, answered from the score
cache) against what judging each try's whole set would ask (K x N(N-1)/2), and the denoising
steps run (K x steps x strength). The time per round is split into the judge's (timed around its calls) and the rest.

Run:
    python -m bench.consistency_repair [--seeds 5] [--tries 3] [--rounds 3] [--steps 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.tiny_flux import add_tiny_flux_arguments, load_tiny_flux


class TimedJudge:
    """A judge that adds up the seconds spent in ``score_pairs`` (everything else passes through)."""

    def __init__(self, judge):
        self.judge, self.seconds = judge, 0.0

    def score_pairs(self, pairs, hooks=None):
        started = time.perf_counter()
        try:
            return self.judge.score_pairs(pairs) if hooks is None else self.judge.score_pairs(pairs, hooks)
        finally:
            self.seconds += time.perf_counter() - started

    def __getattr__(self, name):
        return getattr(self.judge, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="sets repaired (seeds 0..N-1)")
    parser.add_argument("--tries", type=int, default=3, help="tries per round (K)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per repair")
    parser.add_argument("--strength", type=float, default=1.0, help="how much of the panel is redrawn")
    add_tiny_flux_arguments(parser, "denoising steps per try")
    args = parser.parse_args(argv)

    from paco_core.consistency.repair import RepairOptions, repair_set
    from paco_core.generate import SetRequest, generate_sets
    from paco_core.reward import open_judge

    models, flux = load_tiny_flux(args.threads)
    prompts = ("in snow", "in a forest", "by a fence", "on a hill")
    num_panels = len(prompts)
    naive_pairs = args.tries * num_panels * (num_panels - 1) // 2
    pairs, steps, generation_s, judge_s, gains = [], [], [], [], []
    for seed in range(args.seeds):
        request = SetRequest(
            theme="a red fox.",
            panels=prompts,
            panel_width=args.panel,
            panel_height=args.panel,
            steps=args.steps,
            seed=seed,
        )
        [made] = generate_sets(flux, request)
        judge = TimedJudge(open_judge(models["judge"]))
        started = time.perf_counter()
        result = repair_set(
            flux,
            judge,
            made.panels,
            "a red fox.",
            layout="2x2",
            panel_prompts=prompts,
            options=RepairOptions(
                target_score=0.99,
                tries_per_round=args.tries,
                max_rounds=args.rounds,
                steps=args.steps,
                strength=args.strength,
                seed=100 * seed,
            ),
        )
        total = time.perf_counter() - started
        for log in result.rounds:
            pairs.append(log.judge_pairs)
            steps.append(log.generation_steps)
        generation_s.append((total - judge.seconds) / len(result.rounds))
        judge_s.append(judge.seconds / len(result.rounds))
        gains.append(result.score_after.score - result.score_before.score)
    print(
        f"tiny FLUX + tiny judge, 2x2 of {args.panel}px, K={args.tries} tries, {args.rounds} rounds, "
        f"{args.steps} steps x strength {args.strength}, {args.seeds} seeds"
    )
    print(
        f"judge pairs per round: {statistics.mean(pairs):.1f} (whole sets: {naive_pairs}); "
        f"ratio {statistics.mean(pairs) / naive_pairs:.2f}"
    )
    print(f"denoising steps per round: {statistics.mean(steps):.1f} (K x steps x strength)")
    print(
        f"seconds per round (median): judge {statistics.median(judge_s):.3f}, generation and the rest "
        f"{statistics.median(generation_s):.3f}"
    )
    print(f"set score gain per repair: mean {statistics.mean(gains):+.4f}, min {min(gains):+.4f} (never < 0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Judge prefix sharing: today's local backend against the same backend with prefix sharing.

For sets of N panels (default N = 4 and 8) every unordered pair is scored by the same
``LocalJudge``, side by side in one run:

- ``plain``: today's path (left-padded batches, last-position logits, each panel's vision
  encoding once);
- ``shared``: the same plus prefix sharing (the system text + first image go through the
  language model once per first panel; suffixes run on the prefix's key/value cache, in
  equal-length batches without padding).

It prints pairs/s of both, the ratio and the largest score difference.

Usage:
    python -m bench.judge_prefix_sharing                          # tiny judge, CPU
    python -m bench.judge_prefix_sharing --real-dims --device cuda  # random Qwen2.5-VL-7B dims, bf16, 512 px panels
    python -m bench.judge_prefix_sharing --judge models/PaCo-Reward-7B --device cuda

All the options of ``bench/judge_throughput.py`` (--real-dims, --text-layers, --panel,
--batch-size, --repeats, --dtype, --threads ...) are accepted.
"""

from __future__ import annotations

import sys

from bench import judge_throughput as base


def tokens_computed(judge, score) -> int:
    """Token positions the language model computes in one call (read at its input embedding)."""
    seen = []
    handle = judge.model.get_input_embeddings().register_forward_hook(
        lambda module, args, output: seen.append(args[0].numel())
    )
    try:
        score()
    finally:
        handle.remove()
    return sum(seen)


def bench_size(judge, num_panels: int, side: int, repeats: int) -> dict:
    pairs = base.consistency_pairs(num_panels, side)

    def run(sharing: bool):
        def score() -> list[float]:
            judge.prefix_sharing = sharing
            return judge.score_pairs(pairs)

        return score

    plain_s, plain = base.timed(run(False), repeats)
    shared_s, shared = base.timed(run(True), repeats)
    plain_tokens, shared_tokens = tokens_computed(judge, run(False)), tokens_computed(judge, run(True))
    return {
        "panels": num_panels,
        "pairs": len(pairs),
        "plain_tokens": plain_tokens,
        "shared_tokens": shared_tokens,
        "plain_pairs_per_s": len(pairs) / plain_s,
        "shared_pairs_per_s": len(pairs) / shared_s,
        "ratio": plain_s / shared_s,
        "max_abs_diff": max(abs(a - b) for a, b in zip(shared, plain, strict=True)),
    }


def main(argv=None) -> int:
    args = base.parse_args(argv)
    judge, side, device_name = base.open_bench_judge(args)
    judge.reuse_vision = True
    print(
        f"{'N':>3} {'pairs':>5} {'plain/s':>9} {'shared/s':>9} {'ratio':>6} {'max|diff|':>10} "
        f"{'LM tokens plain':>15} {'shared':>7} {'ratio':>6}"
    )
    rows = []
    for num_panels in args.sizes:
        row = bench_size(judge, num_panels, side, args.repeats)
        rows.append(row)
        print(
            f"{row['panels']:>3} {row['pairs']:>5} {row['plain_pairs_per_s']:>9.2f} "
            f"{row['shared_pairs_per_s']:>9.2f} {row['ratio']:>6.2f} {row['max_abs_diff']:>10.2e} "
            f"{row['plain_tokens']:>15} {row['shared_tokens']:>7} {row['plain_tokens'] / row['shared_tokens']:>6.2f}"
        )
    print("plain = today's backend (batches + last-position logits + vision once); shared = plain + prefix")
    print("sharing (system text + first image once per first panel, equal-length batches, no padding).")
    print("LM tokens: token positions the language model computes per call (padding included).")
    if args.json_out:
        base.write_results(args.json_out, judge, device_name, side, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

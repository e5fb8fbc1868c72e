"""The extra time of a reference-anchored set against a plain set, both judged.

Side by side in one process, on the tiny models (CPU), alternating which runs first:

- plain: ``generate_sets`` (one grid of the layout) + ``score_set`` of its panels;
- reference: ``generate_reference_set`` (grid path: the reference fitted into cell 1, the other
  cells denoised in context by ``FluxInpaintPipeline`` from the same weights, the reference
  re-imposed every step) + its judge call over all cells (done inside the function).

Both run the same steps at the same size, and the judge scores the same number of pairs.
Goal: reference / plain <= 1.2 (the extra work: fitting the reference, encoding the grid into
latents for the kept cells, the per-step re-imposition, pasting the cells back). The judge
starts each run with an empty score cache, so neither side gains from it.

Run:
    python -m bench.reference_set_overhead [--repeats 7] [--steps 4] [--panel 64]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.tiny_flux import add_tiny_flux_arguments, load_tiny_flux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each (median reported)")
    add_tiny_flux_arguments(parser, "denoising steps")
    args = parser.parse_args(argv)

    import numpy as np
    from PIL import Image

    from paco_core.consistency.reference_sets import ReferenceSetRequest, generate_reference_set
    from paco_core.generate import SetRequest, generate_sets
    from paco_core.reward import open_judge
    from paco_core.reward.scoring import score_set

    models, flux = load_tiny_flux(args.threads)
    theme, prompts = "Mia, a courier.", ("she runs", "she eats", "she sleeps")
    reference = Image.fromarray((np.random.default_rng(0).random((90, 70, 3)) * 255).astype(np.uint8))
    common = {
        "panel_width": args.panel,
        "panel_height": args.panel,
        "steps": args.steps,
        "seed": 1,
        "layout": "2x2",
    }
    plain_request = SetRequest(theme=theme, panels=(theme, *prompts), **common)
    reference_request = ReferenceSetRequest(theme=theme, panels=prompts, judge_theme_source="theme", **common)

    judge = open_judge(models["judge"])

    def plain() -> None:
        judge.cache.clear()
        [made] = generate_sets(flux, plain_request)
        score_set(judge, made.panels, theme)

    def anchored() -> None:
        judge.cache.clear()
        generate_reference_set(flux, judge, [reference], reference_request)

    runs = {"plain": plain, "reference": anchored}
    for run in runs.values():  # warm-up (first calls build the inpaint pipeline, allocate)
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(args.repeats):
        order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for name in order:
            started = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - started)
    plain_s, reference_s = statistics.median(times["plain"]), statistics.median(times["reference"])
    print(
        f"tiny FLUX + tiny judge, 2x2 of {args.panel}px, {args.steps} steps, {args.threads} thread(s), "
        f"median of {args.repeats}"
    )
    print(f"plain set + judge:      {plain_s * 1000:8.1f} ms")
    print(f"reference set + judge:  {reference_s * 1000:8.1f} ms")
    ratio = reference_s / plain_s
    print(f"ratio reference / plain: {ratio:.3f} (goal <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The shipped workflow "the most consistent set from a pool" (data for tools/workflow_convert.py).

FLUX.1-dev with the PaCo LoRA draws 4 candidate sets of the same 4 panels (seeds 42..45);
PaCo Most Consistent Set From a Pool scores every pair of panels across the candidates once
and keeps, per panel, the candidate that makes the most consistent set; the assembled grid
is saved; the choice picture shows every candidate (with its own score, what best-of-N
ranks) with the chosen panels framed; the pair heatmaps and the report compare the assembled
set with the best whole set.
"""

from __future__ import annotations

POOL_WORKFLOW = "paco-pool"
NUM_CANDIDATES = 4


def pool_workflow(layouts: dict) -> dict:
    """Generate 4 candidate sets -> assemble the most consistent set -> save it, show the rest."""
    from workflow_convert import (
        FOX_DESCRIPTION,
        FOX_PANELS,
        FOX_THEME,
        GROUP_COLORS,
        WorkflowBuilder,
        _flux_with_paco_lora,
        _models_note,
    )

    builder = WorkflowBuilder(layouts)
    loader, lora = _flux_with_paco_lora(builder)
    judge = builder.add("PaCoJudgeLoader", 0, judge_name="PaCo-Reward-7B")
    _models_note(builder, 1)
    generate = builder.add(
        "PaCoGenerateSet", 1, theme=FOX_THEME, description=FOX_DESCRIPTION, panels=FOX_PANELS, layout="2x2",
        panel_width=512, panel_height=512, steps=28, guidance=3.5, seed=42, num_sets=NUM_CANDIDATES,
    )  # fmt: skip
    pool = builder.add("PaCoPoolAssemble", 2, layout="2x2", both_orders=False)
    report = builder.add("PreviewAny", 2, title="Report (assembled vs best of 4)")
    heatmaps = builder.add("PreviewImage", 2, title="Pair scores: assembled, best whole set")
    assembled = builder.add("SaveImage", 3, title="Assembled set", filename_prefix="PaCo/pool_assembled")
    choice = builder.add("PreviewImage", 3, title="Every candidate; the chosen panels framed", height=460)

    builder.connect(lora, "pipeline", generate, "pipeline")
    builder.connect(judge, "judge", pool, "judge")
    builder.connect(generate, "grids", pool, "images")
    builder.connect(generate, "judge_theme", pool, "theme")
    builder.connect(pool, "report", report, "source")
    builder.connect(pool, "grid", assembled, "images")
    builder.connect(pool, "choice_picture", choice, "images")
    builder.connect(pool, "heatmaps", heatmaps, "images")

    builder.group("1. Models", [loader, lora, judge], GROUP_COLORS["models"])
    builder.group(f"2. Generate {NUM_CANDIDATES} candidate sets", [generate], GROUP_COLORS["generate"])
    builder.group("3. One candidate per panel", [pool, report, heatmaps], GROUP_COLORS["judge"])
    builder.group("4. The assembled set", [assembled, choice], GROUP_COLORS["output"])
    return builder.build(POOL_WORKFLOW)


POOL_TITLE = "Most consistent set from a pool"
"""The pool workflow's thumbnail headline (tools/workflow_results.py)."""


def pool_card(title: str, caption: str, result):
    """The result card: the choice picture (every candidate in a row, the chosen panels framed,
    the assembled set last) with the assembled score against best-of-4 above it."""
    from workflow_results import LABEL_HEIGHT, Card, fitted, open_image

    report = result.text_of("PreviewAny").splitlines()
    headline = report[0].split(" from ")[0] if report else ""
    against = next((line for line in report if line.startswith("best whole set")), "")
    against = against.replace("best whole set (best-of-4): ", "best whole set of 4: ")
    card = Card(title, caption, [line for line in (headline, against) if line])
    left, top, width, height = card.area
    shown = result.images_from("PaCoPoolAssemble", 4)
    if shown:
        image = fitted(open_image(shown[0]), (width, height - LABEL_HEIGHT))
        x, y = left + (width - image.width) // 2, top + (height - LABEL_HEIGHT - image.height) // 2
        card.paste(image, x, y, "chosen panels framed; the assembled set last")
    return card

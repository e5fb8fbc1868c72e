"""The consistency tools' pictures: docs/images/consistency-*.png and the reports beside them,
made by running the tools on the tiny random-weight models (CPU, a few seconds). The two
workflows' thumbnails are result cards from a ComfyUI run (tools/workflow_results.py).

The tiny models draw coloured noise and their judge's scores mean nothing: the pictures show
what the tools output (which cells stay, which panel was redrawn, the heatmaps before and
after), not how good real models are.

Run from the repository root:
    python -m tools.consistency_pictures            # writes docs/images/consistency-*
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from paco_core.families import FLUX

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_IMAGES = REPO_ROOT / "docs" / "images"
PANEL = 64
"""Panel side the tiny models draw at; pictures are scaled up 3x (nearest) to be seen."""
SCALE = 3
BACKGROUND = (245, 245, 245)


def reference_picture(size: int = 96) -> Image.Image:
    """A simple 'character': a red figure with a yellow scarf on blue, drawn with PIL."""
    image = Image.new("RGB", (size, int(size * 1.25)), (60, 110, 190))
    draw = ImageDraw.Draw(image)
    w, h = image.size
    draw.ellipse((w * 0.32, h * 0.08, w * 0.68, h * 0.38), fill=(235, 90, 60))
    draw.rectangle((w * 0.28, h * 0.40, w * 0.72, h * 0.85), fill=(220, 70, 50))
    draw.rectangle((w * 0.26, h * 0.36, w * 0.74, h * 0.45), fill=(250, 210, 60))
    return image


def labelled(image: Image.Image, label: str, scale: int = SCALE) -> Image.Image:
    big = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    font = ImageFont.load_default(size=16)
    canvas = Image.new("RGB", (big.width, big.height + 28), BACKGROUND)
    canvas.paste(big, (0, 28))
    ImageDraw.Draw(canvas).text((4, 4), label, fill=(0, 0, 0), font=font)
    return canvas


def outline_cells(grid: Image.Image, cells, color, layout_cols: int = 2) -> Image.Image:
    grid = grid.copy()
    draw = ImageDraw.Draw(grid)
    for cell in cells:
        row, col = divmod(cell, layout_cols)
        draw.rectangle(
            (col * PANEL, row * PANEL, (col + 1) * PANEL - 1, (row + 1) * PANEL - 1), outline=color, width=2
        )
    return grid


def side_by_side(images, gap: int = 16) -> Image.Image:
    width = sum(image.width for image in images) + gap * (len(images) - 1)
    height = max(image.height for image in images)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    left = 0
    for image in images:
        canvas.paste(image, (left, 0))
        left += image.width + gap
    return canvas


def make_pictures(out_images: Path = DOCS_IMAGES) -> list[Path]:
    import torch

    from paco_core.consistency.reference_sets import ReferenceSetRequest, generate_reference_set
    from paco_core.consistency.repair import RepairOptions, repair_set
    from paco_core.consistency.report import format_reference_report, format_repair_report
    from paco_core.generate import SetRequest, generate_sets
    from paco_core.models.pipelines import load_pipeline
    from paco_core.reward import open_judge
    from paco_core.reward.report import render_pair_matrix
    from paco_core.testing import ensure_tiny_models

    torch.set_num_threads(1)
    models = ensure_tiny_models()
    flux, judge = load_pipeline(models[FLUX.kind]), open_judge(models["judge"])
    written = []

    # a set of your character: the reference in cell 1, three panels around it
    reference = reference_picture()
    request = ReferenceSetRequest(
        theme="Mia, a courier in a red coat and a yellow scarf.",
        layout="2x2",
        panel_width=PANEL,
        panel_height=PANEL,
        steps=4,
        seed=1,
        identity_threshold=0.35,
        panels=("she runs through a market", "she reads by a window", "she waves at a train"),
    )
    made = generate_reference_set(flux, judge, [reference], request)
    kept = ", ".join(f"#{c + 1}" for c, k in zip(made.panel_cells, made.keeps_identity, strict=True) if k)
    character = side_by_side(
        [
            labelled(reference, "reference", 1),
            labelled(
                outline_cells(made.grid, made.reference_cells, (40, 200, 40)), "set: cell 1 = reference"
            ),
            labelled(render_pair_matrix(made.set_score, 48), f"judge: keeps identity {kept or 'none'}", 1),
        ]
    )
    written.append(out_images / "consistency-reference-set.png")
    character.save(written[-1])

    # repair the odd panel: a set, then its weakest panel redrawn
    set_request = SetRequest(
        theme="a red fox.",
        panels=("in snow", "in a forest", "by a fence", "on a hill"),
        panel_width=PANEL,
        panel_height=PANEL,
        steps=4,
        seed=3,
    )
    [before] = generate_sets(flux, set_request)
    result = repair_set(
        flux,
        judge,
        before.panels,
        "a red fox.",
        layout="2x2",
        panel_prompts=set_request.panels,
        options=RepairOptions(target_score=0.99, tries_per_round=3, max_rounds=3, steps=4, seed=5),
    )
    changed = result.changed_panels
    repair = side_by_side(
        [
            labelled(before.grid, f"before: {result.score_before.score:.3f}"),
            labelled(
                outline_cells(result.grid, changed, (230, 60, 60)), f"after: {result.score_after.score:.3f}"
            ),
            labelled(render_pair_matrix(result.score_before, 48), "pairs before", 1),
            labelled(render_pair_matrix(result.score_after, 48), "pairs after", 1),
        ]
    )
    written.append(out_images / "consistency-repair.png")
    repair.save(written[-1])

    (out_images / "consistency-repair-log.txt").write_text(
        format_repair_report(result) + "\n", encoding="utf-8"
    )
    (out_images / "consistency-reference-set-report.txt").write_text(
        format_reference_report(made) + "\n", encoding="utf-8"
    )
    written += [
        out_images / "consistency-repair-log.txt",
        out_images / "consistency-reference-set-report.txt",
    ]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    for path in make_pictures():
        print(path.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Pictures of the pool and chain tools' results: which panel came from which candidate, and
each chain step's scores against the origin and the previous image.

Example:
    >>> render_pool_choice(candidates, result).save("choice.png")  # doctest: +SKIP
    >>> render_chain_scores(chain).save("chain_scores.png")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from paco_core.reward.report import BACKGROUND, score_color

if TYPE_CHECKING:
    from PIL import Image

    from paco_core.consistency.drift import GuardedChainResult
    from paco_core.consistency.pool import PoolResult

THUMB_SIDE = 96
LABEL_WIDTH = 120
LABEL_HEIGHT = 24
CHOSEN_COLOR = (40, 170, 60)
BORDER = 4
CELL_WIDTH = 110
CELL_HEIGHT = 36


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def render_pool_choice(candidates: Sequence[Sequence[Image.Image]], result: PoolResult) -> Image.Image:
    """Every candidate's panels in rows, the chosen ones framed in green, the assembled set last.

    Args:
        candidates: the pool as given (K sets of N panels).
        result: what ``assemble_from_pool`` returned for it.

    Returns:
        An RGB image: one row per candidate set (with its own score), then the assembled set.
    """
    from PIL import Image, ImageDraw

    num_panels = len(result.panels)
    width, height = candidates[0][0].size
    scale = THUMB_SIDE / max(width, height)
    thumb = (max(1, round(width * scale)), max(1, round(height * scale)))
    cell = (thumb[0] + 2 * BORDER, thumb[1] + 2 * BORDER)
    rows = [*candidates, result.panels]
    canvas = Image.new(
        "RGB", (LABEL_WIDTH + num_panels * cell[0], LABEL_HEIGHT + len(rows) * cell[1]), BACKGROUND
    )
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    for panel in range(num_panels):
        draw.text(
            (LABEL_WIDTH + panel * cell[0] + cell[0] // 2, LABEL_HEIGHT // 2),
            f"panel {panel + 1}",
            fill=(0, 0, 0),
            font=font,
            anchor="mm",
        )
    for row, panels in enumerate(rows):
        top = LABEL_HEIGHT + row * cell[1]
        assembled = row == len(candidates)
        label = (
            f"assembled {result.score:.3f}"
            if assembled
            else f"set {row + 1}  {result.whole_set_scores[row]:.3f}"
        )
        draw.text((6, top + cell[1] // 2), label, fill=(0, 0, 0), font=font, anchor="lm")
        for panel, image in enumerate(panels):
            left = LABEL_WIDTH + panel * cell[0]
            if not assembled and result.choice[panel] == row:
                draw.rectangle((left, top, left + cell[0] - 1, top + cell[1] - 1), fill=CHOSEN_COLOR)
            canvas.paste(image.convert("RGB").resize(thumb), (left + BORDER, top + BORDER))
    return canvas


def render_chain_scores(result: GuardedChainResult) -> Image.Image:
    """One row per step: its kept try's consistency with the origin, its score against the
    previous image, the guard score and the tries made, each cell coloured red to green.

    Returns:
        An RGB image of the chain's per-step scores.
    """
    from PIL import Image, ImageDraw

    columns = ("vs origin", "vs previous", "guard", "tries")
    canvas = Image.new(
        "RGB",
        (LABEL_WIDTH // 2 + len(columns) * CELL_WIDTH, CELL_HEIGHT * (len(result.steps) + 1)),
        BACKGROUND,
    )
    draw = ImageDraw.Draw(canvas)
    font = _font(13)
    for column, title in enumerate(columns):
        left = LABEL_WIDTH // 2 + column * CELL_WIDTH
        draw.text((left + CELL_WIDTH // 2, CELL_HEIGHT // 2), title, fill=(0, 0, 0), font=font, anchor="mm")
    for row, step in enumerate(result.steps, start=1):
        top = row * CELL_HEIGHT
        draw.text((8, top + CELL_HEIGHT // 2), f"step {row}", fill=(0, 0, 0), font=font, anchor="lm")
        kept = step.chosen
        values = (kept.origin_score.consistency, kept.step_score.overall, kept.guard_score)
        for column, value in enumerate(values):
            left = LABEL_WIDTH // 2 + column * CELL_WIDTH
            box = (left, top, left + CELL_WIDTH - 2, top + CELL_HEIGHT - 2)
            draw.rectangle(box, fill=score_color(value))
            draw.text(
                (left + CELL_WIDTH // 2, top + CELL_HEIGHT // 2),
                f"{value:.3f}",
                fill=(0, 0, 0),
                font=font,
                anchor="mm",
            )
        left = LABEL_WIDTH // 2 + 3 * CELL_WIDTH
        how = f"{len(step.tries)}" + (" re-anchored" if step.reanchored else "")
        draw.text(
            (left + CELL_WIDTH // 2, top + CELL_HEIGHT // 2), how, fill=(0, 0, 0), font=font, anchor="mm"
        )
    return canvas

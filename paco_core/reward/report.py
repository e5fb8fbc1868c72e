"""Human-readable views of judge results: a set score's pair-matrix heatmap and short texts for a
set score, edit scores and a ranking of candidate sets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from paco_core.reward.results import EditScore, RankedSet, SetScore

if TYPE_CHECKING:
    from PIL import Image

EDIT_PARTS = ("consistency", "following", "overall")
CELL_SIZE = 64
LABEL_SIZE = 28
DIAGONAL_COLOR = (200, 200, 200)
BACKGROUND = (255, 255, 255)


def score_color(score: float) -> tuple[int, int, int]:
    """Red (0) through yellow (0.5) to green (1)."""
    score = min(max(score, 0.0), 1.0)
    if score < 0.5:
        return (230, int(60 + 360 * score), 60)
    return (int(230 - 360 * (score - 0.5)), 200, 60)


def render_pair_matrix(result: SetScore, cell_size: int = CELL_SIZE) -> Image.Image:
    """The N x N pair matrix as a heatmap with each score written in its cell.

    Row i, column j shows the score with image i first and image j second; images are
    labelled 1..N; the diagonal is grey.

    Args:
        result: the set score to draw.
        cell_size: the side of one cell in pixels.

    Returns:
        An RGB PIL image of ``LABEL_SIZE + N * cell_size`` pixels per side.
    """
    from PIL import Image, ImageDraw, ImageFont

    count = result.num_images
    side = LABEL_SIZE + count * cell_size
    image = Image.new("RGB", (side, side), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, cell_size // 4))
    for index in range(count):
        offset = LABEL_SIZE + index * cell_size + cell_size // 2
        draw.text((offset, LABEL_SIZE // 2), str(index + 1), fill=(0, 0, 0), font=font, anchor="mm")
        draw.text((LABEL_SIZE // 2, offset), str(index + 1), fill=(0, 0, 0), font=font, anchor="mm")
    for row in range(count):
        for col in range(count):
            value = result.matrix[row][col]
            left, top = LABEL_SIZE + col * cell_size, LABEL_SIZE + row * cell_size
            box = (left, top, left + cell_size - 1, top + cell_size - 1)
            diagonal = math.isnan(value)
            draw.rectangle(box, fill=DIAGONAL_COLOR if diagonal else score_color(value), outline=BACKGROUND)
            label = "-" if diagonal else f"{value:.2f}"
            draw.text(
                (left + cell_size // 2, top + cell_size // 2), label, fill=(0, 0, 0), font=font, anchor="mm"
            )
    return image


def format_set_report(result: SetScore) -> str:
    """A few lines: the set score, each image's score, the odd one out and the weakest pair."""
    theme = f' for "{result.theme}"' if result.theme else ""
    orders = ", both orders" if result.both_orders else ""
    weakest = min(result.pairs, key=lambda pair: pair[2])
    per_image = ", ".join(f"#{index + 1} {score:.3f}" for index, score in enumerate(result.per_image))
    odd = result.odd_one_out
    return "\n".join(
        [
            f"set consistency {result.score:.3f}{theme} ({len(result.pairs)} pairs of {result.num_images} images"
            f"{orders})",
            f"per image: {per_image}",
            f"least consistent image: #{odd + 1} ({result.per_image[odd]:.3f})",
            f"weakest pair: #{weakest[0] + 1} and #{weakest[1] + 1} ({weakest[2]:.3f})",
        ]
    )


def format_edit_report(results: Sequence[EditScore], instructions: Sequence[str]) -> str:
    """One sentence per edit (numbered from 1, like images), and the means for a batch:
    ``edit 1 "make it night": overall 0.818 (consistency 0.912, following 0.734)``."""
    if len(instructions) == 1 and len(results) > 1:
        instructions = list(instructions) * len(results)
    lines = []
    for number, (item, instruction) in enumerate(zip(results, instructions, strict=True), start=1):
        told = f' "{instruction}"' if instruction else ""
        lines.append(
            f"edit {number}{told}: overall {item.overall:.3f} "
            f"(consistency {item.consistency:.3f}, following {item.following:.3f})"
        )
    if len(results) > 1:
        means = [sum(getattr(item, name) for item in results) / len(results) for name in EDIT_PARTS]
        lines.append(
            f"mean of {len(results)} edits: overall {means[2]:.3f} "
            f"(consistency {means[0]:.3f}, following {means[1]:.3f})"
        )
    return "\n".join(lines)


def format_ranking_report(ranking: Sequence[RankedSet], first_seed: int | None = None) -> str:
    """The ranking, best first, sets numbered from 1 in the order given (like images), with
    each set's seed when the candidates came from seeds ``first_seed``, ``first_seed + 1``, ..."""

    def name(item: RankedSet) -> str:
        seed = "" if first_seed is None else f" (seed {first_seed + item.index})"
        return f"set {item.index + 1}{seed}"

    best = ranking[0]
    lines = [f"best: {name(best)}, consistency {best.score:.3f} of {len(ranking)} candidate sets"]
    lines += [f"{item.rank + 1}. {name(item)}: {item.score:.3f}" for item in ranking]
    return "\n".join(lines)

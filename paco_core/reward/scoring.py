"""Set and edit scoring, ranking and reasons on top of any judge backend.

Every function batches all of its questions into one ``score_pairs`` call, so the local
backend can share vision encodings and fill its batches, and the server backend can keep
all its connections busy.

Example:
    >>> judge = open_judge("models/PaCo-Reward-7B")  # doctest: +SKIP
    >>> result = score_set(judge, panels, theme="a red fox in four seasons")  # doctest: +SKIP
    >>> result.score, result.odd_one_out  # doctest: +SKIP
    (0.81, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.errors import InputError
from paco_core.reward.backend import JudgeBackend, PairRequest
from paco_core.reward.prompts import (
    edit_consistency_prompt,
    edit_following_prompt,
    set_consistency_prompt,
)
from paco_core.reward.results import EditScore, RankedSet, SetScore

if TYPE_CHECKING:
    from PIL import Image

MIN_SET_SIZE = 2

QUESTION_KINDS = ("set", "edit_consistency", "edit_following")
"""What a single pair is asked (``explain_pair``): set consistency under a theme (blank
theme: the theme-less prompt), edit consistency or edit following under an instruction."""


@dataclass(frozen=True)
class _SetQuestion:
    """One asked order of one pair of one set: the set, the images shown first and second."""

    set_index: int
    first: int
    second: int


def score_set(
    judge: JudgeBackend,
    images: Sequence[Image.Image],
    theme: str | None = None,
    *,
    both_orders: bool = False,
    hooks: Hooks = NO_HOOKS,
) -> SetScore:
    """Score how consistent a set of images is.

    Args:
        judge: a local or server judge.
        images: the set's images (panels), at least 2.
        theme: the set's theme prompt; None or blank uses the theme-less prompt.
        both_orders: ask each pair in both orders and average (twice the questions).
        hooks: progress and cancel callbacks.

    Returns:
        The ``SetScore`` (set score, pair scores, per-image scores, N x N matrix).
    """
    return score_sets(judge, [images], theme, both_orders=both_orders, hooks=hooks)[0]


def score_sets(
    judge: JudgeBackend,
    sets: Sequence[Sequence[Image.Image]],
    theme: str | None | Sequence[str | None] = None,
    *,
    both_orders: bool = False,
    hooks: Hooks = NO_HOOKS,
) -> list[SetScore]:
    """Score several sets in one judge call (all their pairs batched together).

    Args:
        judge: a local or server judge.
        sets: the sets, each a sequence of at least 2 images.
        theme: one theme for every set, or one per set.
        both_orders: ask each pair in both orders and average.
        hooks: progress and cancel callbacks.

    Returns:
        One ``SetScore`` per set, in order.
    """
    sets = [check_set(images, index) for index, images in enumerate(check_sets(sets))]
    themes = _themes_per_set(theme, len(sets))
    questions = [
        _SetQuestion(set_index, first, second)
        for set_index, images in enumerate(sets)
        for i, j in combinations(range(len(images)), 2)
        for first, second in ([(i, j), (j, i)] if both_orders else [(i, j)])
    ]
    prompts = [set_consistency_prompt(text) for text in themes]
    requests = [
        PairRequest(sets[q.set_index][q.first], sets[q.set_index][q.second], prompts[q.set_index])
        for q in questions
    ]
    scores = judge.score_pairs(requests, hooks)
    by_set: list[dict[tuple[int, int], float]] = [{} for _ in sets]
    for question, score in zip(questions, scores, strict=True):
        by_set[question.set_index][(question.first, question.second)] = score
    return [
        _set_score(len(images), by_set[index], themes[index], both_orders)
        for index, images in enumerate(sets)
    ]


def score_edit(
    judge: JudgeBackend,
    original: Image.Image,
    edited: Image.Image,
    instruction: str,
    *,
    hooks: Hooks = NO_HOOKS,
) -> EditScore:
    """Score one edit: consistency with the original, instruction following, and overall.

    Args:
        judge: a local or server judge.
        original: the image before the edit (shown first).
        edited: the image after the edit (shown second).
        instruction: the edit instruction.
        hooks: progress and cancel callbacks.

    Returns:
        The ``EditScore``.
    """
    return score_edits(judge, [original], [edited], [instruction], hooks=hooks)[0]


def score_edits(
    judge: JudgeBackend,
    originals: Sequence[Image.Image],
    editeds: Sequence[Image.Image],
    instructions: Sequence[str] | str,
    *,
    hooks: Hooks = NO_HOOKS,
) -> list[EditScore]:
    """Score a batch of edits in one judge call (2 questions per edit).

    Args:
        judge: a local or server judge.
        originals: the images before the edits.
        editeds: the edited images, one per original.
        instructions: one instruction per edit, or one text for all.
        hooks: progress and cancel callbacks.

    Returns:
        One ``EditScore`` per edit, in order.
    """
    originals, editeds = list(originals), list(editeds)
    if isinstance(instructions, str):
        instructions = [instructions] * len(originals)
    instructions = list(instructions)
    if not originals:
        raise InputError("edit scoring needs at least one (original, edited, instruction), got none.")
    if not len(originals) == len(editeds) == len(instructions):
        raise InputError(
            f"edit scoring needs one edited image and one instruction per original, got {len(originals)} "
            f"original(s), {len(editeds)} edited image(s) and {len(instructions)} instruction(s)."
        )
    requests: list[PairRequest] = []
    for original, edited, instruction in zip(originals, editeds, instructions, strict=True):
        requests.append(PairRequest(original, edited, edit_consistency_prompt(instruction)))
        requests.append(PairRequest(original, edited, edit_following_prompt(instruction)))
    scores = judge.score_pairs(requests, hooks)
    return [EditScore.from_parts(scores[2 * k], scores[2 * k + 1]) for k in range(len(originals))]


def rank_sets(
    judge: JudgeBackend,
    sets: Sequence[Sequence[Image.Image]],
    theme: str | None | Sequence[str | None] = None,
    *,
    both_orders: bool = False,
    hooks: Hooks = NO_HOOKS,
) -> list[RankedSet]:
    """Rank candidate sets by set score, best first (ties keep the given order).

    Args:
        judge: a local or server judge.
        sets: the candidate sets (best-of-N), each of at least 2 images.
        theme: the theme of every set, or one per set.
        both_orders: ask each pair in both orders.
        hooks: progress and cancel callbacks.

    Returns:
        ``RankedSet`` items, best first; ``item.index`` is the set's given position.
    """
    results = score_sets(judge, sets, theme, both_orders=both_orders, hooks=hooks)
    order = sorted(range(len(results)), key=lambda index: (-results[index].score, index))
    return [RankedSet(index=index, rank=rank, set_score=results[index]) for rank, index in enumerate(order)]


def explain_pair(
    judge: JudgeBackend,
    first: Image.Image,
    second: Image.Image,
    *,
    kind: str = "set",
    text: str | None = None,
    max_new_tokens: int = 256,
) -> str:
    """The judge's own answer and reasons for one pair.

    Args:
        judge: a local or server judge.
        first: the first image (panel i, or the original for edits).
        second: the second image (panel j, or the edited image).
        kind: "set" (``text`` is the theme), "edit_consistency" or "edit_following"
            (``text`` is the instruction).
        text: the theme or instruction.
        max_new_tokens: the most tokens the judge may write.

    Returns:
        The generated text (it starts with Yes or No for a trained judge).
    """
    return judge.explain(
        PairRequest(first, second, question_prompt(kind, text)), max_new_tokens=max_new_tokens
    )


def question_prompt(kind: str, text: str | None) -> str:
    """The prompt of a question kind (see ``QUESTION_KINDS``)."""
    if kind == "set":
        return set_consistency_prompt(text)
    if kind == "edit_consistency":
        return edit_consistency_prompt(text or "")
    if kind == "edit_following":
        return edit_following_prompt(text or "")
    raise InputError(f"question kind should be one of {', '.join(QUESTION_KINDS)}, got {kind!r}.")


def check_sets(sets: Sequence[Sequence[Image.Image]]) -> list[Sequence[Image.Image]]:
    """The sets as a list; raises unless there is at least one."""
    if isinstance(sets, (str, bytes)) or not isinstance(sets, Sequence) or not sets:
        raise InputError(f"give at least one set of images, got {type(sets).__name__} of length 0.")
    return list(sets)


def check_set(images: Sequence[Image.Image], index: int = 0) -> list[Image.Image]:
    """The set's images as a list; raises unless there are at least 2 PIL images."""
    from PIL import Image

    images = list(images) if isinstance(images, Sequence) else [images]
    if len(images) < MIN_SET_SIZE:
        raise InputError(
            f"the judge needs at least {MIN_SET_SIZE} images per set to compare, got {len(images)} in set {index}. "
            "Give a batch of panels, or one grid image with its layout (e.g. 2x2)."
        )
    for position, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise InputError(
                f"set {index}, image {position} should be a PIL image, got {type(image).__name__}."
            )
    return images


def _themes_per_set(theme: str | None | Sequence[str | None], num_sets: int) -> list[str | None]:
    if theme is None or isinstance(theme, str):
        return [theme] * num_sets
    themes = list(theme)
    if len(themes) != num_sets:
        raise InputError(
            f"give one theme for all sets or one per set: got {len(themes)} themes for {num_sets} sets."
        )
    return themes


def _set_score(
    num_images: int, asked: dict[tuple[int, int], float], theme: str | None, both_orders: bool
) -> SetScore:
    """Reduce the asked (first, second) scores of one set to its SetScore."""
    nan = float("nan")
    matrix = [[nan] * num_images for _ in range(num_images)]
    pairs: list[tuple[int, int, float]] = []
    for i, j in combinations(range(num_images), 2):
        forward = asked[(i, j)]
        backward = asked[(j, i)] if both_orders else forward
        matrix[i][j], matrix[j][i] = forward, backward
        pairs.append((i, j, (forward + backward) / 2))
    per_image = [
        sum(p for i, j, p in pairs if index in (i, j)) / (num_images - 1) for index in range(num_images)
    ]
    score = sum(p for _, _, p in pairs) / len(pairs)
    return SetScore(
        score=score,
        pairs=pairs,
        per_image=per_image,
        matrix=matrix,
        theme=theme.strip() if theme and theme.strip() else None,
        both_orders=both_orders,
    )


def set_score_from_pairs(
    num_images: int,
    asked: dict[tuple[int, int], float],
    theme: str | None = None,
    *,
    both_orders: bool = False,
) -> SetScore:
    """The ``SetScore`` of a set whose pairs were already asked.

    Args:
        num_images: the set's size.
        asked: ``(first, second) -> score`` for every ``i < j`` (and ``(j, i)`` with ``both_orders``).
        theme: the theme the questions used.
        both_orders: whether both orders were asked.
    """
    return _set_score(num_images, asked, theme, both_orders)

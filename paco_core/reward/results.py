"""Result types of judge scoring: a set's score, an edit's scores, a ranked set."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SetScore:
    """How consistent one set of images is, by the judge.

    Attributes:
        score: the set score, the mean of the pair scores.
        pairs: ``(i, j, p)`` for every unordered pair ``i < j`` (0-based image indices);
            ``p`` is the judge's Yes-probability (the mean of both orders with ``both_orders``).
        per_image: for each image, the mean score of the pairs it is in (the lowest is the
            odd one out).
        matrix: N x N directional scores: ``matrix[i][j]`` is the score with image i shown
            first and j second. Without ``both_orders`` only i < j is asked and mirrored, so
            the matrix is symmetric. The diagonal is NaN (an image is not compared with itself).
        theme: the theme the prompt used (None: the theme-less prompt).
        both_orders: whether each pair was asked in both orders.
    """

    score: float
    pairs: list[tuple[int, int, float]]
    per_image: list[float]
    matrix: list[list[float]]
    theme: str | None = None
    both_orders: bool = False

    @property
    def num_images(self) -> int:
        return len(self.per_image)

    @property
    def odd_one_out(self) -> int:
        """Index of the image with the lowest per-image score."""
        return min(range(self.num_images), key=lambda index: self.per_image[index])

    def to_json(self) -> dict:
        """``{"score", "pairs": [[i, j, p], ...], "per_image"}`` (what ``paco score --json`` prints)."""
        return {
            "score": self.score,
            "pairs": [[i, j, p] for i, j, p in self.pairs],
            "per_image": list(self.per_image),
        }


@dataclass(frozen=True)
class EditScore:
    """How good one edit is, by the judge.

    Attributes:
        consistency: P(Yes) that the edited image keeps what the instruction does not change.
        following: P(Yes) that the edited image follows the instruction.
        overall: ``sqrt(consistency * following)`` (geometric mean, as EditScore).
    """

    consistency: float
    following: float
    overall: float

    @classmethod
    def from_parts(cls, consistency: float, following: float) -> EditScore:
        return cls(consistency=consistency, following=following, overall=math.sqrt(consistency * following))

    def to_json(self) -> dict:
        """``{"consistency", "following", "overall"}`` (what ``paco score-edit --json`` prints)."""
        return {"consistency": self.consistency, "following": self.following, "overall": self.overall}


@dataclass(frozen=True)
class RankedSet:
    """One candidate set in a ranking.

    Attributes:
        index: the set's position among the candidates as given (0-based).
        rank: its place in the ranking (0 = best).
        set_score: its full ``SetScore``.
    """

    index: int
    rank: int
    set_score: SetScore

    @property
    def score(self) -> float:
        return self.set_score.score

"""The most consistent set from a pool: one candidate per panel, chosen across K candidate sets.

Best-of-N keeps the best *whole* set. But panel 1 of set A may fit panel 2 of set C
better than anything in a single set. With K candidate sets of the same N panels (K seeds
of one grid prompt), panel i can come from any of the K sets, so there are K^N sets to
choose from, all made with the same generation budget as best-of-N.

1. Score the pool (``score_pool``): every pair of panels (i, j), i < j, across every pair
   of candidates (a, b) is asked once: K^2 * N(N-1)/2 questions in ONE judge call. A
   local judge encodes each of the N*K panels once (its vision features are reused) and
   shares the prompt prefix of pairs that start with the same panel (see
   ``paco_core.reward.shared_prefix``). The K whole sets are among these questions, so
   best-of-N's scores come for free.
2. Choose (``choose_panels``): pick a candidate a_i per panel to maximise the set score,
   the mean over i < j of score(i, a_i, j, a_j).
   - Exact search when K^N <= ``max_exact``: depth-first over the panels, adding each
     panel's pairs with the panels before it; every assignment is visited.
   - Beam search beyond: panels are added in order, keeping the ``beam_width`` best
     partial sets by their partial sum; the best of them, or the best whole set when
     that is better, is then improved one panel at a time (change one panel's candidate
     while that raises the score) until nothing improves. So it is never worse than
     best-of-N, is a local optimum, and is exact when ``beam_width >= K^(N-1)`` (nothing
     is ever dropped).
3. Return the assembled panels, their ``SetScore`` (pair matrix, odd one out) and the
   whole sets' scores, for the comparison with best-of-N.

Example:
    >>> result = assemble_from_pool(judge, [set_a, set_b, set_c], theme="a red fox")  # doctest: +SKIP
    >>> result.choice, round(result.score, 3), round(result.best_whole_score, 3)  # doctest: +SKIP
    ((0, 2, 2, 1), 0.912, 0.874)
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any, Literal

from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.errors import InputError
from paco_core.reward.backend import JudgeBackend, PairRequest
from paco_core.reward.prompts import set_consistency_prompt
from paco_core.reward.results import SetScore
from paco_core.reward.scoring import check_set, set_score_from_pairs

if TYPE_CHECKING:
    from PIL import Image

    from paco_core.consistency.usage import Usage

DEFAULT_MAX_EXACT = 65536
"""Exact search visits every one of the K^N sets up to this many (4 candidates of 8 panels)."""
DEFAULT_BEAM_WIDTH = 64
"""Partial sets kept per panel by the beam search."""
MAX_POOL_PAIRS = 200_000
"""The most questions one pool may ask (K^2 * N(N-1)/2); beyond, split the pool."""

Search = Literal["exact", "beam"]


@dataclass(frozen=True)
class PoolScores:
    """Every pair of panels across candidates, scored once.

    ``forward[i][j][a][b]`` (i < j) is the score with panel i of candidate a shown first and
    panel j of candidate b second; ``backward`` holds the other order when both were asked
    (else it is ``forward``). ``pair(i, a, j, b)`` is their mean.
    """

    num_panels: int
    num_candidates: int
    forward: list[list[list[list[float]]]]
    backward: list[list[list[list[float]]]]
    theme: str | None = None
    both_orders: bool = False

    @property
    def num_questions(self) -> int:
        pairs = self.num_panels * (self.num_panels - 1) // 2 * self.num_candidates**2
        return pairs * (2 if self.both_orders else 1)

    def pair(self, i: int, a: int, j: int, b: int) -> float:
        """The score of panel i from candidate a with panel j from candidate b (any order of i, j)."""
        if i > j:
            i, a, j, b = j, b, i, a
        return (self.forward[i][j][a][b] + self.backward[i][j][a][b]) / 2

    def set_score(self, choice: Sequence[int]) -> float:
        """The set score (mean pair score) of one candidate per panel."""
        total = sum(self.pair(i, choice[i], j, choice[j]) for i, j in combinations(range(self.num_panels), 2))
        return total / (self.num_panels * (self.num_panels - 1) // 2)

    def whole_set_scores(self) -> list[float]:
        """Each candidate set's own score (what best-of-N ranks)."""
        return [self.set_score([k] * self.num_panels) for k in range(self.num_candidates)]

    def set_score_of(self, choice: Sequence[int]) -> SetScore:
        """The full ``SetScore`` (pairs, per-panel scores, matrix) of one candidate per panel."""
        asked: dict[tuple[int, int], float] = {}
        for i, j in combinations(range(self.num_panels), 2):
            asked[(i, j)] = self.forward[i][j][choice[i]][choice[j]]
            if self.both_orders:
                asked[(j, i)] = self.backward[i][j][choice[i]][choice[j]]
        return set_score_from_pairs(self.num_panels, asked, self.theme, both_orders=self.both_orders)


@dataclass(frozen=True)
class PanelChoice:
    """The chosen candidate per panel and how it was found.

    Attributes:
        choice: the candidate (0-based) of each panel.
        score: the set score of that choice.
        search: "exact" or "beam".
        num_visited: complete sets whose score was computed.
    """

    choice: tuple[int, ...]
    score: float
    search: Search
    num_visited: int


@dataclass
class PoolResult:
    """The most consistent set assembled from a pool.

    Attributes:
        panels: the assembled set, one panel per position (PIL images).
        choice: the candidate each panel came from (0-based).
        set_score: the assembled set's ``SetScore``.
        whole_set_scores: each candidate set's own score, in the given order.
        search: "exact" or "beam"; ``num_visited``: sets scored by the search.
        num_questions: judge questions asked (K^2 * N(N-1)/2, twice with both orders).
        usage: time and peak memory of the run.
        scores: every pair's score across candidates (``whole_set_score`` reads it).
    """

    panels: list[Any]
    choice: tuple[int, ...]
    set_score: SetScore
    whole_set_scores: list[float]
    search: Search
    num_visited: int
    num_questions: int
    usage: Usage | None = field(default=None, repr=False)
    scores: PoolScores | None = field(default=None, repr=False)

    @property
    def score(self) -> float:
        return self.set_score.score

    def whole_set_score(self, candidate: int) -> SetScore:
        """The full ``SetScore`` of one candidate set as it was (from the pool's scores)."""
        return self.scores.set_score_of([candidate] * len(self.panels))

    @property
    def best_whole_index(self) -> int:
        """The candidate best-of-N would keep (the first of equal scores)."""
        return max(range(len(self.whole_set_scores)), key=lambda k: (self.whole_set_scores[k], -k))

    @property
    def best_whole_score(self) -> float:
        return self.whole_set_scores[self.best_whole_index]

    @property
    def gain(self) -> float:
        """How much higher the assembled set scores than best-of-N's set (>= 0)."""
        return self.score - self.best_whole_score

    def to_json(self) -> dict:
        return {
            "choice": list(self.choice),
            "score": self.score,
            "best_whole_index": self.best_whole_index,
            "best_whole_score": self.best_whole_score,
            "gain": self.gain,
            "whole_set_scores": list(self.whole_set_scores),
            "search": self.search,
            "num_visited": self.num_visited,
            "num_questions": self.num_questions,
            "set": self.set_score.to_json(),
            "usage": self.usage.to_json() if self.usage else None,
        }

    def report(self) -> str:
        """A few readable lines: the choice, the score against best-of-N, the search, the cost."""
        count = len(self.whole_set_scores)
        taken = ", ".join(f"panel {i + 1} from set {a + 1}" for i, a in enumerate(self.choice))
        lines = [
            f"assembled set consistency {self.score:.3f} from {count} candidate sets of {len(self.panels)} panels",
            f"choice: {taken}",
            f"best whole set (best-of-{count}): set {self.best_whole_index + 1}, {self.best_whole_score:.3f}; "
            f"assembled is {self.gain:+.3f}",
            "whole sets: " + ", ".join(f"#{k + 1} {s:.3f}" for k, s in enumerate(self.whole_set_scores)),
            f"least consistent panel: #{self.set_score.odd_one_out + 1} "
            f"({self.set_score.per_image[self.set_score.odd_one_out]:.3f})",
            f"search: {self.search}, {self.num_visited} sets scored; judge: {self.num_questions} questions",
        ]
        if self.usage is not None:
            lines.append(f"time and memory: {self.usage.describe()}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- checks


def check_pool(candidates: Sequence[Sequence[Image.Image]]) -> list[list[Image.Image]]:
    """The candidates as lists of PIL panels; one-line errors for an empty pool or candidates
    that differ in panel count or panel size."""
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence) or not candidates:
        count = len(candidates) if isinstance(candidates, Sequence) else type(candidates).__name__
        raise InputError(
            f"the pool (candidates) needs at least 1 candidate set, got {count}: give K >= 1 sets of the same panels."
        )
    pool = [check_set(panels, index) for index, panels in enumerate(candidates)]
    count, size = len(pool[0]), pool[0][0].size
    for index, panels in enumerate(pool):
        if len(panels) != count:
            raise InputError(
                f"candidate set {index + 1} has {len(panels)} panels but set 1 has {count}: every candidate of "
                "a pool shows the same panels (generate them from one grid prompt)."
            )
        for position, panel in enumerate(panels):
            if panel.size != size:
                raise InputError(
                    f"candidate set {index + 1}, panel {position + 1} is {panel.size[0]}x{panel.size[1]} but set 1's "
                    f"panels are {size[0]}x{size[1]}: every candidate of a pool has the same panel size."
                )
    return pool


def _check_search_limits(beam_width: Any, max_exact: Any) -> None:
    for name, value in (("beam_width", beam_width), ("max_exact", max_exact)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"`{name}` should be a whole number >= 1, got {value!r}.")


# --------------------------------------------------------------------------- the tool


def assemble_from_pool(
    judge: JudgeBackend,
    candidates: Sequence[Sequence[Image.Image]],
    theme: str | None = None,
    *,
    both_orders: bool = False,
    beam_width: int = DEFAULT_BEAM_WIDTH,
    max_exact: int = DEFAULT_MAX_EXACT,
    hooks: Hooks = NO_HOOKS,
) -> PoolResult:
    """Assemble the most consistent set from K candidate sets of the same panels.

    Args:
        judge: a local or server judge.
        candidates: K >= 1 sets of N >= 2 panels each, all of one size (e.g. the K sets
            of ``generate_sets(..., num_sets=K)``).
        theme: the sets' theme (None or blank: the theme-less prompt).
        both_orders: ask each pair in both orders (twice the questions).
        beam_width: partial sets kept per panel when K^N exceeds ``max_exact``.
        max_exact: the most sets the exact search visits.
        hooks: progress over the judge's questions, and cancel checks.

    Returns:
        ``PoolResult``: the assembled panels, the choice, its score and the whole sets' scores.
    """
    from paco_core.consistency.usage import measure_usage

    # 1. check everything before the judge runs
    pool = check_pool(candidates)
    _check_search_limits(beam_width, max_exact)
    with measure_usage() as usage:
        # 2. every pair across candidates, once
        scores = score_pool(judge, pool, theme, both_orders=both_orders, hooks=hooks)
        # 3. one candidate per panel
        picked = choose_panels(scores, beam_width=beam_width, max_exact=max_exact)
    return PoolResult(
        panels=[pool[candidate][panel] for panel, candidate in enumerate(picked.choice)],
        choice=picked.choice,
        set_score=scores.set_score_of(picked.choice),
        whole_set_scores=scores.whole_set_scores(),
        search=picked.search,
        num_visited=picked.num_visited,
        num_questions=scores.num_questions,
        usage=usage,
        scores=scores,
    )


def score_pool(
    judge: JudgeBackend,
    candidates: Sequence[Sequence[Image.Image]],
    theme: str | None = None,
    *,
    both_orders: bool = False,
    hooks: Hooks = NO_HOOKS,
) -> PoolScores:
    """Ask every pair of panels across candidates once, in one judge call.

    Questions are ordered by first image (panel i of candidate a, then all its partners),
    so a local judge shares each first image's prefix over its K(N-1-i) pairs.

    Returns:
        ``PoolScores`` with the K^2 * N(N-1)/2 pair scores (each order with ``both_orders``).
    """
    pool = check_pool(candidates)
    num_candidates, num_panels = len(pool), len(pool[0])
    if num_candidates**2 * num_panels * (num_panels - 1) // 2 > MAX_POOL_PAIRS:
        raise InputError(
            f"a pool of {num_candidates} sets of {num_panels} panels asks "
            f"{num_candidates**2 * num_panels * (num_panels - 1) // 2} questions, more than {MAX_POOL_PAIRS}; "
            "use fewer candidates."
        )
    prompt = set_consistency_prompt(theme)
    keys: list[tuple[int, int, int, int, bool]] = []  # (i, a, j, b, is_forward)
    requests: list[PairRequest] = []
    for i, a in ((i, a) for i in range(num_panels) for a in range(num_candidates)):
        for j, b in ((j, b) for j in range(i + 1, num_panels) for b in range(num_candidates)):
            keys.append((i, a, j, b, True))
            requests.append(PairRequest(pool[a][i], pool[b][j], prompt))
    if both_orders:
        for i, a, j, b, _ in list(keys):
            keys.append((i, a, j, b, False))
            requests.append(PairRequest(pool[b][j], pool[a][i], prompt))
    answers = judge.score_pairs(requests, hooks)

    def empty() -> list:
        return [
            [[[0.0] * num_candidates for _ in range(num_candidates)] for _ in range(num_panels)]
            for _ in range(num_panels)
        ]

    forward, backward = empty(), empty()
    for (i, a, j, b, is_forward), score in zip(keys, answers, strict=True):
        (forward if is_forward else backward)[i][j][a][b] = score
    clean_theme = theme.strip() if theme and theme.strip() else None
    return PoolScores(
        num_panels=num_panels,
        num_candidates=num_candidates,
        forward=forward,
        backward=backward if both_orders else forward,
        theme=clean_theme,
        both_orders=both_orders,
    )


# --------------------------------------------------------------------------- the search


def choose_panels(
    scores: PoolScores, *, beam_width: int = DEFAULT_BEAM_WIDTH, max_exact: int = DEFAULT_MAX_EXACT
) -> PanelChoice:
    """One candidate per panel maximising the set score: exact up to ``max_exact`` sets, else beam.

    Ties go to the assignment that comes first in order (candidate 0 before 1, panel by panel).
    """
    _check_search_limits(beam_width, max_exact)
    if scores.num_candidates**scores.num_panels <= max_exact:
        return exact_search(scores)
    return beam_search(scores, beam_width)


def _gain(scores: PoolScores, partial: Sequence[int], panel: int, candidate: int) -> float:
    """What panel ``panel`` from ``candidate`` adds to the pair sum of the panels before it."""
    return sum(scores.pair(earlier, partial[earlier], panel, candidate) for earlier in range(panel))


def exact_search(scores: PoolScores) -> PanelChoice:
    """Visit every one of the K^N assignments (depth first, pair sums built panel by panel)."""
    num_panels, num_candidates = scores.num_panels, scores.num_candidates
    best_total, best_choice, visited = float("-inf"), (0,) * num_panels, 0
    partial = [0] * num_panels

    def visit(panel: int, total: float) -> None:
        nonlocal best_total, best_choice, visited
        if panel == num_panels:
            visited += 1
            if total > best_total:
                best_total, best_choice = total, tuple(partial)
            return
        for candidate in range(num_candidates):
            partial[panel] = candidate
            visit(panel + 1, total + _gain(scores, partial, panel, candidate))

    visit(0, 0.0)
    return PanelChoice(best_choice, scores.set_score(best_choice), "exact", visited)


def beam_search(scores: PoolScores, beam_width: int) -> PanelChoice:
    """Beam search over the panels in order, then single-panel improvement.

    1. Start from the empty set; for each panel, extend every kept partial set with each
       candidate and keep the ``beam_width`` best by partial pair sum.
    2. Take the best complete set, or the best whole candidate set when that scores higher.
    3. Change one panel's candidate whenever that raises the set score, until no single
       change does: the result is a local optimum and never below best-of-N.
    """
    num_panels, num_candidates = scores.num_panels, scores.num_candidates
    # 1. beam: (partial sum, assignment); sorted by -sum then assignment for stable ties
    beam: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]
    for panel in range(num_panels):
        grown = [
            (total + _gain(scores, partial, panel, candidate), (*partial, candidate))
            for total, partial in beam
            for candidate in range(num_candidates)
        ]
        beam = heapq.nsmallest(beam_width, grown, key=lambda item: (-item[0], item[1]))
    visited = len(beam)
    choice = list(beam[0][1])
    current = scores.set_score(choice)
    # 2. start from the best whole set instead when it is better (never worse than best-of-N)
    wholes = scores.whole_set_scores()
    visited += num_candidates
    best_whole = max(range(num_candidates), key=lambda k: (wholes[k], -k))
    if wholes[best_whole] > current:
        choice, current = [best_whole] * num_panels, wholes[best_whole]
    # 3. single-panel improvement: the score only rises, so it stays >= best-of-N
    improved = True
    while improved:
        improved = False
        for panel in range(num_panels):
            for candidate in range(num_candidates):
                if candidate == choice[panel]:
                    continue
                trial = [*choice[:panel], candidate, *choice[panel + 1 :]]
                score = scores.set_score(trial)
                visited += 1
                if score > current + 1e-12:
                    choice, current, improved = trial, score, True
    return PanelChoice(tuple(choice), current, "beam", visited)

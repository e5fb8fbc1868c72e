"""What every judge backend shares: the pair request, the backend protocol and the
Yes/No score rule.

A pair score is the judge's probability of answering "Yes" rather than "No" as its first
token: ``P(Yes) / (P(Yes) + P(No))``. With the "case" answer set, the probabilities of
the case variants are summed on each side first.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.errors import InputError, JudgeError

if TYPE_CHECKING:
    from PIL import Image

    from paco_core.reward.cache import ScoreCache

AnswerSet = Literal["exact", "case"]

ANSWER_TOKENS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "exact": (("Yes",), ("No",)),
    "case": (("Yes", "yes", "YES", "Y", "y"), ("No", "no", "NO", "N", "n")),
}
"""Answer sets: (yes tokens, no tokens). "exact" is what the released RL code counts;
"case" also counts the variants the released benchmark evaluation counts (yes/YES/Y/y,
no/NO/N/n). A variant that is not one token of the judge's tokenizer is not counted."""


def answer_tokens(answers: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (yes tokens, no tokens) of an answer set name."""
    if answers not in ANSWER_TOKENS:
        raise InputError(f"answers should be one of {', '.join(ANSWER_TOKENS)}, got {answers!r}.")
    return ANSWER_TOKENS[answers]


@dataclass(frozen=True)
class PairRequest:
    """One question to the judge: two images (in this order) and the prompt text.

    Attributes:
        first: the first image of the chat message (the reference / original / panel i).
        second: the second image (the candidate / edited / panel j).
        prompt: the exact prompt text (see ``paco_core.reward.prompts``).
    """

    first: Image.Image
    second: Image.Image
    prompt: str


@runtime_checkable
class JudgeBackend(Protocol):
    """A judge that scores image pairs. Both ``LocalJudge`` and ``JudgeClient`` satisfy it.

    ``score_pairs`` returns one probability in [0, 1] per pair, in order. A backend that
    cannot score a pair raises ``JudgeError``; it never returns a placeholder value.
    """

    name: str

    def score_pairs(self, pairs: Sequence[PairRequest], hooks: Hooks = NO_HOOKS) -> list[float]: ...

    def explain(self, pair: PairRequest, max_new_tokens: int = 256) -> str: ...


def image_digest(image: Image.Image) -> str:
    """SHA-256 of an image's mode, size and pixels (equal pixels give equal digests)."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def pair_digests(pairs: Sequence[PairRequest]) -> list[tuple[str, str]]:
    """``(first digest, second digest)`` of each pair, hashing each image object once."""
    memo: dict[int, str] = {}

    def digest(image: Image.Image) -> str:
        if id(image) not in memo:
            memo[id(image)] = image_digest(image)
        return memo[id(image)]

    return [(digest(pair.first), digest(pair.second)) for pair in pairs]


def score_through_cache(
    cache: ScoreCache,
    pairs: Sequence[PairRequest],
    answers: str,
    score_missing: Callable[[list[PairRequest], list[tuple[str, str]]], list[float]],
    hooks: Hooks = NO_HOOKS,
) -> list[float]:
    """Score pairs, asking the backend only for the distinct questions the cache lacks.

    A question is keyed by both images' pixel digests, the prompt and the answer set, so
    a pair asked twice in one call (or in an earlier call) is scored once.

    Args:
        cache: the backend's score cache.
        pairs: the questions, checked with ``check_pairs``.
        answers: the answer set name (part of the key: it changes the score).
        score_missing: scores the uncached distinct pairs, given them and their digests,
            in the same order.
        hooks: progress and cancel; with everything cached, one final progress step.

    Returns:
        One score per pair, in order.
    """
    check_pairs(pairs)
    digests = pair_digests(pairs)
    keys = [(*pair_digest, pair.prompt, answers) for pair, pair_digest in zip(pairs, digests, strict=True)]
    scores: dict[tuple, float] = {}
    todo: dict[tuple, int] = {}  # key -> index of the first pair asking it
    for index, key in enumerate(keys):
        cached = cache.get(key)
        if cached is not None:
            scores[key] = cached
        elif key not in todo:
            todo[key] = index
    if todo:
        missing = score_missing([pairs[i] for i in todo.values()], [digests[i] for i in todo.values()])
        for key, score in zip(todo, missing, strict=True):
            scores[key] = score
            cache.put(key, score)
    else:
        hooks.step(len(pairs), len(pairs))
    return [scores[key] for key in keys]


def score_from_logprobs(
    logprobs: Mapping[str, float], answers: str = "exact", *, source: str = "judge"
) -> float:
    """``P(yes set) / (P(yes set) + P(no set))`` from answer-token log-probabilities.

    Args:
        logprobs: token text -> log-probability of the first answer token. Tokens that
            are absent count as probability 0 (a server lists only its top-k tokens;
            an absent answer is less likely than every listed one).
        answers: the answer set name ("exact" or "case").
        source: who produced the log-probabilities, for the error message.

    Returns:
        The score in [0, 1].
    """
    yes_tokens, no_tokens = answer_tokens(answers)
    yes = [logprobs[token] for token in yes_tokens if token in logprobs]
    no = [logprobs[token] for token in no_tokens if token in logprobs]
    if not yes and not no:
        listed = ", ".join(repr(token) for token in list(logprobs)[:10])
        raise JudgeError(
            f"{source}: neither {'/'.join(yes_tokens)} nor {'/'.join(no_tokens)} is among the first "
            f"answer token's log-probabilities (got {listed}). The model is not a Yes/No judge, or "
            "top_logprobs is too small."
        )
    log_yes = _logsumexp(yes)
    log_no = _logsumexp(no)
    if log_yes == -math.inf:
        return 0.0
    if log_no == -math.inf:
        return 1.0
    return 1.0 / (1.0 + math.exp(log_no - log_yes))


def _logsumexp(values: Sequence[float]) -> float:
    if not values:
        return -math.inf
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(value - top) for value in values))


def check_pairs(pairs: Sequence[PairRequest]) -> None:
    """Raise InputError unless every item is a PairRequest of two PIL images the judge can take
    and a prompt."""
    from PIL import Image

    from paco_core.images import check_aspect_ratio

    for index, pair in enumerate(pairs):
        if not isinstance(pair, PairRequest):
            raise InputError(f"pair {index} should be a PairRequest, got {type(pair).__name__}.")
        for role in ("first", "second"):
            image = getattr(pair, role)
            if not isinstance(image, Image.Image):
                raise InputError(
                    f"pair {index}: the {role} image should be a PIL image, got {type(image).__name__}."
                )
            if min(image.size) < 1:
                raise InputError(
                    f"pair {index}: the {role} image is empty ({image.size[0]}x{image.size[1]})."
                )
            check_aspect_ratio(image.size, f"pair {index}: the {role} image")
        if not isinstance(pair.prompt, str) or not pair.prompt.strip():
            raise InputError(f"pair {index}: the prompt should be a non-empty text, got {pair.prompt!r}.")
        check_text(pair.prompt, f"pair {index}: the prompt")


def check_text(text: str, what: str) -> None:
    """InputError when ``text`` cannot be written as UTF-8 (a lone surrogate, e.g. from JSON's
    ``"\\ud800"``): the tokenizer would fail on it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InputError(
            f"{what} holds a character that is not valid Unicode ({error.reason} at position {error.start}); "
            "send valid UTF-8 text."
        ) from None

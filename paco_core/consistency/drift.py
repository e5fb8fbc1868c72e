"""Edit chains that do not drift: every step is judged against the chain's origin too.

A plain edit chain edits the previous result each step, so small losses add up: the
subject's identity fades, pixels shift, a subject gets duplicated. The guard judges each
step twice, in one judge call:

- against the origin: edit consistency of (origin, step image) under the instructions
  so far, joined ("what these edits do not change is kept");
- against the previous image: the step's own edit score (consistency and following of
  this step's instruction).

A try's guard score is the weaker of the two: ``min(origin consistency, step overall)``.

Per step:
1. Edit the previous image with seed ``seed + step`` (the plain chain's seed, so a guard
   that never fires gives exactly the plain chain).
2. When the guard score is below ``threshold``, retry with other seeds
   (``seed + step + r * num_steps``), one at a time, until a try passes or ``tries`` tries
   were made; the best try is kept.
3. When no try passed (the drift persists) and ``reanchor`` is on, re-anchor: edit the
   origin itself with the instructions so far, joined, up to ``tries`` more tries; the
   best of all tries is kept.

The result's report lists each step's tries with their scores against the origin and the
previous image, the try kept, and whether it was re-anchored.

Example:
    >>> chain = guarded_edit_chain(kontext, judge, photo, ["make it winter", "make it night"],
    ...                            guard=GuardOptions(threshold=0.6, tries=3))  # doctest: +SKIP
    >>> [round(step.origin_score.consistency, 2) for step in chain.steps]  # doctest: +SKIP
    [0.91, 0.84]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.errors import InputError
from paco_core.generate import EditOptions, as_rgb, check_instructions, edit_image
from paco_core.reward.backend import JudgeBackend, PairRequest
from paco_core.reward.prompts import edit_consistency_prompt, edit_following_prompt
from paco_core.reward.results import EditScore

if TYPE_CHECKING:
    from paco_core.consistency.usage import Usage
    from paco_core.models.pipelines import LoadedPipeline

Source = Literal["previous", "origin"]
MAX_TRIES = 16
"""The most tries per step (and as many more when re-anchoring)."""


@dataclass(frozen=True)
class GuardOptions:
    """When a step is retried and re-anchored.

    Args:
        threshold: the lowest guard score a step may keep without retrying, in [0, 1];
            0 never retries (the chain is only judged).
        tries: seeds tried per step at most (best of K), >= 1; 1 never retries.
        reanchor: when no try reaches the threshold, edit the origin with the
            instructions so far (up to ``tries`` more tries).
    """

    threshold: float = 0.5
    tries: int = 3
    reanchor: bool = True

    def __post_init__(self) -> None:
        value = self.threshold
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"`threshold` should be a number from 0 to 1, got {value!r}.")
        if not 0 <= value <= 1:
            raise InputError(
                f"`threshold` should be from 0 to 1 (judge scores are probabilities), got {value:g}."
            )
        tries = self.tries
        if isinstance(tries, bool) or not isinstance(tries, int) or not 1 <= tries <= MAX_TRIES:
            raise InputError(f"`tries` should be a whole number from 1 to {MAX_TRIES}, got {tries!r}.")


@dataclass
class ChainTry:
    """One generated candidate for a step and its two judgements.

    Attributes:
        seed: the edit's seed.
        source: "previous" (edited the previous image) or "origin" (re-anchored).
        instruction: what the model was told (the step's, or the instructions so far).
        origin_score: against the origin, under the instructions so far.
        step_score: against the previous image, under this step's instruction.
        image: the edited image.
    """

    seed: int
    source: Source
    instruction: str
    origin_score: EditScore
    step_score: EditScore
    image: Any = field(repr=False)

    @property
    def guard_score(self) -> float:
        """The weaker of the two: keeps the origin, and does this step's edit."""
        return min(self.origin_score.consistency, self.step_score.overall)

    def to_json(self) -> dict:
        return {
            "seed": self.seed,
            "source": self.source,
            "instruction": self.instruction,
            "origin": self.origin_score.to_json(),
            "step": self.step_score.to_json(),
            "guard_score": self.guard_score,
        }


@dataclass
class GuardedStep:
    """One step of a guarded chain: its tries and the one kept.

    Attributes:
        instruction: this step's instruction.
        tries: every try, in the order made.
        kept: the index of the kept try.
        passed: whether the kept try reached the threshold.
    """

    instruction: str
    tries: list[ChainTry]
    kept: int
    passed: bool

    @property
    def chosen(self) -> ChainTry:
        return self.tries[self.kept]

    @property
    def image(self):
        return self.chosen.image

    @property
    def origin_score(self) -> EditScore:
        return self.chosen.origin_score

    @property
    def step_score(self) -> EditScore:
        return self.chosen.step_score

    @property
    def reanchored(self) -> bool:
        return self.chosen.source == "origin"

    @property
    def retried(self) -> bool:
        return len(self.tries) > 1


@dataclass
class GuardedChainResult:
    """A guarded edit chain: the origin, one ``GuardedStep`` per instruction, and the cost.

    Attributes:
        origin: the image the chain starts from.
        steps: one per instruction.
        guard: the options used.
        num_edits: edits generated (each ``options.steps`` denoising steps).
        num_questions: judge questions asked.
        usage: time and peak memory of the run.
    """

    origin: Any
    steps: list[GuardedStep]
    guard: GuardOptions
    num_edits: int
    num_questions: int
    usage: Usage | None = field(default=None, repr=False)

    @property
    def images(self) -> list[Any]:
        return [step.image for step in self.steps]

    @property
    def origin_scores(self) -> list[float]:
        """Each kept step's consistency with the origin."""
        return [step.origin_score.consistency for step in self.steps]

    @property
    def mean_origin_score(self) -> float:
        return sum(self.origin_scores) / len(self.steps)

    def to_json(self) -> dict:
        return {
            "threshold": self.guard.threshold,
            "tries": self.guard.tries,
            "reanchor": self.guard.reanchor,
            "num_edits": self.num_edits,
            "num_questions": self.num_questions,
            "mean_origin_consistency": self.mean_origin_score,
            "steps": [
                {
                    "instruction": step.instruction,
                    "kept": step.kept,
                    "passed": step.passed,
                    "reanchored": step.reanchored,
                    "tries": [item.to_json() for item in step.tries],
                }
                for step in self.steps
            ],
            "usage": self.usage.to_json() if self.usage else None,
        }

    def report(self) -> str:
        """One line per step (its kept scores against the origin and the previous image, tries,
        re-anchoring), then the cost."""
        guard = self.guard
        lines = [
            f"guarded edit chain: {len(self.steps)} steps, threshold {guard.threshold:.2f}, up to {guard.tries} "
            f"tries per step{', re-anchoring on the origin' if guard.reanchor else ''}"
        ]
        for number, step in enumerate(self.steps, start=1):
            kept = step.chosen
            how = "re-anchored on the origin" if step.reanchored else "from the previous image"
            verdict = "ok" if step.passed else "below threshold"
            lines.append(
                f'step {number} "{step.instruction}": vs origin {kept.origin_score.consistency:.3f}, '
                f"vs previous {kept.step_score.overall:.3f} (guard {kept.guard_score:.3f}, {verdict}); "
                f"try {step.kept + 1} of {len(step.tries)}, seed {kept.seed}, {how}"
            )
        lines.append(
            f"mean consistency with the origin {self.mean_origin_score:.3f}; {self.num_edits} edits, "
            f"{self.num_questions} judge questions"
        )
        if self.usage is not None:
            lines.append(f"time and memory: {self.usage.describe()}")
        return "\n".join(lines)


def joined_instructions(instructions: Sequence[str]) -> str:
    """The instructions so far as one: each ends with a full stop, joined by spaces."""
    return " ".join(text if text[-1] in ".!?" else f"{text}." for text in instructions)


def guarded_edit_chain(
    loaded: LoadedPipeline,
    judge: JudgeBackend,
    origin,
    instructions: Sequence[str],
    options: EditOptions = EditOptions(),
    guard: GuardOptions = GuardOptions(),
    *,
    hooks: Hooks = NO_HOOKS,
) -> GuardedChainResult:
    """Apply instructions one after another, judging each step against the origin and the
    previous image; retry (best of ``guard.tries``) and re-anchor steps below the threshold.

    Args:
        loaded: an edit pipeline view (Kontext, Qwen-Image-Edit).
        judge: a local or server judge.
        origin: the PIL image the chain starts from.
        instructions: one instruction per step.
        options: the edit options; step k's first try uses seed ``options.seed + k``.
        guard: threshold, tries per step, re-anchoring.
        hooks: progress in denoising steps (the total counts every possible try) and cancel.

    Returns:
        ``GuardedChainResult``: each step's tries, the kept image and its scores.
    """
    from paco_core.consistency.usage import measure_usage
    from paco_core.families import edit_kinds
    from paco_core.generate import check_model_task

    # 1. check before anything runs
    check_model_task(loaded, edit_kinds(), "edit an image")
    instructions = check_instructions(instructions)
    if not isinstance(guard, GuardOptions):
        raise InputError(f"`guard` should be GuardOptions, got {type(guard).__name__}.")
    origin = as_rgb(origin)
    runner = _ChainRunner(loaded, judge, origin, instructions, options, guard, hooks)
    with measure_usage() as usage:
        # 2. step by step: try, retry, re-anchor
        steps = [runner.run_step(index) for index in range(len(instructions))]
    hooks.step(runner.total_steps, runner.total_steps)
    return GuardedChainResult(
        origin=origin,
        steps=steps,
        guard=guard,
        num_edits=runner.num_edits,
        num_questions=runner.num_questions,
        usage=usage,
    )


class _ChainRunner:
    """The state of one guarded chain: the kept images so far, and the cost counters."""

    def __init__(self, loaded, judge, origin, instructions, options, guard, hooks):
        self.loaded, self.judge, self.origin = loaded, judge, origin
        self.instructions, self.options, self.guard, self.hooks = instructions, options, guard, hooks
        self.kept_images: list[Any] = []
        self.num_edits = 0
        self.num_questions = 0
        self.tries_per_step = guard.tries * (2 if guard.reanchor else 1)
        self.total_steps = options.steps * self.tries_per_step * len(instructions)

    def run_step(self, index: int) -> GuardedStep:
        guard = self.guard
        previous = self.kept_images[-1] if self.kept_images else self.origin
        instruction = self.instructions[index]
        so_far = joined_instructions(self.instructions[: index + 1])
        tries: list[ChainTry] = []
        # 1-2. from the previous image: first try, then retries while below the threshold
        while len(tries) < guard.tries and not self._passed(tries):
            tries.append(self._try(index, len(tries), previous, "previous", instruction, previous, so_far))
        # 3. re-anchor on the origin when the drift persists
        if guard.reanchor and not self._passed(tries) and index > 0:
            for _ in range(guard.tries):
                tries.append(self._try(index, len(tries), self.origin, "origin", so_far, previous, so_far))
                if tries[-1].guard_score >= guard.threshold:
                    break
        kept = max(range(len(tries)), key=lambda k: (tries[k].guard_score, -k))
        self.kept_images.append(tries[kept].image)
        return GuardedStep(
            instruction=instruction, tries=tries, kept=kept, passed=tries[kept].guard_score >= guard.threshold
        )

    def _passed(self, tries: list[ChainTry]) -> bool:
        return any(item.guard_score >= self.guard.threshold for item in tries)

    def _try(
        self, index: int, attempt: int, source, kind: Source, told: str, previous, so_far: str
    ) -> ChainTry:
        """Edit ``source`` as told with this attempt's seed; judge it against the origin and the previous image."""
        seed = self.options.seed + index + attempt * len(self.instructions)
        done_before = (index * self.tries_per_step + attempt) * self.options.steps
        offset_hooks = Hooks(
            progress=lambda done, total: self.hooks.progress(done_before + done, self.total_steps),
            check_cancel=self.hooks.check_cancel,
        )
        edited = edit_image(
            self.loaded, source, told, replace(self.options, seed=seed), hooks=offset_hooks
        ).image
        self.num_edits += 1
        instruction = self.instructions[index]
        requests = [
            PairRequest(self.origin, edited, edit_consistency_prompt(so_far)),
            PairRequest(self.origin, edited, edit_following_prompt(so_far)),
            PairRequest(previous, edited, edit_consistency_prompt(instruction)),
            PairRequest(previous, edited, edit_following_prompt(instruction)),
        ]
        scores = self.judge.score_pairs(requests, Hooks(check_cancel=self.hooks.check_cancel))
        self.num_questions += len(requests)
        return ChainTry(
            seed=seed,
            source=kind,
            instruction=told,
            origin_score=EditScore.from_parts(scores[0], scores[1]),
            step_score=EditScore.from_parts(scores[2], scores[3]),
            image=edited,
        )

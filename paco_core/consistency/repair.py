"""Repair the odd panel: regenerate the weakest panel of a set until the set is consistent.

One round:

1. the weakest panel is the one with the lowest per-panel mean (its mean pair score), among
   the panels not ``locked``;
2. K tries regenerate only that panel: with FLUX.1-dev, masked denoising of the grid with
   every other cell kept (``paco_core.consistency.inpaint``); with an edit model, an edit of
   the best panels (highest per-panel means; Edit-Plus takes the best two, the others the
   best one) by that panel's prompt;
3. the K candidate sets are judged in one call; the judge's score cache answers every pair
   that does not involve the new panel, so a round asks K x (N - 1) new pairs;
4. the best try is kept only when it raises the set score; otherwise the set stays as it was.

Rounds stop when the set score reaches ``target_score`` (a set already there is not
touched), after ``max_rounds``, or on cancel, which keeps the best set so far. The other
panels stay pixel-identical and the set score never goes down.

Example:
    >>> result = repair_set(flux_with_lora, judge, panels, theme, layout="2x2",
    ...                     options=RepairOptions(target_score=0.8, tries_per_round=3))  # doctest: +SKIP
    >>> result.score_before.score <= result.score_after.score
    True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.consistency.measure import Usage, measure
from paco_core.consistency.reference_sets import FLUX_GUIDANCE, check_score, panel_path
from paco_core.errors import InputError
from paco_core.families import family
from paco_core.reward.backend import JudgeBackend
from paco_core.reward.results import SetScore

logger = logging.getLogger(__name__)

MAX_TRIES = 64
MAX_ROUNDS = 64


@dataclass(frozen=True)
class RepairOptions:
    """How hard to try.

    Args:
        target_score: stop once the set score reaches this (0..1).
        tries_per_round: K candidates of the weakest panel per round.
        max_rounds: the most rounds (the budget: at most max_rounds x K regenerations).
        steps: denoising steps per try.
        guidance: FLUX guidance / edit guidance; None = the model's default.
        strength: grid path: how much of the panel is redrawn (1.0: from pure noise).
        seed: seed of round 1's first try; try k of round r uses seed + (r - 1) x K + k - 1.
        locked: 0-based panels never regenerated (e.g. reference cells).
        max_sequence_length: prompt tokens.
    """

    target_score: float = 0.9
    tries_per_round: int = 2
    max_rounds: int = 3
    steps: int = 28
    guidance: float | None = None
    strength: float = 1.0
    seed: int = 0
    locked: tuple[int, ...] = ()
    max_sequence_length: int = 512

    def __post_init__(self) -> None:
        from paco_core.generate import EditOptions

        object.__setattr__(self, "locked", tuple(self.locked))
        check_score("target_score", self.target_score)
        _check_count("tries_per_round", self.tries_per_round, MAX_TRIES)
        _check_count("max_rounds", self.max_rounds, MAX_ROUNDS)
        EditOptions(steps=self.steps, guidance=self.guidance, seed=self.seed)  # shared checks
        if (
            isinstance(self.strength, bool)
            or not isinstance(self.strength, (int, float))
            or not 0 < self.strength <= 1
        ):
            raise InputError(f"`strength` should be above 0 and at most 1, got {self.strength!r}.")
        if int(self.steps * self.strength) < 1:
            raise InputError(
                f"`strength` {self.strength} of {self.steps} steps leaves no step to run; raise either."
            )


def _check_count(name: str, value: Any, most: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"`{name}` should be a whole number >= 1, got {value!r}.")
    if value > most:
        raise InputError(f"`{name}` should be at most {most}, got {value}.")


@dataclass
class RepairRound:
    """One round of the log.

    Attributes:
        number: 1-based round number.
        panel: the 0-based panel regenerated (the weakest).
        panel_score: its per-panel mean before the round.
        score_before: the set score before the round.
        try_scores: the set score of each try, in order.
        seeds: the seed of each try.
        kept_try: 0-based index of the try kept, or None (no try raised the score).
        score_after: the set score after the round.
        generation_steps: denoising steps run this round.
        judge_pairs: pairs asked to the judge this round (those not already scored).
    """

    number: int
    panel: int
    panel_score: float
    score_before: float
    try_scores: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    kept_try: int | None = None
    score_after: float = 0.0
    generation_steps: int = 0
    judge_pairs: int = 0

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class RepairResult:
    """A repaired set.

    Attributes:
        panels: the panels after repair (row-major); untouched ones are the input's objects.
        grid: the panels composed by the layout.
        panels_before: the input panels.
        score_before / score_after: the judge's scores (``score_after.score >= score_before.score``).
        rounds: the log, one ``RepairRound`` per round run.
        stop_reason: "target reached", "already at target", "rounds used up" or "cancelled".
        cancel_error: on cancel, what the host's cancel check raised (the caller may re-raise it
            after keeping the best set).
        path: "grid" or "edit".
        usage: time and peak memory.
        settings: how it was run.
    """

    panels: list[Any]
    grid: Any
    panels_before: list[Any]
    score_before: SetScore
    score_after: SetScore
    rounds: list[RepairRound]
    stop_reason: str
    cancel_error: BaseException | None = None
    path: str = "grid"
    usage: Usage = field(default_factory=Usage)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        return self.cancel_error is not None

    @property
    def changed_panels(self) -> list[int]:
        """0-based panels that were replaced."""
        return sorted({r.panel for r in self.rounds if r.kept_try is not None})


class _Cancelled(BaseException):
    """Raised through the model and judge calls when the host's cancel check fires (a
    BaseException, like ComfyUI's interrupt, so no ``except Exception`` on the way swallows it)."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


def _guarded(hooks: Hooks) -> Hooks:
    """The host's hooks, with whatever they raise marked as a cancel: any exception, or a
    BaseException such as ComfyUI's interrupt (which its progress bar raises from an update, too)."""

    def progress(done: int, total: int) -> None:
        try:
            hooks.progress(done, total)
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as error:  # the host's cancel, whatever its type
            raise _Cancelled(error) from error

    def check_cancel() -> None:
        try:
            hooks.check_cancel()
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as error:  # the host's cancel, whatever its type
            raise _Cancelled(error) from error

    return Hooks(progress=progress, check_cancel=check_cancel)


def repair_set(
    loaded,
    judge: JudgeBackend,
    panels: Sequence,
    theme: str | None,
    *,
    layout: str,
    panel_prompts: Sequence[str] = (),
    description: str = "",
    options: RepairOptions = RepairOptions(),
    hooks: Hooks = NO_HOOKS,
) -> RepairResult:
    """Regenerate the weakest panel, round after round, keeping only tries that raise the set score.

    Args:
        loaded: a ``LoadedPipeline``: FLUX.1-dev (grid inpainting; with the PaCo LoRA) or an edit model.
        judge: the judge (its score cache makes unchanged pairs free).
        panels: the set's panels (PIL, one size), row-major.
        theme: the judge's theme for the set (and the grid prompt's theme).
        layout: "RxC" holding exactly the panels.
        panel_prompts: one prompt per panel (what it should show); () = the theme for each. The
            grid path builds the grid prompt from them; the edit path uses the weak panel's as the
            instruction.
        description: what every panel shares (grid prompt).
        options: target, tries per round, rounds, sampling.
        hooks: progress over the budget's denoising steps; cancel keeps the best set so far.

    Returns:
        ``RepairResult`` (on cancel: the best set so far, ``stop_reason`` "cancelled").
    """
    from paco_core.images import compose_grid
    from paco_core.prompts import parse_layout

    # 1. check everything before any model runs
    path = panel_path(loaded.kind)
    if path is None:
        raise InputError(f"cannot repair a set with a {loaded.kind} pipeline.")
    grid_layout = parse_layout(layout)
    panels = _check_panels(panels, grid_layout)
    prompts = _panel_prompts(panel_prompts, theme, len(panels))
    from paco_core.consistency.cells import check_cells

    locked = check_cells(options.locked, len(panels), "locked")
    if len(locked) >= len(panels):
        raise InputError(f"`locked` locks all {len(panels)} panels: leave at least one to repair.")
    guarded = _guarded(hooks)
    budget = options.max_rounds * options.tries_per_round * _steps_per_try(path, options)
    with measure(loaded.device) as usage:
        # 2. score the set as given
        try:
            before = _score(judge, [panels], theme, guarded)[0]
        except _Cancelled as cancelled:  # nothing to keep yet
            raise cancelled.cause from None
        state = _State(panels=list(panels), score=before)
        regenerate = _Regenerator(
            loaded, path, grid_layout, prompts, theme, description, options, guarded, budget
        )
        try:
            # 3. rounds until the target or the budget
            stop = _run_rounds(state, judge, theme, locked, options, regenerate)
        except _Cancelled as cancelled:
            state.cancel_error, stop = cancelled.cause, "cancelled"
            logger.info("repair cancelled after %d round(s); keeping the best set so far", len(state.rounds))
        except KeyboardInterrupt as interrupt:  # Ctrl-C in the CLI: the best set so far is consistent
            state.cancel_error, stop = interrupt, "cancelled"
        finally:
            regenerate.close()
    return RepairResult(
        panels=state.panels,
        grid=compose_grid(state.panels, grid_layout),
        panels_before=list(panels),
        score_before=before,
        score_after=state.score,
        rounds=state.rounds,
        stop_reason=stop,
        cancel_error=state.cancel_error,
        path=path,
        usage=usage,
        settings={"layout": str(grid_layout), "theme": theme, "panel_prompts": prompts, **asdict(options)},
    )


@dataclass
class _State:
    panels: list[Any]
    score: SetScore
    rounds: list[RepairRound] = field(default_factory=list)
    cancel_error: BaseException | None = None


def _run_rounds(state: _State, judge, theme, locked, options: RepairOptions, regenerate) -> str:
    if state.score.score >= options.target_score:
        return "already at target"
    for number in range(1, options.max_rounds + 1):
        weakest = min(
            (i for i in range(len(state.panels)) if i not in locked), key=lambda i: state.score.per_image[i]
        )
        log = RepairRound(number, weakest, state.score.per_image[weakest], state.score.score)
        state.rounds.append(log)
        candidates = []
        for attempt in range(options.tries_per_round):
            seed = options.seed + (number - 1) * options.tries_per_round + attempt
            new_panel = regenerate(state.panels, state.score, weakest, seed)
            candidates.append([new_panel if i == weakest else p for i, p in enumerate(state.panels)])
            log.seeds.append(seed)
            log.generation_steps += regenerate.steps_per_try
        asked_before = _asked(judge)
        scores = _score(judge, candidates, theme, regenerate.hooks)
        log.judge_pairs = _asked(judge) - asked_before if asked_before is not None else _new_pairs(candidates)
        log.try_scores = [result.score for result in scores]
        best = max(range(len(scores)), key=lambda k: (scores[k].score, -k))
        if scores[best].score > state.score.score:
            log.kept_try = best
            state.panels, state.score = candidates[best], scores[best]
        log.score_after = state.score.score
        if state.score.score >= options.target_score:
            return "target reached"
    return "rounds used up"


def _asked(judge) -> int | None:
    """Pairs the judge's cache has missed so far (questions really asked), when it has one."""
    cache = getattr(judge, "cache", None)
    return getattr(cache, "misses", None)


def _new_pairs(candidates) -> int:
    return len(candidates) * (len(candidates[0]) - 1)


def _score(judge, sets, theme, hooks: Hooks) -> list[SetScore]:
    from paco_core.reward.scoring import score_sets

    return score_sets(judge, sets, theme, hooks=Hooks(check_cancel=hooks.check_cancel))


def _steps_per_try(path: str, options: RepairOptions) -> int:
    from paco_core.consistency.inpaint import denoising_steps

    return denoising_steps(options.steps, options.strength) if path == "grid" else options.steps


class _Regenerator:
    """Makes a new version of one panel: grid inpainting or an edit of the best panels."""

    def __init__(
        self, loaded, path, layout, prompts, theme, description, options: RepairOptions, hooks, budget
    ):
        from paco_core.models.lora import lora_scope

        self.loaded, self.path, self.layout, self.prompts = loaded, path, layout, prompts
        self.options, self.hooks, self.budget, self.done = options, hooks, budget, 0
        self.steps_per_try = _steps_per_try(path, options)
        self._scope = lora_scope(loaded)
        self.pipe = self._scope.__enter__()
        self.embeddings = None
        if path == "grid":
            from paco_core.consistency.inpaint import encode_grid_prompt
            from paco_core.models.pipelines import execution_device
            from paco_core.prompts import build_grid_prompt

            try:
                prompt = build_grid_prompt(theme or prompts[0], description, prompts, layout)
                self.embeddings = encode_grid_prompt(
                    self.pipe, prompt, execution_device(loaded), options.max_sequence_length
                )
            except BaseException:
                self.close()
                raise

    def __call__(self, panels, score: SetScore, weakest: int, seed: int):
        from paco_core.images import compose_grid, split_grid

        done_before, self.done = self.done, self.done + self.steps_per_try
        if self.path == "grid":
            from paco_core.consistency.inpaint import inpaint_cells

            grid = inpaint_cells(
                self.pipe,
                compose_grid(panels, self.layout),
                self.layout,
                (weakest,),
                self.embeddings,
                steps=self.options.steps,
                guidance=FLUX_GUIDANCE if self.options.guidance is None else self.options.guidance,
                seed=seed,
                strength=self.options.strength,
                max_sequence_length=self.options.max_sequence_length,
                hooks=self.hooks,
                done_before=done_before,
                total=self.budget,
            )
            return split_grid(grid, self.layout)[weakest]
        from paco_core.consistency.edits import edit_from_references

        count = family(self.loaded.kind).num_references  # the best panels an edit repair shows the model
        best = sorted((i for i in range(len(panels)) if i != weakest), key=lambda i: -score.per_image[i])[
            :count
        ]
        return edit_from_references(
            self.pipe,
            self.loaded.kind,
            [panels[i] for i in best],
            self.prompts[weakest],
            steps=self.options.steps,
            guidance=self.options.guidance,
            seed=seed,
            hooks=self.hooks,
            done_before=done_before,
            total=self.budget,
            max_sequence_length=self.options.max_sequence_length,
        )

    def close(self) -> None:
        if self._scope is not None:
            scope, self._scope = self._scope, None
            scope.__exit__(None, None, None)


def _check_panels(panels: Sequence, layout) -> list:
    from PIL import Image

    if panels is None or isinstance(panels, (str, bytes)) or isinstance(panels, Image.Image):
        raise InputError("`panels` should be a list of panel images (or a grid split by its layout).")
    panels = list(panels)
    if len(panels) != layout.num_panels:
        raise InputError(
            f"`panels`: layout {layout} holds {layout.num_panels} panels, got {len(panels)}; give the whole set "
            "or choose the layout it was made with."
        )
    for number, panel in enumerate(panels, start=1):
        if not isinstance(panel, Image.Image):
            raise InputError(f"`panels`: panel {number} should be a PIL image, got {type(panel).__name__}.")
    sizes = sorted({panel.size for panel in panels})
    if len(sizes) > 1:
        listed = ", ".join(f"{w}x{h}" for w, h in sizes)
        raise InputError(f"`panels` should all have one size, got {listed}; a set's panels share a size.")
    width, height = sizes[0]
    if width % 16 or height % 16:
        raise InputError(
            f"`panels` are {width}x{height}; the models need panel sides that are multiples of 16 "
            f"(e.g. {max(16, width // 16 * 16)}x{max(16, height // 16 * 16)})."
        )
    return [panel if panel.mode == "RGB" else panel.convert("RGB") for panel in panels]


def _panel_prompts(panel_prompts: Sequence[str], theme: str | None, count: int) -> list[str]:
    if isinstance(panel_prompts, str):
        panel_prompts = [panel_prompts]
    prompts = [" ".join(str(text).split()) for text in panel_prompts or ()]
    if not prompts:
        if not theme or not theme.strip():
            raise InputError("`theme` is empty and no `panel_prompts` were given: say what the set shows.")
        return [" ".join(theme.split())] * count
    if len(prompts) != count:
        raise InputError(f"`panel_prompts`: give one prompt per panel ({count}), got {len(prompts)}.")
    empty = [n for n, text in enumerate(prompts, start=1) if not text]
    if empty:
        raise InputError(f"`panel_prompts`: panel prompt(s) {empty} are empty.")
    return prompts

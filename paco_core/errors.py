"""One error family for everything a user can get wrong.

Every message says what was wrong, what was received and how to fix it, so a ComfyUI
user reading it in the UI knows what to change.
"""


class PaCoError(Exception):
    """Base class of every error this project raises on purpose."""


class InputError(PaCoError, ValueError):
    """A value given by the user (node input, CLI flag, function argument) is invalid."""


class ConfigError(InputError):
    """A configuration file or dataclass holds an invalid or contradictory value.

    ``field`` names the config key the error is about (``"rewards.judge_path"``) where one
    does, so a node can say it in its own words instead of matching the message text."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ModelLoadError(PaCoError):
    """A model folder, hub id or weights file cannot be loaded as the expected kind."""


class LoraError(PaCoError):
    """A LoRA file is unreadable or does not fit the model it is applied to."""


class JudgeError(PaCoError):
    """The judge could not produce a score (bad model, failed server, missing logprobs)."""


class RewardError(PaCoError):
    """A reward function failed, or too many samples of a batch could not be scored."""


class RewardOutputError(RewardError):
    """A reward function returned the wrong number of scores: a bug in the function, so the
    batch is not retried sample by sample."""


class TrainingError(PaCoError):
    """Training cannot start or continue (bad state, missing checkpoint, diverged run)."""


class CancelledError(PaCoError):
    """The user cancelled the running work (ComfyUI's cancel, SIGTERM, job cancel)."""

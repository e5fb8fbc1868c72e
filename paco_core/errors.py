"""One error family for everything a user can get wrong.

Every message says what was wrong, what was received and how to fix it, so a ComfyUI
user reading it in the UI knows what to change.
"""


class PaCoError(Exception):
    """Base class of every error this project raises on purpose.

    ``field`` names what the error is about where one thing (or a few) is: a config key
    (``"rewards.judge_path"``), a request's input (``"advanced_json"``), a file's role
    (``"vae"``). A caller says it in its own words through a table keyed by the field,
    never by matching the message text. ``fields`` holds them all (``field`` is the first).
    """

    def __init__(self, *args: object, field: str | tuple[str, ...] | None = None) -> None:
        super().__init__(*args)
        self.fields: tuple[str, ...] = (field,) if isinstance(field, str) else tuple(field or ())

    @property
    def field(self) -> str | None:
        return self.fields[0] if self.fields else None


class InputError(PaCoError, ValueError):
    """A value given by the user (node input, CLI flag, function argument) is invalid."""


class ConfigError(InputError):
    """A configuration file or dataclass holds an invalid or contradictory value (``field``:
    the config key, e.g. ``"rewards.judge_path"``)."""


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

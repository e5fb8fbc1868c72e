"""Hub ids: the one place that turns ``owner/name`` into a local folder."""

from __future__ import annotations

import os
from pathlib import Path

from paco_core.containment import is_hub_id
from paco_core.errors import ModelLoadError


def hub_snapshot(repo_id: str, *, what: str, hint: str = "", allow_patterns: list[str] | None = None) -> Path:
    """The local snapshot of a hub id: downloaded once into the Hugging Face cache, read
    from it offline (``HF_HUB_OFFLINE=1``).

    Args:
        repo_id: ``owner/name``.
        what: what the id names, for messages ("model", "judge", "CLIP processor").
        hint: what to give instead, appended to the not-a-hub-id message.
        allow_patterns: fetch only these files (None: the whole repository).
    """
    if not is_hub_id(repo_id):
        raise ModelLoadError(
            f"{what} {repo_id!r} not found: no such folder, and it is not a hub id of the form owner/name."
            + (f" {hint}" if hint else "")
        )
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow_patterns))
    except (OSError, ValueError, HFValidationError) as error:
        if constants.HF_HUB_OFFLINE and isinstance(error, LocalEntryNotFoundError):
            switches = " and ".join(
                f"{name}=1" for name in OFFLINE_VARIABLES if _is_true(os.environ.get(name))
            )
            raise ModelLoadError(
                f"{what} {repo_id!r}: no local folder of that name, and the hub id could not be fetched: it is not "
                f"in the Hugging Face cache and offline mode is on ({switches or 'HF_HUB_OFFLINE=1'}). Download it "
                f"once where downloads are allowed (hf download {repo_id}) or give a local folder."
            ) from error
        raise ModelLoadError(
            f"{what} {repo_id!r}: no local folder of that name, and the hub id could not be fetched "
            f"({type(error).__name__}: {_first_line(error)}). Download it first (hf download {repo_id}) or give "
            "a local folder."
        ) from error


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
"""Environment variables that turn huggingface_hub's downloads off."""


def _is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else "no details")[:300]

"""Settings read from environment variables: what the ComfyUI nodes may reach, and how many
models stay cached. Torch-free; read at each use, so a changed variable takes effect on the
next node run without a restart.

| Variable                   | Default | Meaning                                                        |
|----------------------------|---------|----------------------------------------------------------------|
| PACO_ALLOW_OUTSIDE_PATHS   | 0       | nodes may load model, LoRA and judge paths outside ComfyUI's models folders |
| PACO_ALLOW_REMOTE_JUDGE    | 0       | the Judge Loader node may call judge servers that are not on this machine |
| PACO_ALLOW_HUB_DOWNLOADS   | 1       | nodes may take hub ids (owner/name) and download them          |
| PACO_REWARD_FOLDERS        | (none)  | more folders user rewards (`module:function` = `module.py`) load from, `os.pathsep`-separated; ComfyUI adds `<user dir>/paco/rewards` |
| PACO_ALLOW_REWARD_IMPORTS  | 0 in ComfyUI, 1 on the command line | user rewards may also be installed modules (imported by name) |
| PACO_PIPELINE_CACHE_SIZE   | 2       | generation pipelines kept loaded (least recently used leave first; 0 = none) |
| PACO_JUDGE_CACHE_SIZE      | 1       | local judges kept loaded by the Judge Loader (keep-loaded on)  |

The command line is not restricted by the ALLOW settings (a training job started from ComfyUI
carries ComfyUI's reward settings): a shell user can already read any
file and reach any address. See docs/security.md.
"""

from __future__ import annotations

import os

from paco_core.errors import InputError

ALLOW_OUTSIDE_PATHS = "PACO_ALLOW_OUTSIDE_PATHS"
ALLOW_REMOTE_JUDGE = "PACO_ALLOW_REMOTE_JUDGE"
ALLOW_HUB_DOWNLOADS = "PACO_ALLOW_HUB_DOWNLOADS"
REWARD_FOLDERS = "PACO_REWARD_FOLDERS"
ALLOW_REWARD_IMPORTS = "PACO_ALLOW_REWARD_IMPORTS"
PIPELINE_CACHE_SIZE = "PACO_PIPELINE_CACHE_SIZE"
JUDGE_CACHE_SIZE = "PACO_JUDGE_CACHE_SIZE"

DEFAULT_PIPELINE_CACHE_SIZE = 2
"""A generator and an editor: enough for one workflow; each FLUX pipeline holds ~33 GB in bf16."""
DEFAULT_JUDGE_CACHE_SIZE = 1

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def flag(name: str, default: bool) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off (any case); unset or empty = ``default``."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InputError(f"{name} should be 1 or 0 (true/false, yes/no, on/off), got {os.environ[name]!r}.")


def count(name: str, default: int) -> int:
    """A whole-number setting >= 0; unset or empty = ``default``."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise InputError(f"{name} should be a whole number >= 0, got {os.environ[name]!r}.")
    return int(value)


def allow_outside_paths() -> bool:
    return flag(ALLOW_OUTSIDE_PATHS, False)


def allow_remote_judge() -> bool:
    return flag(ALLOW_REMOTE_JUDGE, False)


def allow_hub_downloads() -> bool:
    return flag(ALLOW_HUB_DOWNLOADS, True)


def reward_folders() -> list[str]:
    """The folders of PACO_REWARD_FOLDERS (``os.pathsep``-separated, ``~`` expanded), as full paths."""
    text = os.environ.get(REWARD_FOLDERS, "")
    return [os.path.abspath(os.path.expanduser(part)) for part in text.split(os.pathsep) if part.strip()]


def allow_reward_imports(*, default: bool = True) -> bool:
    """Whether a user reward may be an installed module; ComfyUI asks with ``default=False``."""
    return flag(ALLOW_REWARD_IMPORTS, default)


def pipeline_cache_size() -> int:
    return count(PIPELINE_CACHE_SIZE, DEFAULT_PIPELINE_CACHE_SIZE)


def judge_cache_size() -> int:
    return count(JUDGE_CACHE_SIZE, DEFAULT_JUDGE_CACHE_SIZE)

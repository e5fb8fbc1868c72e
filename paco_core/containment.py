"""Containment of what a node input may reach: paths inside given folders, judge URLs on
this machine. Torch-free and ComfyUI-free: the nodes pass ComfyUI's models folders in.

Why: a ComfyUI server may be reachable by others (``--listen``), and a string input can be
fed from another node's output; without these checks a workflow could load any file the
server can read, or make the server send requests to any address.

Example:
    >>> contained_path("paco/lora.safetensors", ["/srv/models/loras"], what="LoRA")  # doctest: +SKIP
    '/srv/models/loras/paco/lora.safetensors'
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from paco_core import settings
from paco_core.errors import InputError

LOOPBACK_NAMES = ("localhost",)


def has_parent_step(name: str) -> bool:
    """Whether a path climbs with ``..`` anywhere (``/`` or ``\\`` separated)."""
    return ".." in name.replace("\\", "/").split("/")


def is_inside(path: str, root: str) -> bool:
    """Whether ``path`` lies in ``root``, comparing normalised absolute paths (not resolving
    symlinks: a link placed inside a models folder is the user's choice and allowed)."""
    path, root = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(root))
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def contained_path(
    name: str,
    roots: Sequence[str],
    *,
    what: str,
    setting: str,
    allow_outside: bool = False,
    where: str = "ComfyUI's models folders",
) -> str | None:
    """The existing file or folder ``name`` names inside one of ``roots``.

    Args:
        name: a name relative to a root (a dropdown value, ``sub/file.safetensors``) or an
            absolute path.
        roots: the folders the name may resolve into (in order).
        what: what the name is, for messages ("LoRA", "judge").
        setting: the setting that allows outside paths, for messages.
        allow_outside: also accept ``..`` and absolute paths outside ``roots``.
        where: what ``roots`` are, for messages.

    Returns:
        The full path; None when a relative name exists in no root (the caller may try it
        as a hub id).

    Raises:
        InputError: the name climbs out with ``..``, or is an absolute path outside ``roots``.
    """
    text = name.strip()
    if not text:
        raise InputError(f"{what} name is empty.")
    expanded = os.path.expanduser(text)
    if allow_outside:
        if os.path.isabs(expanded) or has_parent_step(text):
            return expanded if os.path.exists(expanded) else None
    elif has_parent_step(text):
        raise InputError(
            f"{what} {text!r} climbs out of its folder with '..'; node inputs resolve only inside "
            f"{where}. Put the file there (a symlink is fine) or set {setting}=1."
        )
    if os.path.isabs(expanded):
        if any(is_inside(expanded, root) for root in roots) or allow_outside:
            return expanded if os.path.exists(expanded) else None
        raise InputError(
            f"{what} {text!r} is outside {where} ({', '.join(roots) or 'none configured'}); "
            f"node inputs resolve only inside them. Put it there (a symlink is fine) or set {setting}=1."
        )
    for root in roots:
        candidate = os.path.join(root, text)
        if os.path.exists(candidate):
            return candidate
    return expanded if allow_outside and os.path.exists(expanded) else None


def is_loopback_url(url: str) -> bool:
    """Whether an http(s) URL names this machine: ``localhost``, 127.0.0.0/8 or ``::1``."""
    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:  # e.g. an unbalanced [ in the host
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # any other host name could resolve anywhere


def check_judge_url(url: str, *, setting: str, allow_remote: bool = False, key: str = "") -> str:
    """``url`` when it names this machine (or remote servers are allowed), else InputError."""
    if allow_remote or is_loopback_url(url):
        return url
    try:
        host = urlsplit(url.strip()).hostname or "(no host)"
    except ValueError:
        host = "(unreadable)"
    raise InputError(
        f"{f'`{key}` ' if key else ''}judge server {url} is not on this machine (host {host}); from ComfyUI only loopback judge servers "
        f"(127.0.0.1, localhost, ::1) are allowed, so a workflow cannot make ComfyUI send requests elsewhere. "
        f"Set {setting}=1 to allow other hosts."
    )


def is_hub_id(text: str) -> bool:
    """Whether ``text`` has the form of a hub id (``owner/name``), not of a path."""
    return text.count("/") == 1 and not text.startswith(("/", ".", "~"))


# --- one rule for every door: node inputs, a training config from ComfyUI (advanced_json), routes ---


@dataclass(frozen=True)
class ContainmentRules:
    """Where the inputs of one door (ComfyUI) may reach, and the opt-in settings that widen it.

    Args:
        model_roots: folders model paths may resolve into (ComfyUI's models folders).
        data_roots: folders prompt files and edit images may come from (ComfyUI's input folder,
            the job store's prompts folder).
        reward_folders: folders user reward modules (``module:function``) load from.
        fixed_folders: further folders the door itself fills in (ComfyUI's ``comfy`` package).
        allow_outside_paths / allow_remote_judge / allow_hub_downloads / allow_reward_imports:
            the settings (``paco_core.settings``) that widen the rule.
    """

    model_roots: tuple[str, ...]
    data_roots: tuple[str, ...]
    reward_folders: tuple[str, ...] = ()
    fixed_folders: tuple[str, ...] = ()
    allow_outside_paths: bool = False
    allow_remote_judge: bool = False
    allow_hub_downloads: bool = True
    allow_reward_imports: bool = False

    @classmethod
    def from_settings(
        cls, *, model_roots, data_roots, reward_folders=(), fixed_folders=()
    ) -> ContainmentRules:
        """The rules with the opt-in settings read from the environment now."""
        return cls(
            model_roots=tuple(model_roots),
            data_roots=tuple(data_roots),
            reward_folders=tuple(dict.fromkeys([*reward_folders, *settings.reward_folders()])),
            fixed_folders=tuple(fixed_folders),
            allow_outside_paths=settings.allow_outside_paths(),
            allow_remote_judge=settings.allow_remote_judge(),
            allow_hub_downloads=settings.allow_hub_downloads(),
            allow_reward_imports=settings.allow_reward_imports(default=False),
        )


MODEL_PATH_KEYS = (
    "model.path", "model.transformer_file", "model.text_encoder_files", "model.vae_file",
    "model.checkpoint_file", "model.config_folder", "rewards.judge_path", "rewards.clip_path",
    "rewards.pickscore_path",
)  # fmt: skip
"""Config keys that name model files or folders (ComfyUI's models folders)."""
HUB_KEYS = ("model.path", "rewards.judge_path", "rewards.clip_path", "rewards.pickscore_path")
"""Of those, the keys that may also name a hub id (``owner/name``)."""
DATA_PATH_KEYS = ("data.train_file", "data.eval_file", "data.image_root")
"""Config keys that name prompt files and the edit images' folder (ComfyUI's input folder)."""
FIXED_PATH_KEYS = ("model.comfyui_dir",)
"""Config keys the door fills in itself (ComfyUI's ``comfy`` package folder)."""
REWARD_LIST_KEYS = ("rewards.rewards", "rewards.eval_rewards")


def contained_config(config: dict, rules: ContainmentRules) -> dict:
    """``config`` (a training config as a plain dict, before validation) with every path,
    URL and reward module checked against ``rules``; relative names become full paths.

    The one check a config from ComfyUI goes through, whether its values came from node
    inputs or from ``advanced_json``: model paths inside the models folders (or hub ids where
    hub downloads are allowed), prompt files and the image root inside the data folders,
    the judge URL on this machine, user rewards from the reward folders.

    Raises:
        InputError: a value leaves its folders; the message names the key and the setting.
    """
    checked = {key: dict(value) if isinstance(value, dict) else value for key, value in config.items()}
    for dotted in MODEL_PATH_KEYS:
        _replace(
            checked,
            dotted,
            lambda value, key: contained_config_path(
                value,
                rules.model_roots,
                key=key,
                rules=rules,
                hub=key in HUB_KEYS,
                where="ComfyUI's models folders",
            ),
        )
    for dotted in DATA_PATH_KEYS:
        _replace(
            checked,
            dotted,
            lambda value, key: contained_config_path(
                value, rules.data_roots, key=key, rules=rules, where="ComfyUI's input folder"
            ),
        )
    for dotted in FIXED_PATH_KEYS:
        _replace(
            checked,
            dotted,
            lambda value, key: contained_config_path(
                value, rules.fixed_folders, key=key, rules=rules, where="the ComfyUI it runs in"
            ),
        )
    _replace(
        checked,
        "rewards.judge_url",
        lambda value, key: check_judge_url(
            value, setting=settings.ALLOW_REMOTE_JUDGE, allow_remote=rules.allow_remote_judge, key=key
        ),
    )
    for dotted in REWARD_LIST_KEYS:
        section, _, name = dotted.partition(".")
        for spec in (checked.get(section) or {}).get(name) or ():
            reward = spec.get("name") if isinstance(spec, dict) else spec
            if isinstance(reward, str):
                check_reward_name(reward, rules)
    return checked


def contained_config_path(
    value: str, roots: Sequence[str], *, key: str, rules: ContainmentRules, where: str, hub: bool = False
) -> str:
    """A config path ``value`` (``key`` names it) as a full path inside ``roots``, or a hub id."""
    found = contained_path(
        value,
        roots,
        what=f"`{key}`",
        setting=settings.ALLOW_OUTSIDE_PATHS,
        allow_outside=rules.allow_outside_paths,
        where=where,
    )
    if found is not None:
        return found
    text = value.strip()
    if hub and is_hub_id(text):
        if rules.allow_hub_downloads:
            return text
        raise InputError(
            f"`{key}` {text!r} is a hub id, and hub downloads from ComfyUI are switched off "
            f"({settings.ALLOW_HUB_DOWNLOADS}=0): download it into ComfyUI's models folders first."
        )
    raise InputError(
        f"`{key}` {text!r} does not exist in {where} ({', '.join(roots) or 'none'}): put it there."
    )


def check_reward_name(name: str, rules: ContainmentRules) -> None:
    """A user reward ``module:function`` must be a ``module.py`` file in the reward folders
    (an installed module only with PACO_ALLOW_REWARD_IMPORTS=1): a workflow names a reward,
    the user chooses the code. Built-in names pass (the config checks them)."""
    module, sep, _ = name.partition(":")
    if not sep or rules.allow_reward_imports or reward_module_file(module, rules.reward_folders):
        return
    raise InputError(
        f"reward {name!r}: {module}.py is not in the reward folders ({', '.join(rules.reward_folders) or 'none'}); "
        "from ComfyUI user rewards load only from there, so a workflow cannot import other code. Put "
        f"{module}.py there, or set {settings.ALLOW_REWARD_IMPORTS}=1 to import installed modules."
    )


def reward_module_file(module: str, folders: Sequence[str]) -> str | None:
    """``<folder>/<module>.py`` of the first reward folder that holds it (a plain module name,
    no dots or separators: the file stays inside its folder); None when none does."""
    if not module.isidentifier():
        return None
    for folder in folders:
        candidate = os.path.join(folder, f"{module}.py")
        if os.path.isfile(candidate):
            return candidate
    return None


def _replace(config: dict, dotted: str, check) -> None:
    section, _, name = dotted.partition(".")
    block = config.get(section)
    if not isinstance(block, dict):
        return
    value = block.get(name)
    if isinstance(value, str) and value.strip():
        block[name] = check(value, dotted)
    elif isinstance(value, (list, tuple)):
        block[name] = [
            check(item, dotted) if isinstance(item, str) and item.strip() else item for item in value
        ]
    elif value not in (None, "", [], ()) and not isinstance(value, str):
        raise InputError(f"`{dotted}` should be text, got {type(value).__name__} {value!r}")

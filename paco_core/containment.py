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
from urllib.parse import urlsplit

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
    name: str, roots: Sequence[str], *, what: str, setting: str, allow_outside: bool = False
) -> str | None:
    """The existing file or folder ``name`` names inside one of ``roots``.

    Args:
        name: a name relative to a root (a dropdown value, ``sub/file.safetensors``) or an
            absolute path.
        roots: the folders the name may resolve into (in order).
        what: what the name is, for messages ("LoRA", "judge").
        setting: the setting that allows outside paths, for messages.
        allow_outside: also accept ``..`` and absolute paths outside ``roots``.

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
            f"{what} {text!r} climbs out of its folder with '..'; node inputs resolve only inside ComfyUI's "
            f"models folders. Put the file there (a symlink is fine) or set {setting}=1."
        )
    if os.path.isabs(expanded):
        if any(is_inside(expanded, root) for root in roots) or allow_outside:
            return expanded if os.path.exists(expanded) else None
        raise InputError(
            f"{what} {text!r} is outside ComfyUI's models folders ({', '.join(roots) or 'none configured'}); node "
            f"inputs resolve only inside them. Put it there (a symlink is fine) or set {setting}=1."
        )
    for root in roots:
        candidate = os.path.join(root, text)
        if os.path.exists(candidate):
            return candidate
    return expanded if allow_outside and os.path.exists(expanded) else None


def is_loopback_url(url: str) -> bool:
    """Whether an http(s) URL names this machine: ``localhost``, 127.0.0.0/8 or ``::1``."""
    host = (urlsplit(url.strip()).hostname or "").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # any other host name could resolve anywhere


def check_judge_url(url: str, *, setting: str, allow_remote: bool = False) -> str:
    """``url`` when it names this machine (or remote servers are allowed), else InputError."""
    if allow_remote or is_loopback_url(url):
        return url
    host = urlsplit(url.strip()).hostname or "(no host)"
    raise InputError(
        f"judge server {url} is not on this machine (host {host}); from ComfyUI only loopback judge servers "
        f"(127.0.0.1, localhost, ::1) are allowed, so a workflow cannot make ComfyUI send requests elsewhere. "
        f"Set {setting}=1 to allow other hosts."
    )

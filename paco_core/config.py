"""Typed configuration helpers: dataclasses <-> plain dicts / JSON, and small validators.

Every component of the pack describes its settings as a dataclass whose fields all have
defaults and help text (``field(metadata={"help": ...})``). This module turns such a
dataclass into plain data and back:

- nested sub-configs are built from plain dicts, so a config survives JSON;
- lists become tuples where the field is a tuple;
- keys this version does not know (written by a newer version) are dropped with a
  warning that names them;
- saved JSON has sorted keys and the package version under ``"paco_version"``.

Validation lives in each dataclass's ``__post_init__``, which raises
:class:`~paco_core.errors.ConfigError` through the ``check_*`` helpers below.

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Inner:
    ...     rank: int = field(default=4, metadata={"help": "LoRA rank"})
    >>> @dataclass
    ... class Outer:
    ...     inner: Inner = field(default_factory=Inner)
    >>> config_from_dict(Outer, {"inner": {"rank": 8}}).inner.rank
    8
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from paco_core import __version__
from paco_core.errors import ConfigError
from paco_core.io import atomic_write_json

logger = logging.getLogger(__name__)

T = TypeVar("T")

VERSION_KEY = "paco_version"


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain, JSON-ready dict of a (nested) config dataclass; tuples become lists."""
    if not dataclasses.is_dataclass(config):
        raise ConfigError(f"config_to_dict needs a dataclass instance, got {type(config).__name__}")
    return _to_plain(config)


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _to_plain(item) for key, item in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def config_from_dict(cls: type[T], data: dict[str, Any] | T, *, where: str = "") -> T:
    """Build the dataclass ``cls`` from a plain dict (recursively for sub-configs).

    Args:
        cls: the config dataclass.
        data: a dict as read from JSON, or an instance of ``cls`` (returned unchanged).
        where: dotted path of this section, used in messages.

    Returns:
        The validated instance (``__post_init__`` ran).

    Raises:
        ConfigError: ``data`` is not a dict, or a value is invalid.
    """
    if isinstance(data, cls):
        return data
    label = where or cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"`{label}` should be an object (JSON dict), got {type(data).__name__}: {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(key for key in data if key not in known and key != VERSION_KEY)
    if unknown:
        logger.warning(
            "Ignoring unknown config keys in `%s`: %s (written by another version?); known keys: %s",
            label,
            ", ".join(unknown),
            ", ".join(sorted(known)),
        )
    kwargs = {}
    for name, value in data.items():
        if name not in known:
            continue
        kwargs[name] = _from_plain(hints[name], value, f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise ConfigError(f"cannot build `{label}`: {error}") from error


def _from_plain(hint: Any, value: Any, where: str) -> Any:
    """Convert one plain value to the field type: sub-dataclasses and tuples."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None):
                continue
            if dataclasses.is_dataclass(option) and isinstance(value, dict):
                return config_from_dict(option, value, where=where)
            if typing.get_origin(option) in (tuple, list) and isinstance(value, (list, tuple)):
                return _from_plain(option, value, where)
        return value
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, where=where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{where}` should be a list, got {type(value).__name__}: {value!r}")
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        item_hint = args[0] if args else Any
        items = [_from_plain(item_hint, item, f"{where}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    check_number_fits(where, value)
    return value


def save_config(config: Any, path: str | os.PathLike) -> Path:
    """Write a config as JSON (sorted keys, package version included), atomically."""
    data = config_to_dict(config)
    data[VERSION_KEY] = __version__
    return atomic_write_json(path, data)


def load_config(cls: type[T], path: str | os.PathLike) -> T:
    """Read a JSON config file into the dataclass ``cls``.

    Raises:
        ConfigError: the file is missing or is not valid JSON, or a value is invalid.
    """
    return config_from_dict(cls, read_config_file(path))


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object of a config file, not yet validated (e.g. to merge over a preset).

    Raises:
        ConfigError: the file is missing, is not valid JSON, or does not hold an object.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; pass the path of a JSON config")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} should hold a JSON object, got {type(data).__name__}")
    return data


def describe_fields(cls: type) -> list[tuple[str, str, Any, str]]:
    """``(dotted name, type, default, help)`` of every field, sub-configs flattened.

    Used to print the config reference (``paco train --describe-config``) and the docs.
    """
    rows: list[tuple[str, str, Any, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            rows.extend(
                (f"{f.name}.{name}", kind, default, text)
                for name, kind, default, text in describe_fields(hint)
            )
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        rows.append((f.name, _type_name(hint), _to_plain(default), f.metadata.get("help", "")))
    return rows


def _type_name(hint: Any) -> str:
    text = str(hint)
    return text.replace("typing.", "").replace("<class '", "").replace("'>", "")


def merge_dicts(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (sections merge, values replace)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_dicts(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``section.key=VALUE`` overrides to a plain config dict (VALUE parsed as JSON,
    or kept as a string when it is not valid JSON).

    Raises:
        ConfigError: an override has no ``=``.
    """
    for override in overrides:
        if "=" not in override:
            raise ConfigError(
                f"override {override!r} should look like `section.key=value`, e.g. `optim.lr=1e-4`"
            )
        key, raw = override.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {override!r}: `{part}` is not a section")
        node[parts[-1]] = value
    return data


def check_override_keys(
    cls: type, overrides: Iterable[str], *, listing: str = "paco train --describe-config"
) -> None:
    """Refuse ``--set KEY=VALUE`` overrides whose KEY is not a field of the config dataclass
    ``cls`` (dotted, e.g. ``optim.lr``) or one of its sections, naming the closest key.

    Unknown keys in a config *file* only warn (another version may have written it); a
    key typed on the command line is a typo.

    Args:
        listing: the command that lists every key, named in the message.

    Raises:
        ConfigError: an unknown key.
    """
    import difflib

    fields = [name for name, _kind, _default, _text in describe_fields(cls)]
    known = set(fields) | {name.rsplit(".", 1)[0] for name in fields if "." in name}
    for override in overrides:
        key = override.split("=", 1)[0].strip()
        if "=" not in override or key in known:
            continue  # a missing "=" is reported by apply_overrides
        close = difflib.get_close_matches(key, fields, n=1, cutoff=0.5)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        raise ConfigError(f"--set {key}: no such config key{hint} (`{listing}` lists every key)")


# --- validators used by __post_init__ methods -------------------------------------------


MAX_WHOLE_NUMBER = 2**63 - 1
"""The largest whole number a config may hold: what SQLite (the job store) and torch's seeds hold."""


def check_number_fits(name: str, value: Any) -> None:
    """Raise ConfigError for a number no store or tensor can hold: NaN, an infinity, or a whole
    number beyond :data:`MAX_WHOLE_NUMBER` (bools and non-numbers pass: other checks name them)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"`{name}` should be a finite number, got {value!r}")
    if isinstance(value, int) and abs(value) > MAX_WHOLE_NUMBER:
        raise ConfigError(
            f"`{name}` is too large ({value}): whole numbers may be at most {MAX_WHOLE_NUMBER} "
            "(2^63 - 1, what the job store and torch hold)"
        )


def check_positive(name: str, value: float, *, allow_zero: bool = False, why: str = "") -> None:
    """Raise ConfigError unless ``value`` > 0 (or >= 0 with ``allow_zero``) and finite."""
    check_number_fits(name, value)
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        bound = "zero or positive" if allow_zero else "positive"
        raise ConfigError(f"`{name}` should be {bound}, got {value!r}{'; ' + why if why else ''}")


def check_range(name: str, value: float, low: float, high: float, *, why: str = "") -> None:
    """Raise ConfigError unless ``low <= value <= high`` (NaN never is)."""
    check_number_fits(name, value)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(
            f"`{name}` should be between {low} and {high}, got {value!r}{'; ' + why if why else ''}"
        )


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise ConfigError unless ``value`` is one of ``allowed`` (listed in the message)."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"`{name}` should be one of {', '.join(map(repr, allowed))}, got {value!r}")


def literal_choices(cls: type, field_name: str) -> tuple[Any, ...]:
    """The allowed values of a choice field (for messages and CLI choices): its ``choices``
    metadata (choices a registry holds, e.g. the model kinds), else its ``Literal[...]`` values."""
    declared = {item.name: item for item in dataclasses.fields(cls)}.get(field_name)
    if declared is not None and "choices" in declared.metadata:
        return tuple(declared.metadata["choices"])
    hint = typing.get_type_hints(cls)[field_name]
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    for option in typing.get_args(hint):
        if typing.get_origin(option) is typing.Literal:
            return typing.get_args(option)
    raise ConfigError(f"{cls.__name__}.{field_name} is not a Literal field")

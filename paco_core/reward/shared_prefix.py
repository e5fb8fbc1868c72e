"""Prefix sharing for the local judge: pairs with the same first image share its key/value cache.

A judge prompt is ``system text, first image, second image, question``. Everything up to
the end of the first image (the *prefix*) is the same for every pair that starts with the
same image, and a causal language model's keys and values of a prefix do not depend on
what follows. So the prefix of each distinct first image goes through the language model
once; each pair then runs only its *suffix* (second image and question) on top of the
prefix's cache. In a set of N panels, panel i is the first image of N - 1 - i pairs: the
prefix is computed N - 1 times instead of N (N - 1) / 2. For an edit, every candidate is
paired with the same original, so the original's prefix is computed once per group.

Rows go into a forward pass only with rows of the same length (prefix length, suffix
length), so no padding is ever computed; the 3D rope positions of prefix and suffix are
the two halves of the whole row's positions, so the scores equal the one-pass path.

This module plans the work (pure Python); ``LocalJudge`` runs it.

Example:
    >>> plan_windows([("a", "b"), ("a", "c"), ("b", "c")], max_prefixes=8, max_pairs=32)
    [PrefixWindow(prefixes=['a', 'b'], pairs=[0, 1, 2])]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PrefixWindow:
    """Prefixes whose caches are held at once, and the pairs (indices) that use them."""

    prefixes: list[str]
    pairs: list[int] = field(default_factory=list)


def worth_sharing(digests: Sequence[tuple[str, str]]) -> bool:
    """Whether at least two pairs start with the same image (else sharing saves nothing)."""
    firsts = [first for first, _ in digests]
    return len(set(firsts)) < len(firsts)


def plan_windows(
    digests: Sequence[tuple[str, str]], *, max_prefixes: int, max_pairs: int
) -> list[PrefixWindow]:
    """Group the pairs by first image into windows that bound the caches held at once.

    Args:
        digests: ``(first digest, second digest)`` per pair.
        max_prefixes: the most distinct first images (caches) in a window.
        max_pairs: a window closes once it holds this many pairs (a prefix's pairs are
            never split across windows).

    Returns:
        Windows in order of each first image's first appearance.
    """
    by_first: dict[str, list[int]] = {}
    for index, (first, _) in enumerate(digests):
        by_first.setdefault(first, []).append(index)
    windows: list[PrefixWindow] = []
    current = PrefixWindow(prefixes=[])
    for first, indices in by_first.items():
        if current.prefixes and (len(current.prefixes) >= max_prefixes or len(current.pairs) >= max_pairs):
            windows.append(current)
            current = PrefixWindow(prefixes=[])
        current.prefixes.append(first)
        current.pairs.extend(indices)
    if current.prefixes:
        windows.append(current)
    return windows


def equal_length_batches(items: Iterable[int], length_of: dict[int, Any], batch_size: int) -> list[list[int]]:
    """Items grouped by equal length key, then cut into batches of at most ``batch_size``.

    Groups keep the order of their first item; items keep their order inside a group.
    """
    groups: dict[Any, list[int]] = {}
    for item in items:
        groups.setdefault(length_of[item], []).append(item)
    return [
        group[start : start + batch_size]
        for group in groups.values()
        for start in range(0, len(group), batch_size)
    ]

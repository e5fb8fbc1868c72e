"""Shared fixtures: offline environment and the tiny models, built once per session."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models run faster on one thread than on two oversubscribed cores (measured 10x),
# and subprocesses started by tests inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


class LazyTinyModels(Mapping):
    """Folder of each tiny model, built by the production factory on first use."""

    def __init__(self, root: Path):
        self.root = root
        self._built: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._built:
            from paco_core.testing import build_tiny_model

            self._built[name] = build_tiny_model(name, self.root)
        return self._built[name]

    def __iter__(self):
        from paco_core.testing import TINY_MODEL_NAMES

        return iter(TINY_MODEL_NAMES)

    def __len__(self) -> int:
        from paco_core.testing import TINY_MODEL_NAMES

        return len(TINY_MODEL_NAMES)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> LazyTinyModels:
    """``tiny_models["flux"]`` etc.: keys flux, flux-kontext, qwen-image-edit, judge, clip
    (and qwen-image-edit-plus where diffusers has it)."""
    return LazyTinyModels(tmp_path_factory.mktemp("tiny-models"))

"""Shared fixtures: offline environment and the tiny models, built once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Paths of the tiny random-weight models: keys flux, flux-kontext, qwen-image-edit,
    judge, clip. Built by the same factory as `paco tiny-models`."""
    from paco_core.testing import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))

"""The tiny PaCo-Reward judge: a random Qwen2.5-VL with the stock processor and chat template."""

from __future__ import annotations

from pathlib import Path

from paco_core.testing.qwen_vl import build_qwen2_5_vl_model, build_qwen2_vl_processor
from paco_core.testing.tokenizers import build_qwen2_tokenizer

JUDGE_SEED = 1001


def save_tiny_judge(folder: Path) -> None:
    """Write a transformers folder loadable by ``Qwen2_5_VLForConditionalGeneration`` and
    ``AutoProcessor``: config, safetensors weights, tokenizer, chat template, image and
    video processor configs.
    """
    tokenizer = build_qwen2_tokenizer()
    processor = build_qwen2_vl_processor(tokenizer, "Qwen2_5_VLProcessor")
    model = build_qwen2_5_vl_model(tokenizer, seed=JUDGE_SEED)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)

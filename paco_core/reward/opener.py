"""The one judge opener: a judge source (a local folder, a base + LoRA adapter, a hub id or
a server URL) -> a judge ready to score pairs. The Judge Loader node, the CLI and the trainer
all open their judge here, so they accept the same sources with the same rules.

Example:
    >>> judge = open_judge("models/PaCo-Reward-7B")  # doctest: +SKIP
    >>> judge = open_judge("Qwen/Qwen2.5-VL-7B-Instruct", lora="X-GenGroup/PaCo-Reward-7B-Lora")  # doctest: +SKIP
    >>> judge = open_judge("http://127.0.0.1:8000")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from paco_core.errors import InputError
from paco_core.reward.judge_client import is_server_url

if TYPE_CHECKING:
    from paco_core.reward.judge_client import JudgeClient
    from paco_core.reward.local import LocalJudge

logger = logging.getLogger(__name__)

DEFAULT_TOP_LOGPROBS = 20
"""Log-probabilities a server judge is asked per answer token (vLLM's default limit)."""


def open_judge(
    source: str | os.PathLike,
    *,
    lora: str | os.PathLike | None = None,
    server_model: str | None = None,
    dtype: str | None = "auto",
    device: str | None = "auto",
    answers: str = "exact",
    batch_size: int | None = None,
    top_logprobs: int = DEFAULT_TOP_LOGPROBS,
    keep_loaded: bool | None = None,
    **options: Any,
) -> LocalJudge | JudgeClient:
    """Open the judge a source names.

    Args:
        source: a server URL (``http://`` / ``https://``; see ``is_server_url``), or a local
            judge folder or hub id (downloaded once into the Hugging Face cache).
        lora: local judges: a peft adapter folder or hub id put on the base model ``source``.
        server_model: server judges: the served model name; None takes the server's first.
        dtype: local judges: "auto" (bf16 on a GPU, fp32 on the CPU), "bf16", "fp16", "fp32".
        device: local judges: "auto", "cpu", "cuda", "cuda:N", "mps".
        answers: "exact" (Yes / No) or "case" (also yes/YES, no/NO).
        batch_size: local judges: image pairs per forward pass (None: LocalJudge's default).
        top_logprobs: server judges: log-probabilities asked per answer token.
        keep_loaded: local judges: None loads fresh weights no cache holds; True keeps them in
            the process-wide cache for the next open (ComfyUI's keep-loaded); False takes them
            from that cache when there and leaves them out of it.
        **options: further keyword arguments of ``LocalJudge`` (reuse_vision, prefix_sharing, cache_size),
            of ``load_judge_model`` (merge_lora) or of ``JudgeClient`` (concurrency, timeout,
            retries, image_format, cache_size, api_key), by the kind of source.

    Returns:
        A ``JudgeClient`` for a URL, whose server answered ``/v1/models`` just now (so a wrong
        URL fails here, not after the images were made); else a ``LocalJudge``.

    Raises:
        JudgeError: the server does not answer or does not serve ``server_model``.
        ModelLoadError / LoraError: the local judge or its adapter cannot be loaded.
    """
    if is_server_url(str(source)):
        return _open_server_judge(
            str(source).strip(),
            lora=lora,
            server_model=server_model,
            answers=answers,
            top_logprobs=top_logprobs,
            **options,
        )
    return _open_local_judge(
        source,
        lora=lora,
        dtype=dtype,
        device=device,
        answers=answers,
        batch_size=batch_size,
        keep_loaded=keep_loaded,
        **options,
    )


def _open_server_judge(url: str, *, lora, server_model, answers, top_logprobs, **options) -> JudgeClient:
    from paco_core.reward.judge_client import JudgeClient

    if lora:
        raise InputError(
            f"a LoRA ({lora}) applies to a local judge; the server at {url} already serves its model. "
            "Clear the LoRA, or serve the base + LoRA there."
        )
    client = JudgeClient(url, server_model or None, answers=answers, top_logprobs=top_logprobs, **options)
    return client.check_server()


def _open_local_judge(
    source, *, lora, dtype, device, answers, batch_size, keep_loaded, merge_lora: bool = True, **options
) -> LocalJudge:
    from paco_core.models.judge import cached_judge_model, load_judge_model
    from paco_core.reward.local import LocalJudge

    lora = lora or None
    if keep_loaded is None:
        weights = load_judge_model(source, lora=lora, dtype=dtype, device=device, merge_lora=merge_lora)
    else:
        weights = cached_judge_model(
            source, lora=lora, dtype=dtype, device=device, merge_lora=merge_lora, keep_loaded=keep_loaded
        )
    if batch_size is not None:
        options["batch_size"] = batch_size
    judge = LocalJudge(weights.model, weights.processor, answers=answers, name=weights.name, **options)
    # where it came from, so a training job started with this judge loads the same one
    judge.source, judge.lora = str(source), (str(lora) if lora else None)
    return judge

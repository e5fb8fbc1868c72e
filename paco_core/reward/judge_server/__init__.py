"""A small OpenAI-compatible chat-completions server answering from a local judge.

For tests (a real HTTP server around the tiny judge) and for users who want one judge
process shared by several ComfyUI instances or training runs without installing vLLM.
It answers ``GET /v1/models`` and ``POST /v1/chat/completions`` for the judge's
question shape: one user message holding two images (base64 data URLs) and a text.
With ``logprobs`` it returns the first answer token's ``top_logprobs`` computed from the
judge's full-vocabulary log-softmax, as vLLM does. It binds 127.0.0.1 by default; another
address needs ``allow_remote=True``.

One request cannot stall the others: bodies, images, ``max_tokens`` and generation time
are bounded (``ServerLimits``), a body that never arrives times out, and a request that
cannot have the judge within ``busy_wait`` seconds gets 503 with ``Retry-After``. Every
client mistake is a 400 (413 for a body over the limit, 401 without the API key) with an
OpenAI-shaped ``{"error": {"message", "type", "code"}}``.

Example:
    >>> server = JudgeHTTPServer(open_judge("models/PaCo-Reward-7B")).start()  # doctest: +SKIP
    >>> JudgeClient(server.url).score_pairs(pairs)  # doctest: +SKIP
    >>> server.close()  # doctest: +SKIP

One module per part:

    server.py         JudgeHTTPServer: start, stop, the judge's turn, the chat-completion answer
    http_handler.py   the HTTP transport: routes, API key, body reading within limits, JSON answers
    chat_requests.py  an OpenAI chat request read as a judge question (messages, image data URLs, text)
    limits.py         ServerLimits, the bytes in flight, the fair judge lock, memory given back
    address.py        where it may listen (loopback unless allowed), bind errors in one line
"""

from __future__ import annotations

from paco_core.reward.judge_server.address import bind_error_message, check_bind_address, is_loopback
from paco_core.reward.judge_server.chat_requests import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ChatRequest,
    RequestError,
    decoded_pair,
    json_from_body,
    open_data_url,
    pair_from_messages,
    parse_chat_request,
)
from paco_core.reward.judge_server.http_handler import JudgeRequestHandler, QuietThreadingHTTPServer
from paco_core.reward.judge_server.limits import (
    MMAP_THRESHOLD_BYTES,
    ByteBudget,
    FairLock,
    ServerLimits,
    busy_error,
    return_freed_memory_promptly,
)
from paco_core.reward.judge_server.server import API_KEY_ENV, DEFAULT_MAX_LOGPROBS, JudgeHTTPServer

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_LOGPROBS",
    "MMAP_THRESHOLD_BYTES",
    "ByteBudget",
    "ChatRequest",
    "FairLock",
    "JudgeHTTPServer",
    "JudgeRequestHandler",
    "QuietThreadingHTTPServer",
    "RequestError",
    "ServerLimits",
    "bind_error_message",
    "busy_error",
    "check_bind_address",
    "decoded_pair",
    "is_loopback",
    "json_from_body",
    "open_data_url",
    "pair_from_messages",
    "parse_chat_request",
    "return_freed_memory_promptly",
]

"""The judge client: a judge behind an OpenAI-compatible chat-completions endpoint (what
``vllm serve`` and ``paco serve-judge`` expose) asked for the log-probabilities of one
answer token. (The server side is ``paco_core.reward.judge_server``.)

Each pair is one request: the two images as base64 data URLs, then the prompt text;
``max_tokens=1``, ``temperature=0``, ``logprobs=true`` and ``top_logprobs``. Requests run
in a bounded thread pool; a failed request is retried with exponential backoff, and a
request that still fails raises ``JudgeError`` naming the URL. A failure never becomes
a score.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.errors import InputError, JudgeError
from paco_core.reward.backend import (
    PairRequest,
    answer_tokens,
    check_pairs,
    score_from_logprobs,
    score_through_cache,
)
from paco_core.reward.cache import DEFAULT_CACHE_SIZE, ScoreCache

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

IMAGE_FORMATS = {"png": "image/png", "jpeg": "image/jpeg"}
"""PNG is lossless (the server sees the exact pixels); JPEG is smaller and shifts scores
slightly. We write JPEG at quality 95; the released PaCo code sends JPEG at PIL's default
quality, 75 (``image.save(buffer, format="JPEG")``)."""

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
"""Answers worth another attempt (busy, overloaded, timed out); any other status (400 bad
request, 401 wrong key, 404, 413 too large) is the client's mistake and fails at once."""
TRANSPORT_ERRORS = (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError, OSError)
"""Failures on the way to or from the server (refused, reset, cut-off answer): retried."""
URL_SCHEMES = ("http://", "https://")
CHECK_TIMEOUT = 5.0
"""Seconds ``check_server`` waits for ``/v1/models``: a running server answers at once."""
MAX_RETRY_AFTER = 30.0
API_KEY_ENV = "PACO_JUDGE_API_KEY"


def is_server_url(source: str | os.PathLike) -> bool:
    """Whether a judge source names a server (``http://`` or ``https://``) rather than a
    folder or a hub id. The one rule every caller (nodes, CLI, trainer) goes by."""
    return isinstance(source, str) and source.strip().lower().startswith(URL_SCHEMES)


class JudgeClient:
    """A judge behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Args:
        url: the server, e.g. ``http://127.0.0.1:8000`` (``/v1`` and ``/v1/chat/completions``
            are accepted too).
        model: the served model name; None asks the server's ``/v1/models`` for its first model.
        concurrency: requests in flight at once.
        timeout: seconds to wait for one response.
        retries: extra attempts after a failed request (connection error, timeout, 408/429/5xx).
        backoff: seconds before the first retry; doubled after each failure.
        top_logprobs: log-probabilities asked per answer token (vLLM's default limit is 20;
            raise it with ``--max-logprobs``).
        image_format: "png" (lossless) or "jpeg".
        answers: "exact" or "case" (see ``paco_core.reward.backend.ANSWER_TOKENS``).
        cache_size: pair scores kept in the LRU cache (0 disables it).
        api_key: sent as ``Authorization: Bearer ...``; None reads ``$PACO_JUDGE_API_KEY``
            (none sent when that is unset too).

    Example:
        >>> judge = JudgeClient("http://127.0.0.1:8000", "X-GenGroup/PaCo-Reward-7B")  # doctest: +SKIP
        >>> judge.score_pairs([PairRequest(img_a, img_b, prompt)])  # doctest: +SKIP
        [0.91]
    """

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        top_logprobs: int = 20,
        image_format: str = "png",
        answers: str = "exact",
        cache_size: int = DEFAULT_CACHE_SIZE,
        api_key: str | None = None,
    ):
        self.base_url, self.completions_url = normalise_url(url)
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InputError(f"concurrency should be a whole number >= 1, got {concurrency!r}.")
        if not isinstance(retries, int) or retries < 0:
            raise InputError(f"retries should be a whole number >= 0, got {retries!r}.")
        if not timeout or timeout <= 0:
            raise InputError(f"timeout should be a positive number of seconds, got {timeout!r}.")
        if not isinstance(top_logprobs, int) or top_logprobs < 1:
            raise InputError(f"top_logprobs should be a whole number >= 1, got {top_logprobs!r}.")
        if image_format not in IMAGE_FORMATS:
            raise InputError(
                f"image_format should be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}."
            )
        answer_tokens(answers)
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self.top_logprobs = top_logprobs
        self.image_format = image_format
        self.answers = answers
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        self.cache = ScoreCache(cache_size)
        self._model = model
        self._model_lock = threading.Lock()
        self.name = f"judge server {self.completions_url}"
        self._pinned_urls: dict[int, tuple[Image.Image, str]] = {}

    def check_server(self, timeout: float = CHECK_TIMEOUT) -> JudgeClient:
        """Ask ``/v1/models`` now (short timeout) so a wrong URL or model name fails before any
        work that needs the judge; fills in the model name when none was given.

        Returns:
            self.

        Raises:
            JudgeError: the server does not answer, lists no model, or does not serve the model.
        """
        served = self._served_models(timeout)
        with self._model_lock:
            if self._model is None:
                if not served:
                    raise JudgeError(
                        f"judge server {self.base_url}/v1/models lists no model; give the model name."
                    )
                self._model = served[0]
            elif served and self._model not in served:
                raise JudgeError(
                    f"judge server {self.base_url} serves {', '.join(map(repr, served))}, not {self._model!r}: "
                    "set the server model name to one of them, or leave it empty to use the first."
                )
        return self

    @property
    def model(self) -> str:
        """The served model name (asked from the server once when not given)."""
        with self._model_lock:
            if self._model is None:
                self._model = self._first_served_model()
            return self._model

    def score_pairs(self, pairs: Sequence[PairRequest], hooks: Hooks = NO_HOOKS) -> list[float]:
        """The Yes-probability of each pair, in order (see ``JudgeBackend``)."""

        def score_missing(todo_pairs: list[PairRequest], todo_digests: list[tuple[str, str]]) -> list[float]:
            return self._score_concurrently(self.model, todo_pairs, hooks)

        return score_through_cache(self.cache, pairs, self.answers, score_missing, hooks)

    def explain(self, pair: PairRequest, max_new_tokens: int = 256) -> str:
        """The judge's generated answer (Yes/No and its reasons) for a pair."""
        check_pairs([pair])
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise InputError(f"max_new_tokens should be a whole number >= 1, got {max_new_tokens!r}.")
        body = self._request_body(self.model, pair, max_tokens=max_new_tokens, logprobs=False)
        response = self._post_with_retries(body)
        try:
            return str(response["choices"][0]["message"]["content"]).strip()
        except (KeyError, IndexError, TypeError) as error:
            raise JudgeError(
                f"{self.completions_url} answered without choices[0].message.content."
            ) from error

    # -- requests -------------------------------------------------------------------------

    def _score_concurrently(self, model: str, pairs: list[PairRequest], hooks: Hooks) -> list[float]:
        """One request per pair in a bounded thread pool; scores in the order of ``pairs``."""
        results: dict[int, float] = {}
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="paco-judge")
        try:
            pending: dict[Future, int] = {
                pool.submit(self._score_one, model, pair, stop): index for index, pair in enumerate(pairs)
            }
            while pending:
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    results[pending.pop(future)] = future.result()
                    hooks.progress(len(results), len(pairs))
                hooks.check_cancel()
        finally:
            stop.set()  # requests still in flight make no further attempts
            pool.shutdown(wait=False, cancel_futures=True)
        return [results[index] for index in range(len(pairs))]

    def _score_one(self, model: str, pair: PairRequest, stop: threading.Event) -> float:
        body = self._request_body(model, pair, max_tokens=1, logprobs=True)
        response = self._post_with_retries(body, stop)
        return score_from_logprobs(self._answer_logprobs(response), self.answers, source=self.completions_url)

    def pin_images(self, images: Sequence[Image.Image]) -> None:
        """Encode ``images`` as data URLs now and reuse them in every later request that shows
        these same image objects (a training job's reference images): encoded once per judge."""
        for image in images:
            if id(image) not in self._pinned_urls:
                self._pinned_urls[id(image)] = (image, image_data_url(image, self.image_format))

    def _data_url(self, image: Image.Image) -> str:
        pinned = self._pinned_urls.get(id(image))
        if pinned is not None and pinned[0] is image:
            return pinned[1]
        return image_data_url(image, self.image_format)

    def _request_body(self, model: str, pair: PairRequest, *, max_tokens: int, logprobs: bool) -> dict:
        content = [
            {"type": "image_url", "image_url": {"url": self._data_url(pair.first)}},
            {"type": "image_url", "image_url": {"url": self._data_url(pair.second)}},
            {"type": "text", "text": pair.prompt},
        ]
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        if logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = self.top_logprobs
        return body

    def _answer_logprobs(self, response: dict) -> dict[str, float]:
        """token -> log-probability of the first answer token (its top list plus the chosen token)."""
        try:
            first = response["choices"][0]["logprobs"]["content"][0]
            listed = {item["token"]: float(item["logprob"]) for item in first.get("top_logprobs") or []}
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise JudgeError(
                f"{self.completions_url} returned no logprobs for the answer token. The judge needs an "
                "OpenAI-compatible server that honours logprobs/top_logprobs (vLLM: start it with "
                f"--max-logprobs {self.top_logprobs} or more)."
            ) from error
        if "token" in first and "logprob" in first:
            listed.setdefault(first["token"], float(first["logprob"]))
        if not listed:
            raise JudgeError(f"{self.completions_url} returned an empty logprobs list for the answer token.")
        return listed

    def _post_with_retries(self, body: dict, stop: threading.Event | None = None) -> dict:
        stop = stop or threading.Event()
        data = json.dumps(body).encode("utf-8")
        last_error = ""
        retry_after = 0.0
        for attempt in range(self.retries + 1):
            if attempt and stop.wait(max(self.backoff * 2 ** (attempt - 1), retry_after)):
                raise JudgeError(
                    f"judge request to {self.completions_url} stopped: another request of the call failed."
                )
            retry_after = 0.0
            try:
                return self._http_json(self.completions_url, data)
            except urllib.error.HTTPError as error:
                detail = error_detail(error.read(4096))
                if error.code not in RETRYABLE_STATUS:  # the request itself is wrong: no retry
                    raise JudgeError(
                        f"judge server {self.completions_url} refused the request (HTTP {error.code}): {detail}"
                    ) from None
                last_error = f"HTTP {error.code}: {detail}"
                retry_after = retry_after_seconds(error.headers)
            except TRANSPORT_ERRORS as error:
                last_error = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
            except json.JSONDecodeError as error:
                last_error = f"the answer is not JSON ({error})"
            logger.warning(
                "judge request to %s failed (attempt %d): %s", self.completions_url, attempt + 1, last_error
            )
        raise JudgeError(
            f"judge server {self.completions_url} did not answer after {attempt + 1} attempt(s): {last_error}. "
            "Check that the server runs and serves the judge (e.g. vllm serve X-GenGroup/PaCo-Reward-7B)."
        )

    def _http_json(self, url: str, data: bytes | None, timeout: float | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
        with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
            return json.loads(response.read().decode("utf-8"))

    def _first_served_model(self) -> str:
        served = self._served_models(self.timeout)
        if not served:
            raise JudgeError(
                f"judge server {self.base_url}/v1/models lists no model; give the model name explicitly."
            )
        return served[0]

    def _served_models(self, timeout: float) -> list[str]:
        """The model ids ``/v1/models`` lists (empty when it lists none)."""
        url = f"{self.base_url}/v1/models"
        try:
            listing = self._http_json(url, None, timeout=timeout)
        except urllib.error.HTTPError as error:
            detail = error.read()[:300].decode("utf-8", "replace")
            raise JudgeError(
                f"judge server {url} answered HTTP {error.code} ({error.reason}): {detail}. Check the URL (the server "
                "root, e.g. http://127.0.0.1:8000) and the API key."
            ) from error
        except (*TRANSPORT_ERRORS, json.JSONDecodeError) as error:
            raise JudgeError(
                f"judge server {url} did not answer ({type(error).__name__}: {getattr(error, 'reason', error)}). "
                "Start the server (paco serve-judge --judge FOLDER, or vllm serve X-GenGroup/PaCo-Reward-7B) "
                "or fix the URL."
            ) from error
        try:
            return [str(entry["id"]) for entry in listing["data"]]
        except (KeyError, TypeError) as error:
            raise JudgeError(
                f"judge server {url} answered without a model list (data[].id): is it an OpenAI-compatible server?"
            ) from error


def error_detail(data: bytes) -> str:
    """The message of an OpenAI-shaped error answer (``{"error": {"message": ...}}``), else
    the answer's first 300 characters."""
    text = data.decode("utf-8", "replace")
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return text[:300]
    return str(message)[:1000]


def retry_after_seconds(headers: Any) -> float:
    """The seconds a ``Retry-After`` header asks to wait (0 when absent or a date), at most 30."""
    try:
        return min(max(float(headers.get("Retry-After") or 0), 0.0), MAX_RETRY_AFTER)
    except (TypeError, ValueError, AttributeError):
        return 0.0


def normalise_url(url: str) -> tuple[str, str]:
    """(server root, chat-completions URL) of a server URL given with or without ``/v1``."""
    if not is_server_url(url):
        raise InputError(f"the judge server URL should start with http:// or https://, got {url!r}.")
    root = url.strip().rstrip("/")
    for suffix in ("/chat/completions", "/v1"):
        if root.endswith(suffix):
            root = root[: -len(suffix)]
    root = root.removesuffix("/v1")
    return root, f"{root}/v1/chat/completions"


def image_data_url(image: Image.Image, image_format: str = "png") -> str:
    """A ``data:`` URL holding the image as base64 PNG (lossless) or JPEG (quality 95)."""
    buffer = io.BytesIO()
    rgb = image.convert("RGB")
    if image_format == "png":
        rgb.save(buffer, format="PNG")
    else:
        rgb.save(buffer, format="JPEG", quality=95)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:{IMAGE_FORMATS[image_format]};base64,{encoded}"

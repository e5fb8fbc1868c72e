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
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import ipaddress
import json
import logging
import math
import socket
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from paco_core.errors import InputError
from paco_core.images import check_aspect_ratio, rgb_image
from paco_core.reward.backend import PairRequest, check_text
from paco_core.reward.local import LocalJudge

logger = logging.getLogger(__name__)

DEFAULT_MAX_LOGPROBS = 20
API_KEY_ENV = "PACO_JUDGE_API_KEY"
"""Environment variable holding the API key (server: required key; client: key sent)."""


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask of the server.

    Attributes:
        max_body_bytes: the largest request body (two 1024x1024 PNGs in base64 take ~8 MiB).
        max_image_pixels: the most pixels (width x height) of one image, checked from the
            image header before it is decoded (decompression bombs are refused unread).
        max_tokens: the largest ``max_tokens`` accepted (longer asks are refused with 400).
        generation_seconds: the longest a generated answer (``max_tokens > 1``) may run;
            it stops there and answers what it has.
        read_timeout: seconds the server waits for the next bytes of a request (a body
            shorter than its ``Content-Length`` or an idle connection is dropped then).
        busy_wait: seconds a request waits for the judge before it is answered 503.
        max_waiting: requests waiting for the judge at once; more are answered 503 at once.
        max_bytes_in_flight: request bodies held at once, in bytes (default: 4 x
            ``max_body_bytes``); a request whose body does not fit waits up to ``busy_wait``,
            then gets 503. With images decoded only while holding the judge, the server's
            memory is bounded by this and the image limit, not by the number of connections.
    """

    max_body_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_tokens: int = 512
    generation_seconds: float = 60.0
    read_timeout: float = 10.0
    busy_wait: float = 10.0
    max_waiting: int = 64
    max_bytes_in_flight: int | None = None

    def __post_init__(self) -> None:
        if self.max_bytes_in_flight is None and isinstance(self.max_body_bytes, int):
            object.__setattr__(self, "max_bytes_in_flight", 4 * self.max_body_bytes)
        for name in ("max_body_bytes", "max_image_pixels", "max_tokens", "max_waiting", "max_bytes_in_flight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} should be a whole number >= 1, got {value!r}.")
        for name in ("generation_seconds", "read_timeout", "busy_wait"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InputError(f"{name} should be a positive number of seconds, got {value!r}.")
        if self.max_bytes_in_flight < self.max_body_bytes:
            raise InputError(
                f"max_bytes_in_flight ({self.max_bytes_in_flight}) should be at least max_body_bytes "
                f"({self.max_body_bytes}), or no request of the largest size could ever be read."
            )


class RequestError(Exception):
    """A request the server refuses; ``status`` and ``code`` go back with the message."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request"):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class ChatRequest:
    """A validated judge question: the pair (images opened, their pixels not yet decoded:
    that happens while the request holds the judge) and what to answer."""

    pair: PairRequest
    max_tokens: int
    logprobs: bool
    top_logprobs: int


class JudgeHTTPServer:
    """Serves one ``LocalJudge`` over HTTP in a background thread.

    Args:
        judge: the local judge that answers.
        host: the address to bind (127.0.0.1: reachable from this machine only).
        port: the port; 0 picks a free one (read it back from ``url``).
        model_name: the name ``/v1/models`` lists and requests must use (or omit).
        max_logprobs: the largest ``top_logprobs`` accepted (vLLM's ``--max-logprobs``).
        limits: body, image, token, time and queue limits (``ServerLimits``).
        api_key: when given, every request must send ``Authorization: Bearer <api_key>``.
        allow_remote: needed to bind an address other than loopback.

    Raises:
        InputError: a port out of range or in use, an unknown host, or a non-loopback
            host without ``allow_remote``.
    """

    def __init__(
        self,
        judge: LocalJudge,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str = "paco-judge",
        max_logprobs: int = DEFAULT_MAX_LOGPROBS,
        limits: ServerLimits | None = None,
        api_key: str | None = None,
        allow_remote: bool = False,
    ):
        check_bind_address(host, port, allow_remote=allow_remote, probe=False)
        if isinstance(max_logprobs, bool) or not isinstance(max_logprobs, int) or max_logprobs < 0:
            raise InputError(f"max_logprobs should be a whole number >= 0, got {max_logprobs!r}.")
        self.judge = judge
        self.model_name = model_name
        self.max_logprobs = max_logprobs
        self.limits = limits or ServerLimits()
        self.api_key = api_key or None
        self._judge_lock = FairLock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paco-judge-worker")
        """Decodes images and runs the judge: one thread, so the large buffers of every request
        come from one allocator arena (glibc keeps a freed arena's memory for its thread)."""
        self.body_budget = ByteBudget(self.limits.max_bytes_in_flight)
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        handler = type(
            "BoundJudgeHandler",
            (JudgeRequestHandler,),
            {"server_state": self, "timeout": self.limits.read_timeout},
        )
        try:
            self.httpd = QuietThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise InputError(bind_error_message(host, port, error)) from error
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        if ":" in str(host):
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def start(self) -> JudgeHTTPServer:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="paco-judge-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self.httpd.serve_forever()

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()
        self._worker.shutdown(wait=True)

    def __enter__(self) -> JudgeHTTPServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- answering ----------------------------------------------------------------------

    def models_listing(self) -> dict:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "owned_by": "paco"}]}

    def check_api_key(self, authorization: str | None) -> None:
        """Raise RequestError (401) unless the Authorization header carries the key."""
        if self.api_key is None:
            return
        given = (authorization or "").strip()
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode("utf-8"), self.api_key.encode("utf-8")
        ):
            raise RequestError(
                "this judge server needs an API key: send the header 'Authorization: Bearer <key>' "
                f"(the paco client sends ${API_KEY_ENV}).",
                status=401,
                code="invalid_api_key",
            )

    def chat_completion(self, body: Any) -> dict:
        """The chat-completions answer for one request body (raises RequestError when invalid
        or when the judge stays busy)."""
        request = self.parse_request(body)
        with self._judge_turn():  # pixels only inside the turn: one request at a time
            return self._worker.submit(self._decode_and_answer, request).result()

    def _decode_and_answer(self, request: ChatRequest) -> dict:
        request.pair = decoded_pair(request.pair)
        try:
            return self._answer(request)
        except InputError as error:  # the judge refuses the question itself: the client's to fix
            raise RequestError(str(error)) from None

    def parse_request(self, body: Any) -> ChatRequest:
        """Validate a request body (raises RequestError with a message saying what to fix)."""
        if not isinstance(body, dict):
            raise RequestError(f"the request body should be a JSON object, got {json_type(body)}.")
        model = body.get("model", self.model_name)
        if model != self.model_name:
            raise RequestError(
                f"model {model!r} is not served here; this server serves {self.model_name!r}.",
                code="model_not_found",
            )
        if body.get("stream"):
            raise RequestError("stream is not supported by this server; send stream=false.")
        max_tokens = whole_number(
            body,
            ("max_tokens", "max_completion_tokens"),
            default=16,
            low=1,
            high=self.limits.max_tokens,
            hint=" (ask for fewer, or start the server with a larger --max-tokens)",
        )
        top_logprobs = whole_number(
            body,
            ("top_logprobs",),
            default=0,
            low=0,
            high=self.max_logprobs,
            hint=" (ask for fewer, or start the server with a larger --max-logprobs)",
        )
        logprobs = body.get("logprobs", False)
        if logprobs is not None and not isinstance(logprobs, bool):
            raise RequestError(f"logprobs should be true or false, got {json_type(logprobs)}.")
        pair = pair_from_messages(body.get("messages"), self.limits.max_image_pixels)
        return ChatRequest(pair, max_tokens, bool(logprobs), top_logprobs)

    def _judge_turn(self):
        """A context holding the judge, or RequestError 503 when it stays busy."""
        server = self

        class Turn:
            def __enter__(self) -> None:
                with server._waiting_lock:
                    if server._waiting >= server.limits.max_waiting:
                        raise busy_error(f"{server._waiting} requests are already waiting for the judge")
                    server._waiting += 1
                try:
                    acquired = server._judge_lock.acquire(timeout=server.limits.busy_wait)
                finally:
                    with server._waiting_lock:
                        server._waiting -= 1
                if not acquired:
                    raise busy_error(f"the judge stayed busy for {server.limits.busy_wait:g} s")

            def __exit__(self, *exc_info) -> None:
                server._judge_lock.release()

        return Turn()

    def _answer(self, request: ChatRequest) -> dict:
        logprobs = self.judge.first_token_logprobs([request.pair])[0]
        first_id = int(logprobs.argmax())
        if request.max_tokens <= 1:
            content = self._token_text(first_id)
        else:
            content = self.judge.explain(
                request.pair, max_new_tokens=request.max_tokens, max_time=self.limits.generation_seconds
            )
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "logprobs": None,
            "finish_reason": "length",
        }
        if request.logprobs:
            choice["logprobs"] = {"content": [self._token_logprobs(logprobs, first_id, request.top_logprobs)]}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [choice],
        }

    def _token_logprobs(self, logprobs: Any, token_id: int, top: int) -> dict:
        values, ids = logprobs.topk(min(top, logprobs.numel()))
        return {
            **self._token_entry(token_id, float(logprobs[token_id])),
            "top_logprobs": [self._token_entry(int(i), float(v)) for v, i in zip(values, ids, strict=True)],
        }

    def _token_entry(self, token_id: int, logprob: float) -> dict:
        text = self._token_text(token_id)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    def _token_text(self, token_id: int) -> str:
        return self.judge.tokenizer.decode([token_id])


class ByteBudget:
    """A count of bytes shared by the requests in flight: ``acquire(n)`` waits until ``n``
    more fit under ``total`` (or the timeout passes), ``release(n)`` gives them back."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._changed = threading.Condition()

    def acquire(self, size: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.used + size > self.total:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            self.used += size
            return True

    def release(self, size: int) -> None:
        with self._changed:
            self.used -= size
            self._changed.notify_all()


class FairLock:
    """A lock handed to its waiters in arrival order (``threading.Lock`` lets a newcomer
    overtake, so under load one request could wait far longer than the others)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._held = False

    def acquire(self, timeout: float = -1) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(None if timeout < 0 else timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over while the wait timed out
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # the lock passes straight to the next in line
            else:
                self._held = False


class QuietThreadingHTTPServer(ThreadingHTTPServer):
    """Logs a failed connection (a client gone, a socket error) instead of printing a traceback."""

    request_queue_size = 128  # the listen backlog: socketserver's 5 resets bursts of clients

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("judge server: connection from %s failed", client_address, exc_info=True)


class JudgeRequestHandler(BaseHTTPRequestHandler):
    """HTTP glue: JSON in, JSON out; the work is done by ``server_state`` (a JudgeHTTPServer).

    ``timeout`` (set from ``ServerLimits.read_timeout``) bounds every socket read, so a
    body shorter than its ``Content-Length`` or an idle connection frees its thread.
    """

    server_state: JudgeHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        try:
            self.server_state.check_api_key(self.headers.get("Authorization"))
            if self.path.rstrip("/") not in ("/v1/models", "/models"):
                raise RequestError(f"no route {self.path}; GET /v1/models", status=404, code="not_found")
            self._send_json(200, self.server_state.models_listing())
        except RequestError as error:
            self._send_error(error)

    def do_POST(self) -> None:
        self._body_read = False
        self._reserved = 0
        try:
            self._answer_post()
        finally:
            if self._reserved:
                self.server_state.body_budget.release(self._reserved)
                self._reserved = 0

    def _answer_post(self) -> None:
        try:
            self.server_state.check_api_key(self.headers.get("Authorization"))
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                raise RequestError(
                    f"no route {self.path}; POST /v1/chat/completions", status=404, code="not_found"
                )
            body = self._read_json_body()
            self._send_json(200, self.server_state.chat_completion(body))
        except RequestError as error:
            if not self._body_read:  # the unread body must not be parsed as the next request
                self.close_connection = True
            self._send_error(error)
            if not self._body_read:
                self._drain_briefly()
        except Exception as error:  # a server fault: 500, the server keeps running
            logger.exception("judge server failed on a request")
            self._send_json(
                500,
                {
                    "error": {
                        "message": f"the judge failed: {type(error).__name__}: {error}",
                        "type": "server_error",
                        "code": "internal_error",
                    }
                },
            )

    def do_PUT(self) -> None:
        self._send_error(
            RequestError(
                "only GET /v1/models and POST /v1/chat/completions are served.",
                status=405,
                code="method_not_allowed",
            )
        )

    do_DELETE = do_PATCH = do_PUT

    def _read_json_body(self) -> Any:
        """The request's JSON body, read within the size and time limits."""
        limits = self.server_state.limits
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise RequestError("chunked bodies are not supported; send a Content-Length.")
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            self.close_connection = True
            raise RequestError(
                "the request has no Content-Length header; send the JSON body with one.",
                code="length_required",
            )
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise RequestError(
                f"Content-Length should be a whole number of bytes, got {raw_length!r}."
            ) from None
        if length > limits.max_body_bytes:
            self.close_connection = True  # the unread body must not be parsed as the next request
            raise RequestError(
                f"the request body is {length} bytes, above this server's limit of {limits.max_body_bytes} "
                "(send smaller images, or start the server with a larger --max-body-mb).",
                status=413,
                code="body_too_large",
            )
        if not self.server_state.body_budget.acquire(length, timeout=limits.busy_wait):
            self.close_connection = True
            raise busy_error(
                f"{self.server_state.body_budget.used} bytes of other requests are in flight, the limit is "
                f"{limits.max_bytes_in_flight}"
            )
        self._reserved = length
        data = self._read_exactly(length, deadline=time.monotonic() + limits.read_timeout)
        self._body_read = True
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(f"the request body is not valid JSON: {error}.", code="invalid_json") from None
        except RecursionError:
            raise RequestError(
                "the request body nests lists or objects too deeply to read; send the judge's flat message shape.",
                code="invalid_json",
            ) from None

    def _read_exactly(self, length: int, deadline: float) -> bytes:
        """``length`` bytes of body, or RequestError when they do not arrive in time."""
        chunks: list[bytes] = []
        received = 0
        while received < length:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                self.connection.settimeout(remaining)
                chunk = self.rfile.read1(min(length - received, 1 << 20))
            except OSError:  # a timeout or a connection reset
                chunk = None
            if not chunk:
                self.close_connection = True
                raise RequestError(
                    f"the body ended after {received} of the {length} bytes its Content-Length announced "
                    f"(waited {self.server_state.limits.read_timeout:g} s); send the whole body.",
                    code="incomplete_body",
                )
            chunks.append(chunk)
            received += len(chunk)
        self.connection.settimeout(self.server_state.limits.read_timeout)
        return b"".join(chunks)

    def _drain_briefly(self, seconds: float = 2.0) -> None:
        """Read and drop what the client still sends for a moment after a refusal, so a client
        still writing a body (e.g. one over the size limit) gets to read the answer instead
        of a connection reset (a "lingering close")."""
        deadline = time.monotonic() + seconds
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            while (remaining := deadline - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                if not self.connection.recv(1 << 20):
                    break
        except OSError:
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, headers too long) as JSON too."""
        self.close_connection = True
        text = message or self.responses.get(code, ("error",))[0]
        self._send_error(
            RequestError(f"{text}: {explain}" if explain else text, status=code, code="bad_http")
        )

    def _send_error(self, error: RequestError) -> None:
        kind = "server_error" if error.status >= 500 else "invalid_request_error"
        headers = {"Retry-After": "1"} if error.status == 503 else {}
        if error.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        payload = {"error": {"message": str(error), "type": kind, "code": error.code}}
        self._send_json(error.status, payload, headers)

    def _send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client left before its answer
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("judge server: " + format, *args)


MMAP_THRESHOLD_BYTES = 1024 * 1024


def return_freed_memory_promptly() -> bool:
    """Make this process give large freed buffers back to the system at once (glibc only).

    glibc raises its mmap threshold after each large free (up to 32 MiB), after which request
    bodies and decoded images come from heap arenas that keep their memory once freed: a
    server that has seen 16 concurrent large requests stays large. A fixed 1 MiB threshold
    maps every larger buffer on its own and unmaps it when freed. For ``paco serve-judge``
    (the process is the server); returns False where it does not apply.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    m_mmap_threshold = -3  # from malloc.h
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD_BYTES))


def busy_error(reason: str) -> RequestError:
    return RequestError(f"the judge is busy ({reason}); retry shortly.", status=503, code="server_busy")


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def whole_number(
    body: dict, names: tuple[str, ...], *, default: int, low: int, high: int, hint: str = ""
) -> int:
    """The first of ``names`` present in ``body`` as a whole number in [low, high]."""
    name = next((key for key in names if body.get(key) is not None), None)
    if name is None:
        return default
    value = body[name]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} should be a whole number, got {json_type(value)}.")
    if value < low:
        raise RequestError(f"{name} should be >= {low}, got {value}.")
    if value > high:
        raise RequestError(f"{name} {value} is above this server's maximum of {high}{hint}.")
    return value


def pair_from_messages(messages: Any, max_image_pixels: int = ServerLimits.max_image_pixels) -> PairRequest:
    """The (first image, second image, prompt) of a judge chat request."""
    if not isinstance(messages, list) or not messages:
        raise RequestError(f"messages should be a non-empty list, got {json_type(messages)}.")
    last = messages[-1]
    if not isinstance(last, dict):
        raise RequestError(f"each message should be an object with role and content, got {json_type(last)}.")
    content = last.get("content")
    if not isinstance(content, list):
        raise RequestError(
            "the last message's content should be a list of image_url and text parts, "
            f"got {json_type(content)}."
        )
    images, texts = [], []
    for number, part in enumerate(content, 1):
        if not isinstance(part, dict):
            raise RequestError(
                f'content part {number} should be an object like {{"type": "text", "text": ...}}, '
                f"got {json_type(part)}."
            )
        kind = part.get("type")
        if kind == "image_url":
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else None
            if url is None:
                raise RequestError(
                    f"content part {number} (image_url) has no image_url.url; "
                    'send {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}.'
                )
            images.append((number, url))
        elif kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise RequestError(
                    f"content part {number} (text) should have a string text, got {json_type(text)}."
                )
            try:
                check_text(text, f"content part {number} (text)")
            except InputError as error:
                raise RequestError(str(error)) from None
            texts.append(text)
        else:
            raise RequestError(f"content part {number} has type {kind!r}; use 'image_url' or 'text'.")
    if len(images) != 2 or not texts:
        raise RequestError(
            f"a judge request holds two images and a text, got {len(images)} image(s) and {len(texts)} text(s)."
        )
    first, second = (open_data_url(url, max_image_pixels, part=number) for number, url in images)
    return PairRequest(first, second, "".join(texts))


def decoded_pair(pair: PairRequest) -> PairRequest:
    """``pair`` with its opened images decoded to RGB (``pair_from_messages`` only opens them)."""
    first, second = (_decoded(image, part) for part, image in enumerate((pair.first, pair.second), 1))
    return PairRequest(first, second, pair.prompt)


def decode_data_url(url: Any, max_image_pixels: int = ServerLimits.max_image_pixels, part: int = 0) -> Any:
    """An RGB PIL image from a ``data:image/...;base64,`` URL (remote URLs are refused).

    The pixel count is read from the image header and refused above ``max_image_pixels``
    before any pixel is decoded.
    """
    return _decoded(open_data_url(url, max_image_pixels, part), part)


def open_data_url(url: Any, max_image_pixels: int = ServerLimits.max_image_pixels, part: int = 0) -> Any:
    """A PIL image opened (header read, pixels not decoded) from a base64 data URL, refused
    (RequestError) when it is no image, has more than ``max_image_pixels`` pixels or a
    shape the judge cannot take."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    where = f"content part {part}" if part else "an image"
    if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
        raise RequestError(f"{where}: images should be base64 data URLs (data:image/png;base64,...).")
    try:
        data = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError) as error:
        raise RequestError(f"{where}: the image's base64 could not be decoded: {error}.") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_image_pixels:
                raise RequestError(
                    f"{where}: the image is {width}x{height} = {width * height} pixels, above this server's "
                    f"limit of {max_image_pixels}; send a smaller image.",
                    code="image_too_large",
                )
            check_aspect_ratio((width, height), f"{where}: the image")
            return image
    except InputError as error:
        raise RequestError(str(error)) from None
    except Image.DecompressionBombError as error:
        raise RequestError(
            f"{where}: the image is too large to decode ({error}).", code="image_too_large"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise RequestError(f"{where}: the image could not be decoded: {error}.") from None


def _decoded(image: Any, part: int) -> Any:
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            return rgb_image(image)
    except Image.DecompressionBombError as error:
        raise RequestError(
            f"image {part} of the pair is too large to decode ({error}).", code="image_too_large"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise RequestError(f"image {part} of the pair could not be decoded: {error}.") from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only loopback addresses (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_bind_address(host: str, port: Any, *, allow_remote: bool = False, probe: bool = True) -> None:
    """Refuse a port out of range, a non-loopback host without ``allow_remote`` and (with
    ``probe``) an address that cannot be bound, before anything slow starts.

    Raises:
        InputError: saying what to change.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(
            f"the port should be a whole number from 0 to 65535 (0: any free port), got {port!r}."
        )
    try:
        socket.getaddrinfo(host, port)
    except (OSError, UnicodeError) as error:
        raise InputError(f"cannot bind host {host!r}: {error}. Use an address such as 127.0.0.1.") from None
    if not allow_remote and not is_loopback(host):
        raise InputError(
            f"host {host!r} is not a loopback address, so the judge would be reachable from other machines; "
            "add --allow-remote to mean it (and set an API key), or use 127.0.0.1."
        )
    if not probe:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            sock.bind((host, port))
        except OSError as error:
            raise InputError(bind_error_message(host, port, error)) from None


def bind_error_message(host: str, port: int, error: OSError) -> str:
    import errno

    if error.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use; stop what uses it or pick another --port (0: any free)."
    if error.errno == errno.EACCES:
        return f"no permission to bind port {port} on {host}; use a port above 1023."
    return f"cannot bind {host}:{port}: {error.strerror or error}."

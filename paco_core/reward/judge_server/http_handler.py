"""The HTTP transport of the judge server: routes, the API key check, the request body read
within its size, time and in-flight limits, and JSON answers (OpenAI-shaped errors), on
``http.server``'s threading server. What a body means is read by
:mod:`~paco_core.reward.judge_server.chat_requests`; the judge answers in
:mod:`~paco_core.reward.judge_server.server`."""

from __future__ import annotations

import json
import logging
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from paco_core.reward.judge_server.chat_requests import RequestError, json_from_body
from paco_core.reward.judge_server.limits import ByteBudget, ServerLimits, busy_error


class JudgeService(Protocol):
    """What the transport asks of the server behind it (``server.JudgeHTTPServer``)."""

    limits: ServerLimits
    body_budget: ByteBudget

    def check_api_key(self, authorization: str | None) -> None: ...

    def models_listing(self) -> dict: ...

    def chat_completion(self, body: Any) -> dict: ...


logger = logging.getLogger(__name__)


class QuietThreadingHTTPServer(ThreadingHTTPServer):
    """Logs a failed connection (a client gone, a socket error) instead of printing a traceback."""

    request_queue_size = 128  # the listen backlog: socketserver's 5 resets bursts of clients

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("judge server: connection from %s failed", client_address, exc_info=True)


class JudgeRequestHandler(BaseHTTPRequestHandler):
    """HTTP glue: JSON in, JSON out; the work is done by ``server_state`` (a ``JudgeService``).

    ``timeout`` (set from ``ServerLimits.read_timeout``) bounds every socket read, so a
    body shorter than its ``Content-Length`` or an idle connection frees its thread.
    """

    server_state: JudgeService
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
        return json_from_body(data)

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

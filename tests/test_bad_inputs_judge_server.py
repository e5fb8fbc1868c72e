"""The judge server under the bad inputs of issue 17, item 8: 200k nested brackets and a lone
surrogate are 400s, not 500s; an image the judge cannot take (2000x4) is a 400 the client does not
retry; images are decoded only while a request holds the judge, and request bodies wait for
room under ``max_bytes_in_flight`` (503 past ``busy_wait``), so memory follows the limits, not
the number of connections (measured by ``python -m bench.judge_server_load --big-images``)."""

from __future__ import annotations

import base64
import http.client
import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

from paco_core.errors import JudgeError
from paco_core.reward import open_judge
from paco_core.reward.judge_client import JudgeClient
from paco_core.reward.judge_server import JudgeHTTPServer, ServerLimits
from paco_core.reward.judge_server import chat_requests as js

LIMITS = ServerLimits(max_body_bytes=1024 * 1024, read_timeout=2.0, busy_wait=0.5)


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def square(seed: int = 0, side: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


def body(first=None, second=None, text="Same character?") -> dict:
    return {
        "model": "tiny-judge", "max_tokens": 1,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": first or data_url(square(1))}},
            {"type": "image_url", "image_url": {"url": second or data_url(square(2))}},
            {"type": "text", "text": text},
        ]}],
    }  # fmt: skip


def post(url: str, raw: bytes) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/v1/chat/completions", body=raw, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    return response.status, answer


@pytest.fixture(scope="module")
def judge(tiny_models):
    return open_judge(tiny_models["judge"], cache_size=0)


@pytest.fixture
def server(judge):
    with JudgeHTTPServer(judge, model_name="tiny-judge", limits=LIMITS) as running:
        yield running


def still_answers(server) -> None:
    status, answer = post(server.url, json.dumps(body()).encode())
    assert status == 200, answer


def test_200k_nested_brackets_are_a_400(server):
    status, answer = post(server.url, b"[" * 200_000 + b"]" * 200_000)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_json" and "nests" in answer["error"]["message"]
    still_answers(server)


def test_a_lone_surrogate_in_a_text_part_is_a_400(server):
    raw = json.dumps(body(text="Same?")).encode().replace(b"Same?", b"Same?\\ud800")
    status, answer = post(server.url, raw)
    assert status == 400, answer
    assert "content part 3 (text)" in answer["error"]["message"]
    assert "not valid Unicode" in answer["error"]["message"]
    still_answers(server)


def test_an_elongated_image_is_a_400_and_the_client_does_not_retry(server):
    strip = data_url(Image.new("RGB", (2000, 4)))
    status, answer = post(server.url, json.dumps(body(first=strip)).encode())
    assert status == 400, answer
    assert "2000x4 pixels, an aspect ratio above the judge's limit of 200:1" in answer["error"]["message"]
    calls = []
    original = server.chat_completion
    server.chat_completion = lambda request: calls.append(1) or original(request)
    client = JudgeClient(server.url, "tiny-judge", retries=3, backoff=0.01)
    with pytest.raises(JudgeError, match="aspect ratio"):
        client._post_with_retries(body(first=strip))  # the raw request, past the client's own check
    assert calls == [1]  # one attempt: a 400 is the client's to fix


def test_images_are_decoded_only_while_a_request_holds_the_judge(judge, monkeypatch):
    decoded = []
    real = js._decoded
    monkeypatch.setattr(js, "_decoded", lambda image, part: decoded.append(image.size) or real(image, part))
    with JudgeHTTPServer(judge, model_name="tiny-judge", limits=ServerLimits(busy_wait=60.0)) as server:
        wait_for_the_judge_in_turn(server, decoded)


def wait_for_the_judge_in_turn(server, decoded: list) -> None:
    server._judge_lock.acquire()  # the judge is busy with someone else
    answers: list[int] = []
    raw = json.dumps(body(first=data_url(square(3, 256)), second=data_url(square(4, 256)))).encode()
    threads = [threading.Thread(target=lambda: answers.append(post(server.url, raw)[0])) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while server._waiting < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server._waiting == 4  # all four read and checked, waiting for the judge
    assert decoded == []  # ... and not one image decoded
    server._judge_lock.release()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == [200] * 4 and len(decoded) == 8


def test_bodies_past_the_bytes_in_flight_wait_then_get_503(judge):
    limits = ServerLimits(max_body_bytes=1024 * 1024, max_bytes_in_flight=1024 * 1024, busy_wait=0.3)
    with JudgeHTTPServer(judge, model_name="tiny-judge", limits=limits) as server:
        raw = json.dumps(body(first=data_url(square(5, 400)))).encode()
        others = limits.max_bytes_in_flight - len(raw) + 1  # other requests' bodies, still held
        assert server.body_budget.acquire(others, timeout=0)
        status, answer = post(server.url, raw)
        assert status == 503 and "bytes of other requests are in flight" in answer["error"]["message"]
        releaser = threading.Timer(0.1, server.body_budget.release, (others,))  # they finish meanwhile
        releaser.start()
        status, answer = post(server.url, raw)  # waits for room, then is answered
        releaser.join()
        assert status == 200, answer
        assert server.body_budget.used == 0  # every reservation given back


def test_the_bytes_in_flight_limit_is_checked():
    from paco_core.errors import InputError

    with pytest.raises(InputError, match="max_bytes_in_flight .* should be at least max_body_bytes"):
        ServerLimits(max_body_bytes=2048, max_bytes_in_flight=1024)
    assert ServerLimits(max_body_bytes=2048).max_bytes_in_flight == 4 * 2048

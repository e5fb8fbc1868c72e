"""Judge server under load: many concurrent clients, every request answered, latency and memory.

Starts ``paco serve-judge`` on a free loopback port in a subprocess (the tiny judge unless
``--judge`` is given), then sends ``--requests`` scoring requests (two 64 px PNGs, a text,
``max_tokens=1``, ``logprobs``, ``top_logprobs=20``, as ``JudgeClient`` sends them) from
``--clients`` threads, each on its own keep-alive connection. Prints the requests answered,
every non-200 answer or failure by kind, p50/p99 latency, throughput, and the server's
resident memory (VmRSS) at start (judge loaded, no request yet) and after each
checkpoint (default 500 and 1,000 requests), with the growth from the first checkpoint to
the last: a leak shows there, while start -> first checkpoint includes allocator warm-up.

With ``--big-images SIDE`` it measures memory instead: after a warm-up request, one request
with two SIDE x SIDE images alone, then ``--clients`` such requests at once (one connection
each), sampling the server's VmRSS every 10 ms; it prints the RSS before, the peak with one
request, the peak with all clients, the RSS after (2 s later), and the ratio of the two
peaks' growth. The server decodes images only while a request holds the judge and holds at
most ``--max-in-flight-mb`` of request bodies, so the peak follows those limits, not the
number of connections.

Usage:
    python -m bench.judge_server_load                         # 32 clients, 1,000 requests, tiny judge
    python -m bench.judge_server_load --big-images 4096 --clients 16   # memory with two 4096 px images
    python -m bench.judge_server_load --clients 8 --requests 200
    python -m bench.judge_server_load --judge models/PaCo-Reward-7B --device cuda
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass
class LoadResult:
    answered: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    steady_latencies: list[float] = field(default_factory=list)
    """Latencies without each client's first request (connection setup, the cold judge)."""
    seconds: float = 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def request_bodies(model: str, count: int = 16, side: int = 64, top_logprobs: int = 20) -> list[bytes]:
    """``count`` distinct judge requests (random images), encoded once."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)

    def data_url() -> str:
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    bodies = []
    for number in range(count):
        content = [
            {"type": "image_url", "image_url": {"url": data_url()}},
            {"type": "image_url", "image_url": {"url": data_url()}},
            {"type": "text", "text": f"Are these two images consistent? ({number})"},
        ]
        body = {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": top_logprobs,
        }
        bodies.append(json.dumps(body).encode("utf-8"))
    return bodies


def run_load(
    url: str,
    model: str,
    *,
    clients: int,
    requests: int,
    top_logprobs: int = 20,
    api_key: str | None = None,
    on_answered: Callable[[int], None] | None = None,
    timeout: float = 120.0,
) -> LoadResult:
    """Send ``requests`` requests from ``clients`` threads; count answers and failures."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    bodies = request_bodies(model, top_logprobs=top_logprobs)
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    result = LoadResult()
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    issued = 0

    def client() -> None:
        nonlocal issued
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        first = True
        while True:
            with lock:
                if issued >= requests:
                    break
                number = issued
                issued += 1
            started = time.perf_counter()
            outcome = None
            try:
                connection.request(
                    "POST", "/v1/chat/completions", body=bodies[number % len(bodies)], headers=headers
                )
                response = connection.getresponse()
                payload = json.loads(response.read())
                if response.status != 200:
                    outcome = f"HTTP {response.status}: {payload.get('error', {}).get('message', '')[:80]}"
                elif not payload["choices"][0]["logprobs"]["content"][0]["top_logprobs"]:
                    outcome = "no logprobs"
            except Exception as error:  # counted, the connection is opened again
                outcome = type(error).__name__
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
            elapsed = time.perf_counter() - started
            with lock:
                if outcome is None:
                    result.answered += 1
                    result.latencies.append(elapsed)
                    if not first:
                        result.steady_latencies.append(elapsed)
                else:
                    errors[outcome] += 1
                done = result.answered + sum(errors.values())
            first = False
            if on_answered is not None:
                on_answered(done)
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, name=f"load-client-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    result.errors = dict(errors)
    return result


def rss_mib(pid: int) -> float:
    """The resident memory of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_server(judge: str, device: str | None, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "paco_core.cli", "serve-judge", "--judge", judge, "--port", "0"]
    command += ["--model-name", "load-judge", *extra] + (["--device", device] if device else [])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = process.stdout.readline()
    if "serving" not in line:
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return process, line.split(" at ", 1)[1].split("/v1/", 1)[0]


def big_image_bodies(model: str, side: int, count: int) -> list[bytes]:
    """``count`` requests sharing two SIDE x SIDE images (64 px blocks plus one bit of noise: a
    PNG of ~0.6 bytes per pixel, so two 4096 px images make a ~27 MiB body, under the 32 MiB
    default limit), each with its own text."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    urls = []
    for _ in range(2):
        blocks = rng.integers(0, 256, (side // 64, side // 64, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        picture = np.asarray(Image.fromarray(blocks).resize((side, side), Image.NEAREST))
        noisy = picture | rng.integers(0, 2, picture.shape, dtype=np.uint8)
        Image.fromarray(noisy).save(buffer, format="PNG", compress_level=1)
        urls.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))
    return [
        json.dumps(
            {
                "model": model,
                "max_tokens": 1,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": urls[0]}},
                            {"type": "image_url", "image_url": {"url": urls[1]}},
                            {"type": "text", "text": f"Are these two images consistent? ({number})"},
                        ],
                    }
                ],
            }
        ).encode("utf-8")
        for number in range(count)
    ]


class PeakSampler:
    """Samples a process's VmRSS every 10 ms in a thread; ``peak`` is the highest since ``reset``."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_mib(self.pid))

    def reset(self) -> None:
        self.peak = rss_mib(self.pid)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def post_all(url: str, bodies: list[bytes], timeout: float = 600.0) -> Counter[int]:
    """POST every body at once, one connection each; the count of each answer status."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def send(body: bytes) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            connection.request(
                "POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            response.read()
            status = response.status
        except Exception:  # noqa: BLE001 - counted as 0
            status = 0
        finally:
            connection.close()
        with lock:
            statuses[status] += 1

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def run_big_images(
    judge: str, device: str | None, side: int, clients: int, in_flight_mb: float | None
) -> int:
    """The memory run (``--big-images``): RSS before, peaks with 1 and ``clients`` requests, after."""
    bodies = big_image_bodies("load-judge", side, clients + 1)
    extra = ("--busy-wait", "3600", "--read-timeout", "120")
    extra += ("--max-in-flight-mb", str(in_flight_mb)) if in_flight_mb else ()
    process, url = start_server(judge, device, extra)
    try:
        post_all(url, request_bodies("load-judge", count=1))  # warm up on small images
        before = rss_mib(process.pid)
        sampler = PeakSampler(process.pid)
        sampler.reset()
        single = post_all(url, bodies[:1])
        peak_single = sampler.peak
        sampler.reset()
        started = time.perf_counter()
        concurrent = post_all(url, bodies[1:])
        seconds = time.perf_counter() - started
        peak_all = sampler.peak
        time.sleep(2.0)
        after = rss_mib(process.pid)
        sampler.stop()
    finally:
        process.terminate()
        process.wait(timeout=30)
    body_mib = len(bodies[0]) / 2**20
    print(
        f"judge server memory: two {side}x{side} images per request ({body_mib:.1f} MiB body), judge {judge}"
    )
    print(f"answers: 1 alone {dict(single)}; {clients} at once {dict(concurrent)} in {seconds:.1f} s")
    print(
        f"server RSS: before {before:.1f} MiB, peak with 1 request {peak_single:.1f} MiB "
        f"(+{peak_single - before:.1f}), peak with {clients} at once {peak_all:.1f} MiB (+{peak_all - before:.1f}), "
        f"after {after:.1f} MiB (+{after - before:.1f})"
    )
    ratio = (peak_all - before) / max(peak_single - before, 1e-9)
    print(f"growth with {clients} connections / growth with 1: {ratio:.2f}x")
    ok = single == {200: 1} and concurrent == {200: clients}
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--judge", default=None, help="judge folder (default: the tiny judge, built in a temp folder)"
    )
    parser.add_argument("--device", default=None, help="the server's device")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument(
        "--checkpoints", default="500,1000", help="request counts at which the server RSS is read"
    )
    parser.add_argument(
        "--big-images",
        type=int,
        default=0,
        metavar="SIDE",
        help="measure memory with --clients requests of two SIDE x SIDE images at once (e.g. 4096)",
    )
    parser.add_argument(
        "--max-in-flight-mb", type=float, default=None, help="with --big-images: the server's body bound"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="paco-load-") as scratch:
        judge = args.judge
        if judge is None:
            from paco_core.testing import build_tiny_model

            judge = str(build_tiny_model("judge", Path(scratch)))
        if args.big_images:
            return run_big_images(judge, args.device, args.big_images, args.clients, args.max_in_flight_mb)
        process, url = start_server(judge, args.device)
        try:
            start_rss = rss_mib(process.pid)
            checkpoints = sorted(int(value) for value in args.checkpoints.split(","))
            readings: dict[int, float] = {}
            reading_lock = threading.Lock()

            def on_answered(done: int) -> None:
                with reading_lock:
                    for point in checkpoints:
                        if done >= point and point not in readings:
                            readings[point] = rss_mib(process.pid)

            result = run_load(
                url, "load-judge", clients=args.clients, requests=args.requests, on_answered=on_answered
            )
        finally:
            process.terminate()
            process.wait(timeout=30)

    print(
        f"judge server load: {args.clients} clients, {args.requests} requests, judge {args.judge or 'tiny'}"
    )
    print(f"answered {result.answered}/{args.requests}, errors {result.errors or 'none'}")
    print(
        f"latency p50 {result.p50 * 1000:.1f} ms, p99 {result.p99 * 1000:.1f} ms, "
        f"mean {statistics.fmean(result.latencies) * 1000:.1f} ms; "
        f"{result.answered / result.seconds:.1f} requests/s over {result.seconds:.1f} s"
    )
    steady = result.steady_latencies
    print(
        f"without each client's first request (cold start): p50 {percentile(steady, 50) * 1000:.1f} ms, "
        f"p99 {percentile(steady, 99) * 1000:.1f} ms, max {max(steady, default=float('nan')) * 1000:.1f} ms"
    )
    memory = f"server RSS: start {start_rss:.1f} MiB" + "".join(
        f", after {point} {readings[point]:.1f} MiB" for point in checkpoints if point in readings
    )
    print(memory)
    if len(readings) >= 2:
        first, last = checkpoints[0], checkpoints[-1]
        growth = readings[last] - readings[first]
        print(
            f"growth after {first} -> after {last}: {growth:+.1f} MiB ({readings[last] / readings[first]:.3f}x); "
            f"start -> after {last}: {readings[last] - start_rss:+.1f} MiB"
        )
    return 0 if result.answered == args.requests and not result.errors else 1


if __name__ == "__main__":
    sys.exit(main())

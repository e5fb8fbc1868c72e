"""Judge server under load: many concurrent clients, every request answered, latency and memory.

Starts ``paco serve-judge`` on a free loopback port in a subprocess (the tiny judge unless
``--judge`` is given), then sends ``--requests`` scoring requests (two 64 px PNGs, a text,
``max_tokens=1``, ``logprobs``, ``top_logprobs=20``, as ``JudgeClient`` sends them) from
``--clients`` threads, each on its own keep-alive connection. Prints the requests answered,
every non-200 answer or failure by kind, p50/p99 latency, throughput, and the server's
resident memory (VmRSS) at start (judge loaded, no request yet) and after each
checkpoint (default 500 and 1,000 requests), with the growth from the first checkpoint to
the last: a leak shows there, while start -> first checkpoint includes allocator warm-up.

Usage:
    python bench/judge_server_load.py                         # 32 clients, 1,000 requests, tiny judge
    python bench/judge_server_load.py --clients 8 --requests 200
    python bench/judge_server_load.py --judge models/PaCo-Reward-7B --device cuda
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
sys.path.insert(0, str(REPO))
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


def start_server(judge: str, device: str | None) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "paco_core.cli", "serve-judge", "--judge", judge, "--port", "0"]
    command += ["--model-name", "load-judge"] + (["--device", device] if device else [])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = process.stdout.readline()
    if "serving" not in line:
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return process, line.split(" at ", 1)[1].split("/v1/", 1)[0]


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
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="paco-load-") as scratch:
        judge = args.judge
        if judge is None:
            from paco_core.testing import build_tiny_model

            judge = str(build_tiny_model("judge", Path(scratch)))
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

"""The GPU suite: every figure the CPU cannot give, in one run that fits a short GPU slot.

Each measurement is a *part* (``bench/gpu_parts.py``) run in its own Python process with a
time limit (its budget): a hang, a crash or an out-of-memory error ends that part only. A
part whose budget no longer fits the suite's time left is skipped with that reason. The
models are random weights with the real dimensions, built on the meta device and
materialised on the GPU (``paco_core.testing.real_size``): no downloads, no network, no
ComfyUI.

    python -m bench.gpu_suite --out gpu-results                   # all parts, under 8 min on one H100
    python -m bench.gpu_suite --out gpu-results --quick           # the first look, under 3 min
    python -m bench.gpu_suite --out gpu-results --write-docs      # and put the table in docs/performance.md
    python -m bench.gpu_suite --device cpu --tiny --out /tmp/suite  # the same parts on the tiny models (CI)
    python -m bench.gpu_suite ...                                 # the same (the parts run as -m from the repo)

Writes ``gpu_suite.json`` (every part: status, reason, seconds, peak memory, figures with
their goals, details), ``gpu_suite.md`` (the table for docs/performance.md) and each part's
output in ``logs/`` to ``--out``.
This runner imports only the standard library; the parts import torch and the pack.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS_PAGE = REPO / "docs" / "performance.md"
DOCS_BEGIN = "<!-- gpu-suite:begin (bench/gpu_suite.py --write-docs replaces this block) -->"
DOCS_END = "<!-- gpu-suite:end -->"


@dataclass(frozen=True)
class Part:
    """One measurement: its name (a function of ``bench/gpu_parts.py``), what it measures, and its
    time budgets in seconds (None: not run in that mode)."""

    name: str
    title: str
    full_s: int
    quick_s: int | None
    tiny_s: int


PARTS: tuple[Part, ...] = (
    Part("judge_pairs", "judge pairs/s, Qwen2.5-VL-7B dims, prefix sharing, N = 8, 512 px panels", 55, 45, 30),
    Part("one_gpu_preset", "t2is-flux-1gpu preset at FLUX.1-dev + 7B judge dims: peak memory, s/iteration",
         100, 80, 45),
    Part("ppo_first_ratio", "first PPO ratio under the update's attention kernel, clip range 1e-4", 50, 45, 30),
    Part("generation_while_yield", "generation while a training job yields: pause latency, set time", 80, None, 75),
    Part("edit_kontext", "FLUX.1-Kontext-dev training iteration at real dims", 50, None, 35),
    Part("edit_qwen", "Qwen-Image-Edit training iteration at real dims", 65, None, 35),
    Part("comfy_files_vs_folder", "ComfyUI-layout files vs diffusers folder: load, set time, pixels", 40, None, 30),
    Part("consistency_tools", "consistency tools at real size", 25, None, 20),
)  # fmt: skip
"""In order of value: when time runs short the last ones are skipped. A budget is the part's
whole time limit, its process's start-up and imports included."""

NO_DEVICE = "no CUDA device"
"""How a part's skip reason starts when torch sees no GPU: the suite then skips the rest at once."""

SUITE_BUDGET_S = {"full": 470, "quick": 175, "tiny": 300}
"""The suite's own limit per mode: a part starts only when its budget fits the time left, so the
suite ends within this (plus the runner's own second or two)."""


def mode_of(args: argparse.Namespace) -> str:
    return "tiny" if args.tiny else "quick" if args.quick else "full"


def budget_of(part: Part, mode: str) -> int | None:
    return {"full": part.full_s, "quick": part.quick_s, "tiny": part.tiny_s}[mode]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_suite.json and gpu_suite.md")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument(
        "--tiny", action="store_true", help="the tiny test models instead of the real dimensions"
    )
    parser.add_argument("--quick", action="store_true", help="the most valuable parts only, under 3 minutes")
    parser.add_argument("--parts", nargs="+", choices=[p.name for p in PARTS], help="only these parts")
    parser.add_argument(
        "--budget", type=float, default=None, help="the suite's limit in s (default: per mode)"
    )
    parser.add_argument(
        "--slack",
        type=float,
        default=1.0,
        help="multiply every budget and the suite's limit (a slower or shared machine)",
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="replace the GPU figures table in docs/performance.md"
    )
    parser.add_argument("--part", help=argparse.SUPPRESS)  # internal: run one part in this process
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)  # internal: where that part writes
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)  # internal: the suite's scratch folder
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- running the parts


def run_part(part: Part, args: argparse.Namespace, budget_s: float, work: Path) -> dict:
    """Run ``part`` in a child process limited to ``budget_s``; returns its result."""
    result_path = work / f"{part.name}.json"
    log_path = args.out / "logs" / f"{part.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bench.gpu_suite", "--part", part.name, "--result", str(result_path),
               "--work", str(work), "--out", str(args.out), "--device", args.device]  # fmt: skip
    command += ["--tiny"] if args.tiny else []
    command += ["--quick"] if args.quick else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    with open(log_path, "w") as log:
        # a session of its own: a timeout ends the part and every process it started (training jobs)
        child = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            returncode = child.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            returncode = None
    seconds = round(time.monotonic() - started, 1)
    base = {"name": part.name, "title": part.title, "budget_s": budget_s, "seconds": seconds}
    if returncode is None:
        return {**base, "status": "timed out", "reason": f"killed after {seconds} s (budget {budget_s} s)",
                "log_tail": log_tail(log_path)}  # fmt: skip
    if returncode != 0 or not result_path.is_file():
        return {
            **base,
            "status": "failed",
            "reason": f"exit code {returncode}",
            "log_tail": log_tail(log_path),
        }
    return {**base, **json.loads(result_path.read_text()), "seconds": seconds}


def log_tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_suite(args: argparse.Namespace) -> dict:
    mode = mode_of(args)
    suite_budget = args.budget if args.budget is not None else SUITE_BUDGET_S[mode] * args.slack
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="paco-gpu-suite-") as tmp:
        work = Path(tmp)
        for part in PARTS:
            budget = budget_of(part, mode)
            budget = None if budget is None else max(1, round(budget * args.slack))
            left = suite_budget - (time.monotonic() - started)
            base = {"name": part.name, "title": part.title, "budget_s": budget, "seconds": 0.0}
            no_device = next(
                (r["reason"] for r in results if r.get("reason", "").startswith(NO_DEVICE)), None
            )
            if no_device:
                results.append({**base, "status": "skipped", "reason": no_device})
            elif args.parts and part.name not in args.parts:
                results.append({**base, "status": "skipped", "reason": "not asked for (--parts)"})
            elif budget is None:
                results.append({**base, "status": "skipped", "reason": f"not part of the {mode} mode"})
            elif budget > left:
                results.append(
                    {
                        **base,
                        "status": "skipped",
                        "reason": f"would not fit the time left ({budget} s needed, {left:.0f} s left)",
                    }
                )
            else:
                print(f"[gpu-suite] {part.name} (budget {budget} s, {left:.0f} s left) ...", flush=True)
                results.append(run_part(part, args, budget, work))
                print(
                    f"[gpu-suite] {part.name}: {results[-1]['status']} in {results[-1]['seconds']} s",
                    flush=True,
                )
    environment = next((r["environment"] for r in results if r.get("environment")), {})
    return {
        "suite": "bench/gpu_suite.py",
        "mode": mode,
        "requested_device": args.device,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": environment or {"torch": package_version("torch")},
        "budget_s": suite_budget,
        "total_s": round(time.monotonic() - started, 1),
        "parts": results,
    }


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# --------------------------------------------------------------------------- the table


def verdict(figure: dict) -> str:
    passed = figure.get("passed")
    if not figure.get("goal"):
        return ""
    return "pass" if passed else "falls short" if passed is False else "not judged (tiny models)"


def format_value(figure: dict) -> str:
    value = figure["value"]
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = (
            f"{value:.3g}"
            if abs(value) < 1e-2 or abs(value) >= 1e4
            else f"{value:.3f}".rstrip("0").rstrip(".")
        )
    else:
        text = str(value)
    return f"{text} {figure.get('unit', '')}".strip()


def markdown_table(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"Measured by `bench/gpu_suite.py` ({report['mode']} mode, {report['date']}) on "
        f"**{env.get('device', 'unknown device')}**, torch {env.get('torch', '?')}, CUDA {env.get('cuda') or 'none'}, "
        f"diffusers {env.get('diffusers', '?')}, transformers {env.get('transformers', '?')}; "
        f"{report['total_s']} s in all (limit {report['budget_s']} s).",
        "",
        "| part | figure | result | goal | verdict | peak memory | part time |",
        "|---|---|---|---|---|---|---|",
    ]
    for part in report["parts"]:
        peak = part.get("peak_memory")
        peak_text = f"{peak['gib']:.1f} GiB ({peak['kind']})" if peak else ""
        time_text = f"{part['seconds']} s / {part['budget_s']} s" if part["seconds"] else ""
        figures = part.get("figures") or []
        if part["status"] != "ran" or not figures:
            reason = part.get("reason", "")
            cells = [part["name"], part["title"], f"**{part['status']}**: {md_cell(reason)}", "", "", peak_text,
                     time_text]  # fmt: skip
            lines.append(table_row(cells))
            continue
        for index, figure in enumerate(figures):
            first = index == 0
            cells = [part["name"] if first else "", md_cell(figure["figure"]), md_cell(format_value(figure)),
                     md_cell(figure.get("goal", "")), verdict(figure), peak_text if first else "",
                     time_text if first else ""]  # fmt: skip
            lines.append(table_row(cells))
    notes = [
        f"- {part['name']}: {md_cell(note)}" for part in report["parts"] for note in part.get("notes", [])
    ]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_outputs(report: dict, out: Path) -> tuple[Path, Path]:
    json_path, markdown_path = out / "gpu_suite.json", out / "gpu_suite.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    markdown_path.write_text(markdown_table(report))
    return json_path, markdown_path


def replace_docs_block(page: Path, table: str) -> None:
    """Put ``table`` between the GPU-figures markers of ``page`` (the markers stay)."""
    text = page.read_text()
    begin, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if begin < 0 or end < begin:
        raise SystemExit(f"{page} has no '{DOCS_BEGIN}' ... '{DOCS_END}' block to replace")
    updated = text[: begin + len(DOCS_BEGIN)] + "\n" + table + text[end:]
    temporary = page.with_suffix(".md.tmp")
    temporary.write_text(updated)
    temporary.replace(page)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.part:
        from bench.gpu_parts import run_in_this_process  # the child: torch and the pack from here on

        return run_in_this_process(args)
    if args.write_docs and (args.tiny or not args.device.startswith("cuda")):
        raise SystemExit(
            "--write-docs puts GPU figures in the docs: run it with --device cuda and without --tiny"
        )
    args.out = args.out.resolve()
    report = run_suite(args)
    json_path, markdown_path = write_outputs(report, args.out)
    print(markdown_path.read_text())
    print(f"written: {json_path} and {markdown_path}")
    if args.write_docs:
        replace_docs_block(DOCS_PAGE, markdown_path.read_text())
        print(f"replaced the GPU figures in {DOCS_PAGE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

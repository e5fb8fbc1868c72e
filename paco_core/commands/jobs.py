"""``paco jobs``: training as background jobs (submit, list, show, logs, cancel, resume, wait, delete,
sample, save, continue, move, compare, worker).

Examples::

    paco jobs submit --config run.json --name faces      # prints the job id, returns at once
    paco jobs list
    paco jobs show job-1a2b3c4d --json
    paco jobs logs job-1a2b3c4d --follow
    paco jobs cancel job-1a2b3c4d                         # finishes the step, saves a checkpoint
    paco jobs resume job-1a2b3c4d                         # continues from the last checkpoint
    paco jobs wait job-1a2b3c4d --timeout 3600
    paco jobs delete job-1a2b3c4d --files
    paco jobs sample job-1a2b3c4d --prompt "a fox" --wait 600   # a sample grid at the next step
    paco jobs save job-1a2b3c4d                           # a checkpoint at the next step
    paco jobs continue job-1a2b3c4d --iterations 200      # a new job from its last checkpoint
    paco jobs move job-5e6f7a8b front                     # queued jobs only
    paco jobs compare job-1a2b3c4d job-5e6f7a8b

The store lives in ``--home DIR``, else ``$PACO_HOME``, else ``~/.paco`` (see docs/jobs.md).

Exit codes: 0 success (``wait``: the job completed), 1 error (one line on stderr),
2 bad usage; ``wait`` also: 3 failed, 4 stopped, 5 interrupted, 124 timed out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from paco_core.errors import ConfigError

WAIT_EXIT_CODES = {"completed": 0, "failed": 3, "stopped": 4, "interrupted": 5}
EXIT_TIMEOUT = 124
SHOW_KEYS = (
    "id", "name", "status", "step", "total", "pid", "device", "run_dir", "lora", "best_lora",
    "exit_code", "error", "create_time", "execution_start_time", "execution_end_time", "attempts",
)  # fmt: skip


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "jobs",
        help="training as background jobs: submit, list, show, logs, cancel, resume, wait, delete",
        description="Run PaCo-GRPO training as background jobs that outlive this command.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage; wait: 0 completed, 3 failed, 4 stopped, "
        "5 interrupted, 124 timed out.",
    )
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument("--home", help="job store folder (default: $PACO_HOME, else ~/.paco)")
    actions = parser.add_subparsers(dest="jobs_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    submit = actions.add_parser("submit", parents=[home], help="queue a training config; prints the job id")
    submit.add_argument("--config", help="training config JSON (as for `paco train`)")
    submit.add_argument("--preset", help="start from the paper's settings for a task")
    submit.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set num_iterations=50",
    )
    submit.add_argument("--name", help="a label for the job (default: its id)")
    submit.add_argument("--run-dir", help="run folder (default: output_dir of the config, else HOME/runs/ID)")
    submit.add_argument(
        "--processes", type=int, default=1, help="processes under `accelerate launch` (default 1)"
    )
    submit.add_argument("--accelerate-config", help="accelerate config file (FSDP, several machines)")
    earlier = submit.add_mutually_exclusive_group()
    earlier.add_argument(
        "--resume",
        action="store_true",
        help="the run folder holds an earlier run: continue it from its latest checkpoint",
    )
    earlier.add_argument(
        "--overwrite",
        action="store_true",
        help="the run folder holds an earlier run: delete that run's files and start afresh",
    )
    submit.add_argument("--json", action="store_true", help="print the job as JSON instead of its id")
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="queue nothing: probe one prompt's group here and print s/iteration, total time and peak memory",
    )
    submit.add_argument(
        "--summary", action="store_true", help=argparse.SUPPRESS
    )  # --dry-run --json: + summary
    submit.set_defaults(func=run_submit)

    listing = actions.add_parser("list", parents=[home], help="all jobs, oldest first")
    listing.add_argument("--json", action="store_true", help="print JSON records")
    listing.set_defaults(func=run_list)

    show = actions.add_parser("show", parents=[home], help="one job's status, progress and LoRA files")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="print the full JSON record")
    show.set_defaults(func=run_show)

    logs = actions.add_parser("logs", parents=[home], help="the job's train.log")
    logs.add_argument("id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    logs.add_argument(
        "--tail-kib",
        type=int,
        default=1024,
        help="print the log's last KiB only (default 1024); read in bounded chunks",
    )
    logs.add_argument("--all", action="store_true", help="print the whole log (still read in 1 MiB chunks)")
    logs.set_defaults(func=run_logs)

    cancel = actions.add_parser(
        "cancel", parents=[home], help="stop a job (running: after its step, with a checkpoint)"
    )
    cancel.add_argument("id")
    cancel.set_defaults(func=run_cancel)

    resume = actions.add_parser("resume", parents=[home], help="continue a stopped/failed/interrupted job")
    resume.add_argument("id")
    resume.add_argument("--iterations", type=int, help="a new total number of iterations")
    resume.set_defaults(func=run_resume)

    wait = actions.add_parser("wait", parents=[home], help="block until the job ends; exit code tells how")
    wait.add_argument("id")
    wait.add_argument("--timeout", type=float, help="give up after this many seconds (exit 124)")
    wait.set_defaults(func=run_wait)

    delete = actions.add_parser("delete", parents=[home], help="remove a job that is not running")
    delete.add_argument("id")
    delete.add_argument(
        "--files",
        action="store_true",
        help="also delete what the job wrote into its run folder (other files there stay)",
    )
    delete.set_defaults(func=run_delete)

    register_ux(actions, home)

    worker = actions.add_parser(
        "worker", parents=[home], help="keep reconciling and starting queued jobs (optional; see docs)"
    )
    worker.add_argument("--interval", type=float, default=5.0, help="seconds between rounds (default 5)")
    worker.add_argument("--once", action="store_true", help="one round, then exit")
    worker.set_defaults(func=run_worker)


def register_ux(actions, home) -> None:
    """sample, save, continue, move, compare (docs/jobs.md, "Working with a job")."""
    sample = actions.add_parser("sample", parents=[home], help="a running job samples at its next step")
    sample.add_argument("id")
    sample.add_argument("--prompt", help="a prompt to sample (default: the job's held-out prompts)")
    sample.add_argument(
        "--wait", type=float, metavar="S", help="wait up to S seconds and print the grid's path"
    )
    sample.set_defaults(func=run_request, kind="sample")

    save = actions.add_parser(
        "save", parents=[home], help="a running job saves a checkpoint at its next step"
    )
    save.add_argument("id")
    save.add_argument("--wait", type=float, metavar="S", help="wait up to S seconds and print the checkpoint")
    save.set_defaults(func=run_request, kind="save", prompt=None)

    more = actions.add_parser(
        "continue", parents=[home], help="train a completed or stopped job further, as a new job"
    )
    more.add_argument("id")
    more.add_argument("--iterations", type=int, required=True, help="how many more iterations")
    more.add_argument(
        "--from",
        dest="start_from",
        choices=("last", "best"),
        default="last",
        help="start from the last checkpoint (default) or the best held-out one",
    )
    more.add_argument("--name", help="the new job's name (default: NAME-continued)")
    more.set_defaults(func=run_continue)

    move = actions.add_parser("move", parents=[home], help="move a queued job up, down or to the front")
    move.add_argument("id")
    move.add_argument("where", choices=("up", "down", "front"))
    move.set_defaults(func=run_move)

    compare = actions.add_parser("compare", parents=[home], help="two or more jobs side by side")
    compare.add_argument("ids", nargs="+", metavar="ID")
    compare.add_argument("--json", action="store_true", help="print JSON rows")
    compare.set_defaults(func=run_compare)


def _store(args):
    from paco_core.jobs.store import JobStore

    return JobStore(args.home)


def run_submit(args) -> int:
    from paco_core.jobs import runner
    from paco_core.jobs.training_request import TrainingRequest, build_training_config

    data = build_training_config(
        TrainingRequest(preset=args.preset, config_file=args.config, overrides=args.overrides)
    )
    if args.dry_run:
        return run_estimate(data, args)
    store = _store(args)
    job = runner.submit(
        store,
        data,
        name=args.name,
        run_dir=args.run_dir,
        num_processes=args.processes,
        accelerate_config=args.accelerate_config,
        resume=args.resume,
        overwrite=args.overwrite,
        name_field="--name",
    )
    print(json.dumps(job.to_record(), indent=2) if args.json else job.id)
    return 0


LIST_WAIT_S = 2.0
"""How long ``list`` waits for the store's write lock to bring statuses up to date; then it
lists what the store holds (reading needs no lock)."""


def run_estimate(data: dict, args) -> int:
    """``submit --dry-run``: the estimate of docs/jobs.md ("Estimate before you start"); nothing is queued."""
    from paco_core.config import config_from_dict
    from paco_core.jobs import runner
    from paco_core.rl.config import TrainConfig
    from paco_core.rl.estimate import estimate_run

    config = config_from_dict(TrainConfig, runner.validate_config({**data, "output_dir": "estimate-probe"}))
    estimate = estimate_run(config, num_processes=args.processes)
    record = {**estimate.to_dict(), "summary": estimate.summary()} if args.summary else estimate.to_dict()
    print(json.dumps(record, indent=2) if args.json else estimate.summary())
    return 0


def printable(text: object) -> str:
    """``text`` with control and format characters shown escaped (``\\x1b``), never acted on
    by the terminal (a name or log tail from an older store may hold them)."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text)
    )


def _dispatch_for_reading(store) -> None:
    from paco_core.jobs import runner
    from paco_core.jobs.store import JobStoreDamagedError, JobStoreError

    try:
        runner.dispatch(store.waiting_at_most(LIST_WAIT_S))
    except JobStoreDamagedError:
        raise
    except JobStoreError as error:  # locked or read-only: reading still works
        print(f"paco jobs: note: statuses not refreshed: {error}", file=sys.stderr)


def run_list(args) -> int:
    store = _store(args)
    _dispatch_for_reading(store)
    jobs = store.list()
    if args.json:
        print(json.dumps([job.to_record() for job in jobs], indent=2))
        return 0
    if not jobs:
        print(f"no jobs in {store.path}")
        return 0
    from paco_core.jobs.queue_order import positions

    places = positions(store)
    print(f"{'ID':13s}  {'STATUS':11s}  {'STEP':>9s}  {'DEVICE':7s}  {'CREATED':16s}  NAME")
    for job in jobs:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created_at))
        status = f"queued #{places[job.id]}" if job.id in places else job.status
        print(
            f"{job.id:13s}  {status:11s}  {f'{job.step}/{job.total}':>9s}  {printable(job.device):7s}  "
            f"{created:16s}  {printable(job.name)}"
        )
    return 0


def run_show(args) -> int:
    store = _store(args)
    _dispatch_for_reading(store)
    record = store.get(args.id).to_record()
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    for key in SHOW_KEYS:
        value = record.get(key)
        if key.endswith("_time") and value is not None:
            value = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value / 1000))
        if key == "error" and value:
            value = "\n  " + "\n  ".join(printable(line) for line in str(value).splitlines())
        elif value is not None:
            value = printable(value)
        print(f"{key}: {'' if value is None else value}")
    from paco_core.jobs.lineage import children, lineage

    chain = lineage(store, args.id)
    if len(chain) > 1:
        print(
            "lineage: "
            + " -> ".join(
                f"{job.id} ({job.name}, from step {job.parent_step})"
                if job.parent_id
                else f"{job.id} ({job.name})"
                for job in chain
            )
        )
    continued = children(store, args.id)
    if continued:
        print("continued by: " + ", ".join(f"{job.id} ({job.status})" for job in continued))
    return 0


def run_logs(args) -> int:
    from paco_core.jobs import runner

    store = _store(args)
    if args.tail_kib < 1:
        raise ConfigError(f"--tail-kib should be 1 or more, got {args.tail_kib}; --all prints the whole log")
    tail = None if args.all else args.tail_kib << 10
    for chunk in runner.follow_log(store, args.id, follow=args.follow, tail_bytes=tail):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    return 0


def run_cancel(args) -> int:
    from paco_core.jobs import runner

    job = runner.cancel(_store(args), args.id)
    print(f"{job.id}: {job.status}")
    return 0


def run_resume(args) -> int:
    from paco_core.jobs import runner

    job = runner.resume(_store(args), args.id, num_iterations=args.iterations)
    print(f"{job.id}: {job.status}")
    return 0


def run_request(args) -> int:
    from paco_core.jobs import controls

    store = _store(args)
    asked = controls.request(store, args.id, args.kind, prompt=args.prompt)
    if args.wait is None:
        print(f"{args.id}: {args.kind} requested; it happens at the next step boundary")
        return 0
    done = controls.wait_done(store, args.id, args.kind, asked["requested"]["since"], timeout=args.wait)
    if done is None:
        print(f"{args.id}: the {args.kind} did not happen within {args.wait:g} s", file=sys.stderr)
        return EXIT_TIMEOUT
    if done.get("error"):
        print(f"{args.id}: {done['error']}", file=sys.stderr)
        return 1
    print(f"{args.id}: {args.kind} at step {done['step']}: {done['path']}")
    return 0


def run_continue(args) -> int:
    from paco_core.jobs import lineage

    job = lineage.continue_job(
        _store(args), args.id, iterations=args.iterations, start_from=args.start_from, name=args.name
    )
    print(f"{job.id}: {job.status}, continues {job.parent_id} from step {job.parent_step} to {job.total}")
    return 0


def run_move(args) -> int:
    from paco_core.jobs import queue_order

    store = _store(args)
    job = queue_order.move(store, args.id, args.where)
    print(f"{job.id}: position {queue_order.positions(store)[job.id]} in the {job.device} queue")
    return 0


def run_compare(args) -> int:
    from paco_core.jobs import compare

    rows = compare.compare(_store(args), args.ids)
    print(json.dumps(rows, indent=2) if args.json else compare.format_table(rows))
    return 0


def run_wait(args) -> int:
    from paco_core.jobs import runner

    job = runner.wait(_store(args), args.id, timeout=args.timeout)
    if job.is_final:
        print(f"{job.id}: {job.status} at step {job.step}/{job.total}")
        return WAIT_EXIT_CODES[job.status]
    print(
        f"{job.id}: still {job.status} at step {job.step}/{job.total} after {args.timeout:g} s",
        file=sys.stderr,
    )
    return EXIT_TIMEOUT


def run_delete(args) -> int:
    from paco_core.jobs import runner

    deleted = runner.delete(_store(args), args.id, files=args.files)
    job = deleted.job
    if not args.files:
        print(f"deleted {job.id} (files kept in {job.run_dir})")
    elif deleted.kept_because:
        print(f"deleted {job.id}; its files are kept in {job.run_dir}: {deleted.kept_because}")
    else:
        removed = ", ".join(deleted.removed_files) or "nothing was left"
        print(f"deleted {job.id} and its run files in {job.run_dir} ({removed}); other files there are kept")
    return 0


def run_worker(args) -> int:
    from paco_core.jobs import runner

    store = _store(args)
    while True:
        started = runner.dispatch(store)
        for job_id in started:
            print(f"started {job_id}", flush=True)
        if args.once:
            return 0
        time.sleep(max(0.5, args.interval))

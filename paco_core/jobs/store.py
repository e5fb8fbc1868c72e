"""The job store: one SQLite file (standard library), one row per training job.

Where: ``<home>/jobs.sqlite3``, with ``home`` from :func:`resolve_home` (``--home DIR``,
else the ``PACO_HOME`` environment variable, else ``~/.paco``; inside ComfyUI the nodes
pass ``<ComfyUI user directory>/paco``). Run folders of jobs default to ``<home>/runs/<id>``.

Several processes (ComfyUI, the CLI, each job's supervisor) open the same file: it uses
WAL journaling and a busy timeout, every change is one short transaction, and changes
that depend on what is read (claiming a device, finishing a job) run under
``BEGIN IMMEDIATE`` so two writers cannot both act on the same row.

The schema carries its version in the ``schema_version`` table; :data:`MIGRATIONS` lists
the steps, applied in order when a store is opened (an older file is upgraded in place).

Statuses (see docs/jobs.md for the transitions)::

    queued -> running -> completed | failed | stopped | interrupted
    running -> stopping (cancel asked) -> stopped (checkpoint saved) | ...
    queued -> stopped (cancelled before it started)
    stopped | interrupted | failed -> queued (resume)
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import logging
import os
import secrets
import sqlite3
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paco_core.errors import InputError, PaCoError

logger = logging.getLogger(__name__)

STORE_FILE = "jobs.sqlite3"
HOME_ENV = "PACO_HOME"
DEFAULT_HOME = "~/.paco"
BUSY_TIMEOUT_S = 30.0

QUEUED, RUNNING, STOPPING = "queued", "running", "stopping"
STOPPED, COMPLETED, FAILED, INTERRUPTED = "stopped", "completed", "failed", "interrupted"
JOB_STATUSES = (QUEUED, RUNNING, STOPPING, STOPPED, COMPLETED, FAILED, INTERRUPTED)
ACTIVE_STATUSES = (RUNNING, STOPPING)
"""A process is (or should be) alive for these."""
FINAL_STATUSES = (STOPPED, COMPLETED, FAILED, INTERRUPTED)
RESUMABLE_STATUSES = (STOPPED, FAILED, INTERRUPTED)
GPU_POLICIES = ("exclusive", "yield")
"""From the training config's ``gpu_policy``: ``yield`` pauses for ComfyUI's prompts (docs/gpu-sharing.md)."""


class JobStoreError(PaCoError):
    """The store's file cannot be used as asked: damaged, read-only, locked too long, disk full."""


class JobStoreDamagedError(JobStoreError):
    """The store's file is not a sound SQLite database (a damaged page, not a database at all)."""


class JobStoreBusyError(JobStoreError):
    """Another process held the store's write lock for longer than the wait allows."""


def store_error(path: Path, error: sqlite3.Error, waited_s: float = BUSY_TIMEOUT_S) -> JobStoreError:
    """The one-line error a user sees for an SQLite failure of the store at ``path``."""
    name = getattr(error, "sqlite_errorname", "") or ""
    text = str(error)
    where = repr(str(path))
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED") or "locked" in text:
        return JobStoreBusyError(
            f"the job store {where} stayed locked by another process for {waited_s:g} s: try again in a "
            "moment; if it stays locked, find the process that holds it (`fuser` on the file) and end it"
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return JobStoreError(
            f"the job store {where} is read-only ({text}): make the file and its folder writable "
            "(chmod u+w; chattr -i for an immutable file), or use another --home / PACO_HOME"
        )
    if (
        name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
        or "malformed" in text
        or "not a database" in text
    ):
        return JobStoreDamagedError(
            f"the job store {where} is damaged ({text}); PaCo leaves it as it is: move it aside (e.g. add "
            "'.damaged' to its name) and a new, empty store is made; run folders and exported LoRAs are "
            "not in it and stay (`sqlite3 FILE .recover` may save its records)"
        )
    if name.startswith("SQLITE_FULL") or "full" in text:
        return JobStoreError(f"the disk holding the job store {where} is full ({text}): free some space")
    return JobStoreError(f"the job store {where} failed: {text} ({name or type(error).__name__})")


class JobNotFoundError(InputError):
    """No job with this id in the store."""


class JobStateError(InputError):
    """The job's status does not allow the request (delete a running job, resume a completed one)."""


MAX_NAME_CHARS = 100
"""A job's name becomes its LoRA files' names (``<name>-step<N>.safetensors``): kept well under
the 255 bytes a file name may have."""


def check_job_name(name: str, *, field: str = "name") -> str:
    """``name`` if it can name a job and its LoRA files; ``field`` is how the caller calls it.

    Refused: an empty name, more than :data:`MAX_NAME_CHARS` characters, and control or
    format characters (a newline, a carriage return, an escape sequence that a terminal
    would act on when ``paco jobs list`` prints the name, a right-to-left override).

    Raises:
        InputError: naming ``field``, what was wrong and the fix.
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{field} is empty: give the job a name, e.g. 'ink-foxes'")
    if len(name) > MAX_NAME_CHARS:
        raise InputError(
            f"{field} has {len(name)} characters, more than {MAX_NAME_CHARS}: give a shorter name "
            "(it names the LoRA files)"
        )
    bad = next((ch for ch in name if unicodedata.category(ch)[0] == "C" or ch in "\u2028\u2029"), None)
    if bad is not None:
        raise InputError(
            f"{field} {ascii(name)[:80]} holds the control character {ascii(bad)}: use letters, digits, "
            "spaces and punctuation only"
        )
    return name


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """The store's folder: ``home`` if given, else ``$PACO_HOME``, else ``~/.paco``."""
    chosen = home or os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(os.path.expanduser(str(chosen))).resolve()


def new_job_id() -> str:
    """``job-`` and 8 hex digits (4 random bytes)."""
    return f"job-{secrets.token_hex(4)}"


# --- schema and migrations ---------------------------------------------------------------

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: the job table
    (
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            started_at REAL,
            ended_at REAL,
            updated_at REAL NOT NULL,
            config TEXT NOT NULL,
            launch TEXT NOT NULL DEFAULT '{}',
            run_dir TEXT NOT NULL,
            device TEXT NOT NULL,
            pid INTEGER,
            pid_start INTEGER,
            supervisor_pid INTEGER,
            supervisor_start INTEGER,
            exit_code INTEGER,
            step INTEGER NOT NULL DEFAULT 0,
            total INTEGER NOT NULL DEFAULT 0,
            last_checkpoint TEXT,
            best_checkpoint TEXT,
            error TEXT,
            resume INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX jobs_by_status ON jobs (status, device, created_at)",
    ),
    # v2: the GPU policy (exclusive now; yield with the GPU-sharing work)
    ("ALTER TABLE jobs ADD COLUMN gpu_policy TEXT NOT NULL DEFAULT 'exclusive'",),
    # v3: lineage (a continued job names its parent and the step it starts from) and queue order
    (
        "ALTER TABLE jobs ADD COLUMN parent_id TEXT",
        "ALTER TABLE jobs ADD COLUMN parent_step INTEGER",
        "ALTER TABLE jobs ADD COLUMN queue_rank REAL",
        "UPDATE jobs SET queue_rank = created_at",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(connection: sqlite3.Connection) -> int:
    """The store's schema version (0 for a new file); reads only, so a read-only store answers."""
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if not found:
        return 0
    row = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def check_not_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise InputError(
            f"the job store has schema version {version}, newer than this pack's {SCHEMA_VERSION}: "
            "update ComfyUI-PaCo, or use another --home"
        )


def migrate(connection: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing migration steps up to ``target`` in one transaction; returns the version.

    Raises:
        InputError: the file was written by a newer version of the pack.
    """
    if schema_version(connection) == 0:
        connection.execute("PRAGMA journal_mode = WAL")  # kept in the file: set once, when it is made
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(connection)
        check_not_newer(version)
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        for number in range(version + 1, target + 1):
            for statement in MIGRATIONS[number - 1]:
                connection.execute(statement)
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
        connection.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise
    return max(version, target)


def open_connection(path: str | os.PathLike, busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A connection with a busy timeout and manual transactions (``isolation_level=None``).

    Opening writes nothing (the file's WAL mode is set once, by :func:`migrate`), so reading
    a read-only store, or one another process holds the write lock of, works."""
    connection = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None)
    connection.row_factory = sqlite3.Row
    connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


# --- one job ----------------------------------------------------------------------------


@dataclass
class Job:
    """One row of the store. Times are seconds since the epoch (``time.time()``)."""

    id: str
    name: str
    status: str
    created_at: float
    updated_at: float
    config: dict[str, Any]
    run_dir: str
    device: str
    launch: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None
    pid: int | None = None
    pid_start: int | None = None
    supervisor_pid: int | None = None
    supervisor_start: int | None = None
    exit_code: int | None = None
    step: int = 0
    total: int = 0
    last_checkpoint: str | None = None
    best_checkpoint: str | None = None
    error: str | None = None
    resume: bool = False
    attempts: int = 0
    gpu_policy: str = "exclusive"
    parent_id: str | None = None
    """A continued job: the job it continues (docs/jobs.md, "Continue training")."""
    parent_step: int | None = None
    """A continued job: the step of the parent's checkpoint it starts from."""
    queue_rank: float | None = None
    """Order in its device's queue (smaller starts first); the creation time unless moved."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = dict(row)
        data["config"] = json.loads(data["config"])
        data["launch"] = json.loads(data["launch"] or "{}")
        data["resume"] = bool(data["resume"])
        return cls(**data)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def lora(self) -> str | None:
        """The LoRA file of the last checkpoint (None before the first checkpoint)."""
        return _lora_file(self.last_checkpoint)

    @property
    def best_lora(self) -> str | None:
        """The LoRA file of the best checkpoint, else of the last one."""
        return _lora_file(self.best_checkpoint) or self.lora

    def to_dict(self) -> dict[str, Any]:
        """Every column, plus ``lora`` and ``best_lora``."""
        return {**asdict(self), "lora": self.lora, "best_lora": self.best_lora}

    def to_record(self) -> dict[str, Any]:
        """A record shaped like ComfyUI's ``/api/jobs`` items, plus the training fields.

        ``create_time`` / ``execution_start_time`` / ``execution_end_time`` are integer
        milliseconds since the epoch as in ComfyUI; ``progress`` is ``{step, total}``.
        """
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "create_time": _millis(self.created_at),
            "execution_start_time": _millis(self.started_at),
            "execution_end_time": _millis(self.ended_at),
            "update_time": _millis(self.updated_at),
            "progress": {"step": self.step, "total": self.total},
            "step": self.step,
            "total": self.total,
            "pid": self.pid,
            "device": self.device,
            "gpu_policy": self.gpu_policy,
            "run_dir": self.run_dir,
            "lora": self.lora,
            "best_lora": self.best_lora,
            "last_checkpoint": self.last_checkpoint,
            "best_checkpoint": self.best_checkpoint,
            "exit_code": self.exit_code,
            "error": self.error,
            "attempts": self.attempts,
            "launch": self.launch,
            "parent_id": self.parent_id,
            "parent_step": self.parent_step,
        }


def _lora_file(checkpoint: str | None) -> str | None:
    return str(Path(checkpoint) / "lora.safetensors") if checkpoint else None


def _millis(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


# --- the store --------------------------------------------------------------------------

_COLUMNS = tuple(Job.__dataclass_fields__)
_JSON_COLUMNS = ("config", "launch")


class JobStore:
    """The jobs of one home folder.

    Each call opens its own short-lived connection, so one store object may be used from
    several threads (ComfyUI's server and its watcher thread) and processes.

    Example:
        >>> store = JobStore("/tmp/paco-home")  # doctest: +SKIP
        >>> store.get("job-1a2b3c4d").status  # doctest: +SKIP
        'running'
    """

    def __init__(self, home: str | os.PathLike | None = None, *, busy_timeout_s: float = BUSY_TIMEOUT_S):
        self.home = resolve_home(home)
        self.busy_timeout_s = busy_timeout_s
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(
                f"cannot create the job store folder {str(self.home)!r}: {error.strerror}"
            ) from error
        self.path = self.home / STORE_FILE
        self._upgrade()

    def _upgrade(self) -> None:
        """Create or migrate the file when needed; a store at the latest version is only read."""
        with self._open() as connection:
            version = schema_version(connection)
            check_not_newer(version)
            if version < SCHEMA_VERSION:
                migrate(connection)

    def waiting_at_most(self, seconds: float) -> JobStore:
        """This store with a shorter wait for the write lock (a listing that must answer quickly)."""
        other = copy.copy(self)
        other.busy_timeout_s = seconds
        return other

    @property
    def runs_dir(self) -> Path:
        """Default parent of the jobs' run folders."""
        return self.home / "runs"

    @contextlib.contextmanager
    def _open(self) -> Iterator[sqlite3.Connection]:
        """A connection whose SQLite errors become one-line :class:`JobStoreError` messages."""
        try:
            connection = open_connection(self.path, self.busy_timeout_s)
        except sqlite3.Error as error:
            raise store_error(self.path, error, self.busy_timeout_s) from error
        try:
            yield connection
        except sqlite3.Error as error:
            raise store_error(self.path, error, self.busy_timeout_s) from error
        finally:
            connection.close()

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection; a store file deleted meanwhile is made again (empty, with a warning)."""
        if not self.path.exists():
            logger.warning("the job store %s was deleted: starting a new, empty one", self.path)
            with contextlib.suppress(OSError):  # its folder may have gone too
                self.home.mkdir(parents=True, exist_ok=True)
            self._upgrade()
        with self._open() as connection:
            yield connection

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error): read-then-write safely."""
        with self.connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    # -- create / read

    def create(
        self,
        *,
        name: str,
        config: dict[str, Any],
        run_dir: str | os.PathLike,
        device: str,
        launch: dict[str, Any] | None = None,
        gpu_policy: str = "exclusive",
        job_id: str | None = None,
        parent_id: str | None = None,
        parent_step: int | None = None,
    ) -> Job:
        """Insert a queued job and return it."""
        check_job_name(name)
        if gpu_policy not in GPU_POLICIES:
            raise InputError(f"gpu_policy should be one of {', '.join(GPU_POLICIES)}, got {gpu_policy!r}")
        now = time.time()
        job = Job(
            id=job_id or new_job_id(),
            name=name,
            status=QUEUED,
            created_at=now,
            updated_at=now,
            config=config,
            run_dir=str(run_dir),
            device=device,
            launch=dict(launch or {}),
            total=int(config.get("num_iterations") or 0),
            gpu_policy=gpu_policy,
            parent_id=parent_id,
            parent_step=parent_step,
            queue_rank=now,
        )
        row = _to_row(asdict(job))
        with self.transaction() as connection:
            connection.execute(
                f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
        return job

    def find(self, job_id: str) -> Job | None:
        with self.connect() as connection:
            row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def get(self, job_id: str) -> Job:
        """The job ``job_id``.

        Raises:
            JobNotFoundError: no such id; the message names the closest ids.
        """
        job = self.find(job_id)
        if job is None:
            raise JobNotFoundError(self.not_found_message(job_id))
        return job

    def not_found_message(self, job_id: str) -> str:
        ids = self.ids()
        close = difflib.get_close_matches(job_id, ids, n=3, cutoff=0.5)
        close += [i for i in ids if job_id and job_id in i and i not in close]
        if close:
            hint = f"did you mean {', '.join(close[:3])}?"
        elif ids:
            hint = "list the jobs with `paco jobs list`"
        else:
            hint = f"the store {str(self.path)!r} has no jobs yet"
        return f"no job {job_id!r}: {hint}"

    def ids(self) -> list[str]:
        with self.connect() as connection:
            return [row[0] for row in connection.execute("SELECT id FROM jobs ORDER BY created_at")]

    def list(self, *, statuses: tuple[str, ...] | None = None, device: str | None = None) -> list[Job]:
        """Jobs, oldest first, optionally only with these statuses / on this device."""
        query, args = "SELECT * FROM jobs", []
        clauses = []
        if statuses:
            clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
            args.extend(statuses)
        if device:
            clauses.append("device = ?")
            args.append(device)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        with self.connect() as connection:
            rows = connection.execute(query + " ORDER BY created_at, id", args).fetchall()
        return [Job.from_row(row) for row in rows]

    # -- change

    def update(self, job_id: str, *, expect: tuple[str, ...] | None = None, **changes: Any) -> bool:
        """Set columns of one job (``updated_at`` too); with ``expect``, only while its status is one of them.

        Returns:
            True when the row changed (False: no such job, or its status was not expected).
        """
        return update_job(None, self, job_id, expect=expect, **changes)

    def delete(self, job_id: str) -> bool:
        with self.transaction() as connection:
            return connection.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def integrity_check(self) -> str:
        with self.connect() as connection:
            return connection.execute("PRAGMA integrity_check").fetchone()[0]


def update_job(
    connection: sqlite3.Connection | None,
    store: JobStore,
    job_id: str,
    *,
    expect: tuple[str, ...] | None = None,
    **changes: Any,
) -> bool:
    """:meth:`JobStore.update` inside an open transaction (``connection``) or in its own."""
    unknown = sorted(set(changes) - set(_COLUMNS))
    if unknown:
        raise ValueError(f"unknown job columns {unknown}")
    if "status" in changes and changes["status"] not in JOB_STATUSES:
        raise ValueError(f"unknown job status {changes['status']!r}")
    changes = _to_row({**changes, "updated_at": time.time()})
    query = f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?"
    args: list[Any] = [*changes.values(), job_id]
    if expect:
        query += f" AND status IN ({', '.join('?' * len(expect))})"
        args.extend(expect)
    if connection is not None:
        return connection.execute(query, args).rowcount > 0
    with store.transaction() as own:
        return own.execute(query, args).rowcount > 0


def _to_row(values: dict[str, Any]) -> dict[str, Any]:
    row = {}
    for key, value in values.items():
        if key in _JSON_COLUMNS:
            value = json.dumps(value, sort_keys=True)
        elif isinstance(value, bool):
            value = int(value)
        row[key] = value
    return row

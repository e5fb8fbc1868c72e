"""``metrics.jsonl``: one JSON object per line, each with its ``step``, appended by the trainer
and read while it writes (a line being written is skipped)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from paco_core.io import atomic_write_text
from paco_core.run_folder.layout import METRICS_FILE

logger = logging.getLogger(__name__)


class MetricsLog:
    """The metrics part of :class:`~paco_core.run_folder.RunFolder` (its ``path`` is the run folder)."""

    path: Path

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    def append_metrics(self, step: int, values: dict[str, Any]) -> dict[str, Any]:
        """Append one line ``{"step": step, **values}`` to ``metrics.jsonl``; returns it."""
        record = {"step": step, **values}
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
        return record

    def iter_metrics(self) -> Iterator[dict[str, Any]]:
        """Every metrics line in order. A line being written (no newline yet) or damaged is skipped."""
        try:
            handle = open(self.metrics_path, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        with handle:
            for line in handle:
                if not line.endswith("\n") or not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    logger.debug("skipping a damaged line of %s", self.metrics_path)
                    continue
                if isinstance(record, dict) and isinstance(record.get("step"), int):
                    yield record

    def read_metrics(self) -> list[dict[str, Any]]:
        """All metrics lines, oldest first ([] when there are none)."""
        return list(self.iter_metrics())

    def metric_series(self, name: str) -> list[tuple[int, Any]]:
        """``(step, value)`` of every line that holds metric ``name``, e.g. ``rewards/aggregated/mean``."""
        return [(record["step"], record[name]) for record in self.iter_metrics() if name in record]

    def metric_names(self) -> list[str]:
        """Every metric name seen in the file, sorted."""
        names: set[str] = set()
        for record in self.iter_metrics():
            names.update(record)
        names.discard("step")
        return sorted(names)

    def truncate_metrics_after(self, step: int) -> None:
        """Drop lines past ``step`` (left by a run that stopped after its last checkpoint), atomically."""
        if not self.metrics_path.is_file():
            return
        kept = [record for record in self.iter_metrics() if record["step"] <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

// Pure helpers of the PaCo Jobs sidebar: statuses, durations, time left, metric series and
// the exported LoRA file names. No DOM, no ComfyUI: easy to check on their own.

export const ACTIVE = new Set(["queued", "running", "stopping"]);
export const RESUMABLE = new Set(["stopped", "failed", "interrupted"]);
export const ENDED = new Set(["stopped", "completed", "failed", "interrupted"]);

const STATUS_TONES = {
  queued: "muted",
  running: "active",
  paused: "warn",
  stopping: "warn",
  stopped: "muted",
  completed: "good",
  failed: "bad",
  interrupted: "bad",
};

export function statusTone(status) {
  return STATUS_TONES[status] ?? "muted";
}

/** The status to show: "paused" while a running job yields the GPU to ComfyUI's queue. */
export function shownStatus(record, progress) {
  const paused = record.paused || record.state === "paused" || progress?.state === "paused";
  return record.status === "running" && paused ? "paused" : record.status;
}

/** "2 h 05 min", "3 min 20 s", "45 s". */
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min ${String(s % 60).padStart(2, "0")} s`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/** Seconds left for a running job: from the wall-clock pace of the steps this page saw
 * (``pace`` = [{t, step}] oldest first; it includes evaluations and checkpoints), else the
 * server's ``eta_s`` (the last step's own duration times the steps to go). */
export function secondsLeft(record, pace = []) {
  if (record.status !== "running") return null;
  const { step, total } = stepAndTotal(record);
  if (!total || step >= total) return null;
  if (pace.length >= 2) {
    const first = pace[0];
    const last = pace[pace.length - 1];
    if (last.step > first.step) {
      const perStep = (last.t - first.t) / 1000 / (last.step - first.step);
      return perStep * (total - step);
    }
  }
  return Number.isFinite(record.eta_s) ? Math.max(0, record.eta_s) : null;
}

export function stepAndTotal(record) {
  const step = record.step ?? record.progress?.step ?? 0;
  const total = record.total ?? record.progress?.total ?? 0;
  return { step: step || 0, total: total || 0 };
}

export function fraction(record) {
  const { step, total } = stepAndTotal(record);
  if (record.status === "completed") return 1;
  return total > 0 ? Math.min(1, Math.max(0, step / total)) : 0;
}

/** The line under a job's name in the list. */
export function summaryLine(record, pace, now = Date.now()) {
  const { step, total } = stepAndTotal(record);
  const parts = [];
  if (total) parts.push(`step ${step}/${total}`);
  const left = secondsLeft(record, pace);
  if (left != null) parts.push(`${formatDuration(left)} left`);
  if (ENDED.has(record.status) && record.execution_end_time) {
    parts.push(`ended ${formatClock(record.execution_end_time, now)}`);
  }
  if (record.status === "queued") parts.push(`waits for ${record.device ?? "its device"}`);
  return parts.join(" · ");
}

export function formatClock(millis, now = Date.now()) {
  const date = new Date(millis);
  const sameDay = new Date(now).toDateString() === date.toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay ? time : `${date.toLocaleDateString()} ${time}`;
}

/** The last non-empty line of an error (a failed job's error is the end of its log). */
export function errorReason(record, limit = 240) {
  const lines = String(record.error ?? "").split("\n").map((line) => line.trim()).filter(Boolean);
  const reason = lines.length ? lines[lines.length - 1] : "";
  return reason.length > limit ? `${reason.slice(0, limit - 1)}…` : reason;
}

const TRAIN_MEAN = /^rewards\/(.+)\/mean$/;
const EVAL_MEAN = /^eval\/rewards\/(.+)\/mean$/;

/** {train: [{name, points}], eval: [...]}: one line per reward's mean from the metric series. */
export function rewardLines(series) {
  const train = [];
  const evaluation = [];
  for (const [key, points] of Object.entries(series ?? {})) {
    const clean = (points ?? []).filter((p) => Array.isArray(p) && Number.isFinite(p[0]));
    let found = key.match(EVAL_MEAN);
    if (found) {
      evaluation.push({ name: found[1], points: clean });
      continue;
    }
    found = key.match(TRAIN_MEAN);
    if (found) train.push({ name: found[1], points: clean });
  }
  const byName = (a, b) => (a.name === "aggregated") - (b.name === "aggregated") || a.name.localeCompare(b.name);
  return { train: train.sort(byName), eval: evaluation.sort(byName) };
}

/** The job's LoRA name as ComfyUI's LoRA folder has it (as paco_core/jobs/export.py names it). */
export function loraBaseName(record) {
  const name = String(record.name ?? "")
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[.-]+|[.-]+$/g, "");
  return name || record.id;
}

/** The loras-folder name of the job's best LoRA (``paco/<name>/<job id>/<name>-best.safetensors``),
 * or of its final LoRA when it has no best one; null when it has neither yet. The detail
 * record's ``lora_files`` (what ComfyUI's jobs watcher exported) wins over the computed name. */
export function bestLoraChoice(record) {
  const exported = Array.isArray(record.lora_files) ? record.lora_files : [];
  const best = exported.find((name) => name.endsWith("-best.safetensors"));
  if (best) return best;
  const base = loraBaseName(record);
  const final = exported.find((name) => name.endsWith(`/${base}.safetensors`));
  if (final) return final;
  if (record.best_lora || record.best_checkpoint) return `paco/${base}/${record.id}/${base}-best.safetensors`;
  if (record.status === "completed" && (record.lora || record.last_checkpoint)) {
    return `paco/${base}/${record.id}/${base}.safetensors`;
  }
  return null;
}

// The PaCo Jobs sidebar's DOM: the job list and one job's view. It reads the state the
// controller (paco_jobs.js) keeps and calls its actions; it fetches nothing itself.

import { rewardChart } from "./chart.js";
import { h } from "./dom.js";
import { guardrailSamples, guardrailTitle } from "./guardrail_samples.js";
import {
  ACTIVE,
  RESUMABLE,
  bestLoraChoice,
  errorReason,
  formatDuration,
  fraction,
  secondsLeft,
  shownStatus,
  statusTone,
  stepAndTotal,
  summaryLine,
} from "./format.js";

function statusChip(status) {
  return h("span", { className: `paco-status paco-tone-${statusTone(status)}`, "data-status": status }, status);
}

function progressBar(record, status) {
  const bar = h("div", { style: `width: ${(fraction(record) * 100).toFixed(1)}%` });
  return h("div", { className: `paco-progress paco-tone-${statusTone(status)}`, role: "progressbar" }, bar);
}

const WARNING_TITLES = {
  reward_gaming: "The LoRA may be gaming its reward",
};

export class JobsPanel {
  constructor(root, controller) {
    this.root = root;
    this.controller = controller;
    this.selected = null;
    this.confirmingDelete = false;
    this.shownSampleStep = null;
    root.replaceChildren();
    root.classList.add("paco-jobs");
    this.refreshButton = h("button", { title: "Reload the jobs", onclick: () => controller.refreshAll() }, "Refresh");
    this.body = h("div", { className: "paco-jobs-body" });
    root.append(h("div", { className: "paco-jobs-header" }, h("h3", {}, "PaCo Jobs"), this.refreshButton), this.body);
    this.render();
  }

  get isOpen() {
    return this.root.isConnected;
  }

  open(id) {
    this.selected = id;
    this.confirmingDelete = false;
    this.shownSampleStep = null;
    this.body.scrollTop = 0;
    this.render();
    if (id) this.controller.refreshDetail(id, { force: true });
  }

  render() {
    if (this.selected && this.controller.jobs.has(this.selected)) this.renderJob(this.controller.jobs.get(this.selected));
    else {
      this.selected = null;
      this.renderList();
    }
  }

  renderList() {
    const jobs = [...this.controller.jobs.values()].sort((a, b) => (b.create_time ?? 0) - (a.create_time ?? 0));
    const list = h("div", { className: "paco-jobs-list" });
    if (!jobs.length) {
      list.append(
        h(
          "div",
          { className: "paco-jobs-empty" },
          this.controller.loadError
            ? `Could not load the jobs: ${this.controller.loadError}`
            : "No training jobs yet. Start one with the PaCo Train LoRA node or ",
          this.controller.loadError ? null : h("code", {}, "paco jobs submit"),
          this.controller.loadError ? null : ".",
        ),
      );
    }
    for (const record of jobs) {
      const status = shownStatus(record);
      const failed = ["failed", "interrupted"].includes(record.status) && record.error;
      list.append(
        h(
          "button",
          { className: "paco-job-row", "data-job-id": record.id, onclick: () => this.open(record.id) },
          h("div", { className: "paco-job-row-top" }, h("span", { className: "paco-job-name" }, record.name || record.id),
            statusChip(status)),
          progressBar(record, status),
          h("div", { className: "paco-job-sub" }, summaryLine(record, this.controller.paceOf(record.id))),
          failed ? h("div", { className: "paco-job-sub paco-error" }, errorReason(record, 140)) : null,
          record.warnings?.length ? h("div", { className: "paco-job-sub paco-tone-warn" }, "⚠ ", record.warnings[0].message ?? record.warnings[0].code) : null,
        ),
      );
    }
    this.body.replaceChildren(list);
  }

  renderJob(record) {
    const detail = this.controller.details.get(record.id) ?? {};
    const status = shownStatus(record, detail.progress);
    const { step, total } = stepAndTotal(record);
    const left = secondsLeft(record, this.controller.paceOf(record.id));
    const loraChoice = bestLoraChoice(record);
    const busy = this.controller.busy.has(record.id);
    const view = h("div", { className: "paco-job-view", "data-job-id": record.id, "data-step": step });

    view.append(
      h("button", { className: "paco-back", onclick: () => this.open(null) }, "← All jobs"),
      h("div", { className: "paco-job-title" }, h("h3", {}, record.name || record.id), statusChip(status)),
      h("div", { className: "paco-job-id" }, `${record.id} · ${record.device ?? ""}${record.gpu_policy ? ` · GPU ${record.gpu_policy}` : ""}`),
      progressBar(record, status),
      h(
        "div",
        { className: "paco-job-sub paco-step" },
        total ? `step ${step} of ${total}` : "no steps yet",
        left != null ? ` · ${formatDuration(left)} left` : "",
        status === "paused" ? " · paused while ComfyUI generates" : "",
      ),
    );

    const warnings = detail.warnings ?? record.warnings ?? [];
    for (const warning of warnings) {
      view.append(
        h(
          "div",
          { className: "paco-banner", role: "alert", "data-warning": warning.code ?? "" },
          h("strong", {}, WARNING_TITLES[warning.code] ?? guardrailTitle(warning.code)),
          warning.message ?? "",
          guardrailSamples(h, warning, this.controller.stepSampleUrl && ((s) => this.controller.stepSampleUrl(record.id, s))),
        ),
      );
    }
    if (["failed", "interrupted"].includes(record.status) && record.error) {
      view.append(
        h("div", { className: "paco-banner paco-error" }, h("strong", {}, `The job ${record.status}`), errorReason(record)),
      );
    }

    const actions = h(
      "div",
      { className: "paco-actions" },
      h("button", { className: "paco-cancel", disabled: busy || !["queued", "running"].includes(record.status),
        title: "Stop after the current step (a checkpoint is saved)", onclick: () => this.controller.cancel(record.id) }, "Cancel"),
      h("button", { className: "paco-resume", disabled: busy || !RESUMABLE.has(record.status),
        title: "Continue from the last checkpoint", onclick: () => this.controller.resume(record.id) }, "Resume"),
      h("button", { className: "paco-delete paco-danger", disabled: busy || ACTIVE.has(record.status),
        title: "Remove the job from the list", onclick: () => { this.confirmingDelete = true; this.render(); } }, "Delete"),
      h("button", { className: "paco-add-lora paco-primary", disabled: !loraChoice,
        title: loraChoice ? `Add a PaCo LoRA node with ${loraChoice}` : "The job has no LoRA yet",
        onclick: () => this.controller.addLoraNode(record) }, "Add LoRA node"),
    );
    view.append(actions);

    if (this.confirmingDelete) {
      const withFiles = h("input", { type: "checkbox", className: "paco-delete-files" });
      view.append(
        h(
          "div",
          { className: "paco-confirm" },
          h("div", {}, `Delete the job “${record.name || record.id}”?`),
          h("label", {}, withFiles, "also delete its run folder (checkpoints, samples, log)"),
          h("div", { className: "paco-actions" },
            h("button", { className: "paco-confirm-delete paco-danger",
              onclick: () => this.controller.remove(record.id, withFiles.checked) }, "Delete"),
            h("button", { onclick: () => { this.confirmingDelete = false; this.render(); } }, "Keep")),
        ),
      );
    }

    const lines = detail.lines ?? { train: [], eval: [] };
    view.append(
      h("h4", {}, "Rewards"),
      rewardChart("Training (mean per reward)", lines.train),
      rewardChart("Held-out evaluation (mean per reward)", lines.eval, { dots: true }),
    );

    view.append(h("h4", {}, "Latest sample"), this.sampleElement(record, detail));
    const log = h("pre", { className: "paco-log" }, (detail.log ?? []).join("\n") || "(no log yet)");
    view.append(h("h4", {}, "Log"), log);

    const scroll = this.body.scrollTop;
    this.body.replaceChildren(view);
    this.body.scrollTop = scroll;
    log.scrollTop = log.scrollHeight;
  }

  sampleElement(record, detail) {
    const box = h("div", { className: "paco-sample" });
    if (detail.sampleStep == null || detail.sampleMissing === detail.sampleStep) {
      box.append(h("div", { className: "paco-note" }, detail.loaded ? "No sample grid yet." : "Loading…"));
      return box;
    }
    const url = this.controller.sampleUrl(record.id, detail.sampleStep);
    if (this.sampleBox?.url === url) return this.sampleBox.box; // the same grid: no reload, no flicker
    this.sampleBox = { url, box };
    const img = h("img", {
      src: url,
      alt: `sample grid of ${record.name || record.id} at step ${detail.sampleStep}`,
      "data-step": detail.sampleStep,
    });
    img.addEventListener("error", () => {
      detail.sampleMissing = detail.sampleStep;
      box.replaceChildren(h("div", { className: "paco-note" }, "No sample grid yet."));
    });
    box.append(img, h("div", { className: "paco-note" }, `latest grid, as of step ${detail.sampleStep}`));
    return box;
  }
}

// What artists expect from a trainer's job view, on top of the sidebar (paco_jobs.js, view.js):
// Sample now / Save now for a running job, Continue training for an ended one, queue
// positions and Up / Down / To front for queued jobs, the lineage of a continued job, the
// per-prompt rewards, Compare mode in the list, and a browser notification when a job ends
// while the tab is in the background. Installed by wrapping the controller's and the
// panel's methods, so the sidebar's own modules stay as they are. Routes: nodes/routes_actions.py.

import { h } from "./dom.js";
import { bestLoraChoice } from "./format.js";
import { comparisonView } from "./compare.js";
import { askPermission, endMessage, notificationPermission, notifyInBackground } from "./notify.js";

const PROMPT_ROWS_SHOWN = 24;

/** The spread with 2 significant digits (it is read next to the mean, not on its own). */
function spread(value) {
  return Number.isFinite(value) ? Number(value.toPrecision(2)).toString() : "–";
}

const jobPath = (id, tail = "") => `/paco/jobs/${encodeURIComponent(id)}${tail}`;

function number(value) {
  return Number.isFinite(value) ? Number(value.toPrecision(3)).toString() : "–";
}

export function installExtras(controller, JobsPanel, { api, toast }) {
  const state = {
    positions: {},
    perJob: new Map(), // id -> {requests, prompts, lineage}
    inputs: new Map(), // id -> {prompt, iterations, from}: kept across renders (typing is not lost)
    compareMode: false,
    selected: new Set(),
    comparison: null,
  };
  controller.extras = state;
  installExtrasStyle();

  async function call(method, path, body) {
    const options = { method, cache: "no-store" };
    if (body !== undefined) {
      options.body = JSON.stringify(body);
      options.headers = { "Content-Type": "application/json" };
    }
    const response = await api.fetchApi(path, options);
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      answer = null;
    }
    if (!response.ok) throw new Error(answer?.error ?? `${method} ${path} answered HTTP ${response.status}`);
    return answer;
  }

  const render = () => controller.panel?.isOpen && controller.panel.render();

  async function loadPositions() {
    try {
      state.positions = (await call("GET", "/paco/job-queue")).positions ?? {};
    } catch {
      state.positions = {};
    }
  }

  async function loadJobExtras(id) {
    const [requests, prompts, lineage] = await Promise.all([
      call("GET", jobPath(id, "/requests")).catch(() => null),
      call("GET", jobPath(id, "/prompts")).catch(() => null),
      call("GET", jobPath(id, "/lineage")).catch(() => null),
    ]);
    state.perJob.set(id, { requests, prompts, lineage });
  }

  async function act(id, what, method, path, body, after) {
    controller.busy.add(id);
    render();
    try {
      const answer = await call(method, path, body);
      after?.(answer);
      return answer;
    } catch (error) {
      toast("error", `Could not ${what}`, error.message);
      return null;
    } finally {
      controller.busy.delete(id);
      await Promise.all([loadPositions(), loadJobExtras(id)]);
      render();
      if (controller.panel?.selected === id) controller.refreshDetail(id, { force: true });
    }
  }

  // --- the controller: more data with each refresh; a notification with each end
  const refreshList = controller.refreshList.bind(controller);
  controller.refreshList = async () => {
    await Promise.all([refreshList(), loadPositions()]);
    render();
  };
  const refreshDetail = controller.refreshDetail.bind(controller);
  controller.refreshDetail = async (id, options) => {
    await Promise.all([refreshDetail(id, options), loadJobExtras(id)]);
    render();
  };
  const announceEnd = controller.announceEnd.bind(controller);
  controller.announceEnd = (record) => {
    announceEnd(record);
    notifyInBackground(endMessage(record, bestLoraChoice(record)), { tag: `paco-${record.id}-${record.status}` });
  };

  // --- the panel: the list's compare mode and queue positions; the job view's tools
  const renderList = JobsPanel.prototype.renderList;
  JobsPanel.prototype.renderList = function () {
    if (state.comparison) {
      this.body.replaceChildren(
        comparisonView(state.comparison, {
          sampleUrl: (id, step) => controller.sampleUrl(id, step),
          onClose: () => {
            state.comparison = null;
            render();
          },
        }),
      );
      return;
    }
    renderList.call(this);
    const list = this.body.querySelector(".paco-jobs-list");
    if (list) decorateList(this, list);
  };

  function decorateList(panel, list) {
    for (const row of list.querySelectorAll(".paco-job-row[data-job-id]")) {
      const id = row.dataset.jobId;
      const position = state.positions[id];
      if (position) {
        row.querySelector(".paco-status")?.append(` #${position}`);
        row.dataset.position = position;
      }
      if (state.compareMode) row.classList.toggle("paco-selected", state.selected.has(id));
    }
    list.addEventListener(
      "click",
      (event) => {
        if (!state.compareMode) return;
        const row = event.target.closest?.(".paco-job-row[data-job-id]");
        if (!row) return;
        event.stopPropagation(); // in compare mode a click selects instead of opening
        const id = row.dataset.jobId;
        if (state.selected.has(id)) state.selected.delete(id);
        else state.selected.add(id);
        render();
      },
      true,
    );
    const count = state.selected.size;
    const bar = h(
      "div",
      { className: "paco-list-tools" },
      state.compareMode
        ? [
            h("span", { className: "paco-note" }, count < 2 ? "Pick two or more jobs" : `${count} jobs picked`),
            h("button", { className: "paco-compare-go paco-primary", disabled: count < 2, onclick: () => compare() }, "Compare"),
            h("button", { onclick: () => { state.compareMode = false; state.selected.clear(); render(); } }, "Done"),
          ]
        : h("button", { className: "paco-compare-mode", title: "Overlay the curves and samples of two or more jobs",
            onclick: () => { state.compareMode = true; render(); } }, "Compare…"), // prettier-ignore
      notificationPermission() === "default"
        ? h("button", { className: "paco-notify", title: "Tell me when a job ends while this tab is in the background",
            onclick: async () => { await askPermission(); render(); } }, "Notify me") // prettier-ignore
        : null,
    );
    list.prepend(bar);
  }

  async function compare() {
    const ids = [...state.selected];
    try {
      state.comparison = await call("GET", `/paco/job-compare?ids=${ids.map(encodeURIComponent).join(",")}`);
    } catch (error) {
      toast("error", "Could not compare the jobs", error.message);
    }
    render();
  }

  const renderJob = JobsPanel.prototype.renderJob;
  JobsPanel.prototype.renderJob = function (record) {
    renderJob.call(this, record);
    const view = this.body.querySelector(".paco-job-view");
    const actions = view?.querySelector(".paco-actions");
    if (!actions) return;
    const scroll = this.body.scrollTop;
    actions.after(jobTools(this, record));
    const prompts = state.perJob.get(record.id)?.prompts;
    const sample = view.querySelector(".paco-sample");
    if (prompts && sample) sample.after(promptTable(prompts));
    this.body.scrollTop = scroll;
  };

  function inputsOf(record) {
    if (!state.inputs.has(record.id)) {
      const prompt = h("textarea", { className: "paco-sample-prompt", rows: 2,
        placeholder: "a prompt to sample (empty: the held-out prompts)" }); // prettier-ignore
      const iterations = h("input", { className: "paco-continue-iterations", type: "number", min: 1, step: 1,
        value: Math.max(1, record.total || 100), title: "how many more iterations" }); // prettier-ignore
      const from = h("select", { className: "paco-continue-from" },
        h("option", { value: "last" }, "from the last checkpoint"),
        h("option", { value: "best" }, "from the best held-out checkpoint")); // prettier-ignore
      state.inputs.set(record.id, { prompt, iterations, from });
    }
    return state.inputs.get(record.id);
  }

  function jobTools(panel, record) {
    const busy = controller.busy.has(record.id);
    const extras = state.perJob.get(record.id) ?? {};
    const tools = h("div", { className: "paco-tools" });
    const inputs = inputsOf(record);

    const lineage = extras.lineage?.lineage ?? [];
    const children = extras.lineage?.children ?? [];
    if (record.parent_id || children.length) {
      const parent = (lineage.length > 1 ? lineage[lineage.length - 2] : null) ?? controller.jobs.get(record.parent_id);
      tools.append(
        h(
          "div",
          { className: "paco-lineage paco-job-sub" },
          record.parent_id
            ? ["continues ", h("a", { href: "#", className: "paco-parent", onclick: (e) => { e.preventDefault(); panel.open(record.parent_id); } },
                parent?.name || record.parent_id), ` from step ${record.parent_step}`] // prettier-ignore
            : null,
          children.length
            ? [record.parent_id ? " · " : "", "continued by ",
                children.map((child, i) => [i ? ", " : "", h("a", { href: "#", onclick: (e) => { e.preventDefault(); panel.open(child.id); } },
                  child.name || child.id)])] // prettier-ignore
            : null,
        ),
      );
    }

    if (record.status === "running") {
      const requests = extras.requests ?? {};
      const pending = ["sample", "save"].filter((kind) => requests[kind]?.pending);
      tools.append(
        h("h4", {}, "Now"),
        inputs.prompt,
        h(
          "div",
          { className: "paco-actions" },
          h("button", { className: "paco-sample-now paco-primary", disabled: busy,
            title: "Sample at the next step boundary: the typed prompt, else the held-out prompts (the run's result does not change)",
            onclick: () => act(record.id, "ask for a sample", "POST", jobPath(record.id, "/sample"),
              inputs.prompt.value.trim() ? { prompt: inputs.prompt.value } : {},
              () => toast("info", "Sample requested", "at the next step boundary", 3000)) }, "Sample now"), // prettier-ignore
          h("button", { className: "paco-save-now", disabled: busy, title: "Save a checkpoint at the next step boundary",
            onclick: () => act(record.id, "ask for a checkpoint", "POST", jobPath(record.id, "/save"), {},
              () => toast("info", "Checkpoint requested", "at the next step boundary", 3000)) }, "Save now"), // prettier-ignore
        ),
      );
      if (pending.length) tools.append(h("div", { className: "paco-note paco-pending" }, `${pending.join(" and ")} requested: at the next step`));
      const done = requests.save?.done;
      if (done && !done.error) tools.append(h("div", { className: "paco-note paco-saved" }, `checkpoint saved at step ${done.step}`));
    }
    const sampled = extras.requests?.sample?.done;
    if (sampled?.path) {
      const url = api.apiURL(jobPath(record.id, `/requested-sample?at=${encodeURIComponent(sampled.done_at)}`));
      tools.append(
        h("div", { className: "paco-sample paco-requested-sample" },
          h("img", { src: url, alt: `requested sample of step ${sampled.step}`, "data-step": sampled.step }),
          h("div", { className: "paco-note" }, `sampled on request at step ${sampled.step}: ${(sampled.prompts ?? []).join(" · ").slice(0, 160)}`)), // prettier-ignore
      );
    } else if (sampled?.error) tools.append(h("div", { className: "paco-note paco-error" }, sampled.error));

    if (record.status === "queued" && state.positions[record.id]) {
      const position = state.positions[record.id];
      const move = (where) => act(record.id, "move the job", "POST", jobPath(record.id, "/move"), { where });
      tools.append(
        h("div", { className: "paco-queue paco-job-sub", "data-position": position }, `position ${position} in the ${record.device} queue`),
        h("div", { className: "paco-actions" },
          h("button", { className: "paco-move-front", disabled: busy || position === 1, onclick: () => move("front") }, "To front"),
          h("button", { className: "paco-move-up", disabled: busy || position === 1, onclick: () => move("up") }, "Up"),
          h("button", { className: "paco-move-down", disabled: busy, onclick: () => move("down") }, "Down")), // prettier-ignore
      );
    }

    if (record.status === "completed" || record.status === "stopped") {
      tools.append(
        h("h4", {}, "Continue training"),
        h("div", { className: "paco-continue-form" }, inputs.iterations, h("span", {}, "more iterations"), inputs.from),
        h("div", { className: "paco-actions" },
          h("button", { className: "paco-continue paco-primary", disabled: busy,
            title: "A new job that starts from this one's checkpoint; the curves join",
            onclick: () => act(record.id, "continue the job", "POST", jobPath(record.id, "/continue"),
              { iterations: Number.parseInt(inputs.iterations.value, 10), from: inputs.from.value },
              (child) => { controller.accept(child, false); toast("success", "Continued as a new job", `${child.name} (${child.id})`, 4000); panel.open(child.id); }) },
            "Continue")), // prettier-ignore
      );
    }
    return tools;
  }

  function promptTable(prompts) {
    const box = h("div", { className: "paco-prompts" }, h("h4", {}, "Prompts: mean ± spread, lowest first"));
    for (const [part, title] of [["train", "training"], ["eval", "held-out"]]) {
      const rows = (prompts[part] ?? []).slice(0, PROMPT_ROWS_SHOWN);
      if (!rows.length) continue;
      const names = Object.keys(rows[0].rewards ?? {});
      box.append(
        h("div", { className: "paco-table-scroll" }, h("table", { className: "paco-prompt-table", "data-part": part },
          h("tr", {}, h("th", {}, title), h("th", {}, "step"), names.map((name) => h("th", { title: name }, name.split(":").pop()))),
          rows.map((row) => h("tr", {},
            h("td", { title: row.prompt }, String(row.prompt ?? "").slice(0, 80)),
            h("td", {}, row.step),
            names.map((name) => h("td", {}, `${number(row.rewards?.[name]?.mean)} ± ${spread(row.rewards?.[name]?.std)}`)))))), // prettier-ignore
      );
    }
    if (box.childElementCount === 1) box.append(h("div", { className: "paco-note" }, "No rewards per prompt yet."));
    return box;
  }
}

const EXTRAS_CSS = `
.paco-tools textarea, .paco-tools input, .paco-tools select { font: inherit; color: var(--input-text, #ddd);
  background: var(--comfy-input-bg, #222); border: 1px solid var(--border-color, #4e4e4e); border-radius: 4px;
  padding: 3px 6px; box-sizing: border-box; }
.paco-tools textarea { width: 100%; resize: vertical; }
.paco-tools h4, .paco-compare h4, .paco-prompts h4 { margin: 14px 0 6px; font-size: 12px; font-weight: 600;
  color: var(--descrip-text, #999); text-transform: uppercase; letter-spacing: 0.04em; }
.paco-continue-form { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.paco-continue-iterations { width: 80px; }
.paco-continue-from { max-width: 100%; min-width: 0; } /* 1.27's sidebar is narrower than its options */
.paco-lineage a, .paco-tools a { color: var(--paco-accent); }
.paco-requested-sample { margin-top: 8px; }
.paco-list-tools { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin: 0 0 8px; }
.paco-job-row.paco-selected { outline: 2px solid var(--paco-accent); }
.paco-compare h3 { margin: 8px 0; font-size: 15px; }
.paco-compare-table, .paco-prompt-table { width: 100%; border-collapse: collapse; font-size: 11px; margin-bottom: 8px; }
.paco-compare-table th, .paco-compare-table td, .paco-prompt-table th, .paco-prompt-table td { text-align: left;
  padding: 2px 4px; border-bottom: 1px solid var(--border-color, #4e4e4e); overflow-wrap: break-word; }
.paco-compare-table th, .paco-prompt-table th { color: var(--descrip-text, #999); font-weight: 600; }
.paco-prompt-table td:first-child { width: 50%; min-width: 6em; }
.paco-compare-table td:first-child { min-width: 4.5em; }
/* a narrow sidebar (1.27's): the numbers wrap at their spaces, and a table that still does not
   fit scrolls by itself instead of widening the panel */
.paco-table-scroll { overflow-x: auto; max-width: 100%; }
.paco-compare-samples { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 8px; }
.paco-compare-sample { margin: 0; }
.paco-compare-sample img { width: 100%; display: block; border-radius: 4px; border: 1px solid var(--border-color, #4e4e4e); }
.paco-compare-sample figcaption { font-size: 11px; color: var(--descrip-text, #999); margin-top: 2px; }
`;

export function installExtrasStyle() {
  if (document.getElementById("paco-jobs-extras-style")) return;
  const style = document.createElement("style");
  style.id = "paco-jobs-extras-style";
  style.textContent = EXTRAS_CSS;
  document.head.append(style);
}

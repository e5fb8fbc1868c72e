// PaCo Jobs: a sidebar tab that follows the pack's training jobs (the /paco/jobs routes):
// the list with status, progress and time left; a job's reward curves, latest sample
// grid and log tail; Cancel / Resume / Delete; a button that puts a PaCo LoRA node with
// the job's best LoRA on the canvas. Live from the `paco.job` websocket event; while the
// tab is open it also polls every 5 s (never faster), in case an event was missed.
// A toast tells when a job completes or fails, whether the tab is open or not.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { ACTIVE, ENDED, bestLoraChoice, errorReason, rewardLines } from "./paco_jobs/format.js";
import { installStyle } from "./paco_jobs/style.js";
import { JobsPanel } from "./paco_jobs/view.js";
import { installExtras } from "./paco_jobs/extras.js";

const POLL_MS = 5000; // the fallback poll; the issue allows no faster loop
const DETAIL_MIN_MS = 1000; // at most one detail refresh a second, however fast the steps
const PACE_POINTS = 20; // steps remembered per job to estimate the time left
const LOG_LINES = 60;
const LORA_NODE = "PaCoLora";
const LORA_WIDGET = "lora_name";

function toast(severity, summary, detail, life = 8000) {
  const toasts = app.extensionManager?.toast;
  if (toasts?.add) toasts.add({ severity, summary, detail, life });
  else console.log(`[PaCo] ${summary}: ${detail}`);
}

class JobsController {
  constructor() {
    this.jobs = new Map();
    this.details = new Map();
    this.pace = new Map();
    this.busy = new Set();
    this.toasted = new Set();
    this.panel = null;
    this.lastSelected = null;
    this.loadError = null;
    this.pollTimer = null;
    this.detailState = new Map(); // id -> {running, again, last}
  }

  async request(method, path) {
    const response = await api.fetchApi(path, { method, cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) throw new Error(body?.error ?? `${method} ${path} answered HTTP ${response.status}`);
    return body;
  }

  paceOf(id) {
    return this.pace.get(id) ?? [];
  }

  /** Take a record from an event, a poll or an action; toast a job's end once. */
  accept(record, fromEvent) {
    if (!record?.id) return;
    const previous = this.jobs.get(record.id);
    const merged = { ...(previous ?? {}), ...record };
    this.jobs.set(record.id, merged);
    if (merged.status === "running" && Number.isFinite(merged.step)) {
      const points = this.pace.get(record.id) ?? [];
      if (!points.length || points[points.length - 1].step !== merged.step) {
        points.push({ t: Date.now(), step: merged.step });
        this.pace.set(record.id, points.slice(-PACE_POINTS));
      }
    } else if (merged.status !== "running") {
      this.pace.delete(record.id);
    }
    const changed = previous ? previous.status !== merged.status : fromEvent;
    const wasActive = previous ? ACTIVE.has(previous.status) : fromEvent;
    if (changed && wasActive && ENDED.has(merged.status)) this.announceEnd(merged);
  }

  announceEnd(record) {
    const key = `${record.id}:${record.status}:${record.execution_end_time ?? ""}`;
    if (this.toasted.has(key)) return;
    this.toasted.add(key);
    const name = record.name || record.id;
    if (record.status === "completed") {
      const lora = bestLoraChoice(record);
      toast("success", "PaCo job completed", `${name}: ${record.total ?? record.step ?? ""} steps${lora ? `; best LoRA ${lora}` : ""}`);
    } else if (record.status === "failed" || record.status === "interrupted") {
      toast("error", `PaCo job ${record.status}`, `${name}: ${errorReason(record) || "no reason recorded (see its log)"}`, 20000);
    } else if (record.status === "stopped") {
      toast("info", "PaCo job stopped", `${name} stopped at step ${record.step ?? 0}; Resume continues it.`, 5000);
    }
  }

  onEvent(record) {
    if (record?.status === "deleted") {
      this.forget(record.id);
      return;
    }
    this.accept(record, true);
    if (!this.panel?.isOpen) return;
    this.panel.render();
    if (this.panel.selected === record.id) this.refreshDetail(record.id);
  }

  forget(id) {
    this.jobs.delete(id);
    this.details.delete(id);
    this.pace.delete(id);
    if (this.panel?.isOpen) {
      if (this.panel.selected === id) this.panel.open(null);
      else this.panel.render();
    }
  }

  async refreshList() {
    try {
      const body = await this.request("GET", "/paco/jobs");
      const seen = new Set();
      for (const record of body.jobs ?? []) {
        seen.add(record.id);
        this.accept(record, false);
      }
      for (const id of [...this.jobs.keys()]) if (!seen.has(id)) this.jobs.delete(id);
      this.loadError = null;
    } catch (error) {
      this.loadError = error.message;
    }
    this.panel?.render();
  }

  /** Reload one job's record, curves, log and sample (throttled; coalesces bursts). */
  async refreshDetail(id, { force = false } = {}) {
    const state = this.detailState.get(id) ?? { running: false, again: false, last: 0 };
    this.detailState.set(id, state);
    if (state.running) {
      state.again = true;
      return;
    }
    const wait = force ? 0 : state.last + DETAIL_MIN_MS - Date.now();
    state.running = true;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    state.last = Date.now();
    try {
      const [record, metrics, log] = await Promise.all([
        this.request("GET", `/paco/jobs/${encodeURIComponent(id)}`),
        this.request("GET", `/paco/jobs/${encodeURIComponent(id)}/metrics`).catch(() => ({ series: {} })),
        this.request("GET", `/paco/jobs/${encodeURIComponent(id)}/log?lines=${LOG_LINES}`).catch(() => ({ lines: [] })),
      ]);
      const { progress, warnings, ...rest } = record;
      const runProgress = progress && "state" in progress ? progress : null;
      this.accept(runProgress ? rest : record, false);
      const previous = this.details.get(id) ?? {};
      const step = record.sample_step ?? null; // the step the latest grid shows (not the job's step)
      this.details.set(id, {
        progress: runProgress,
        warnings: warnings ?? runProgress?.warnings ?? [],
        lines: rewardLines(metrics?.series),
        log: log?.lines ?? [],
        sampleStep: step,
        sampleMissing: previous.sampleMissing,
        loaded: true,
      });
    } catch (error) {
      if (/HTTP 404/.test(error.message) || /no job/i.test(error.message)) this.jobs.delete(id);
    } finally {
      state.running = false;
    }
    if (this.panel?.isOpen) this.panel.render();
    if (state.again) {
      state.again = false;
      this.refreshDetail(id);
    }
  }

  refreshAll() {
    this.refreshList();
    if (this.panel?.selected) this.refreshDetail(this.panel.selected, { force: true });
  }

  stepSampleUrl(id, step) {
    return api.apiURL(`/paco/jobs/${encodeURIComponent(id)}/sample?step=${encodeURIComponent(step)}`);
  }

  sampleUrl(id, step) {
    // `at` only busts the cache (`step` would ask for that step's grid, which most steps lack)
    return api.apiURL(`/paco/jobs/${encodeURIComponent(id)}/sample?at=${encodeURIComponent(step)}`);
  }

  async act(id, what, method, path) {
    this.busy.add(id);
    this.panel?.render();
    try {
      const record = await this.request(method, path);
      if (record?.id) this.accept(record, false);
      return record;
    } catch (error) {
      toast("error", `Could not ${what} the job`, error.message);
      return null;
    } finally {
      this.busy.delete(id);
      this.panel?.render();
      if (this.panel?.selected === id) this.refreshDetail(id, { force: true });
    }
  }

  cancel(id) {
    return this.act(id, "cancel", "POST", `/paco/jobs/${encodeURIComponent(id)}/cancel`);
  }

  resume(id) {
    return this.act(id, "resume", "POST", `/paco/jobs/${encodeURIComponent(id)}/resume`);
  }

  async remove(id, withFiles) {
    this.busy.add(id);
    try {
      await this.request("DELETE", `/paco/jobs/${encodeURIComponent(id)}${withFiles ? "?files=1" : ""}`);
      const name = this.jobs.get(id)?.name || id;
      this.forget(id);
      toast("info", "PaCo job deleted", withFiles ? `${name} and its run folder` : name, 4000);
      this.panel?.open(null);
    } catch (error) {
      toast("error", "Could not delete the job", error.message);
    } finally {
      this.busy.delete(id);
      this.panel?.render();
    }
  }

  /** Put a PaCo LoRA node with the job's best LoRA in the middle of the visible canvas. The
   * node enters the graph with that LoRA already chosen: a combo keeps its first option
   * ("(none)") when given a value it does not list, so a LoRA the job exported after the page
   * loaded is fetched first (a refresh), and the node is made from the refreshed definition. */
  async addLoraNode(record) {
    const choice = bestLoraChoice(record);
    const LiteGraph = window.LiteGraph;
    let node = choice && LiteGraph?.createNode(LORA_NODE);
    if (!node) {
      toast("error", "Could not add a PaCo LoRA node", choice ? `the ${LORA_NODE} node is not loaded` : "the job has no LoRA yet");
      return null;
    }
    const loraWidget = () => node.widgets?.find((w) => w.name === LORA_WIDGET);
    const listed = () => Boolean(loraWidget()?.options?.values?.includes?.(choice));
    if (!listed()) {
      try {
        await app.refreshComboInNodes?.(); // the job may have exported it after the page loaded
        node = LiteGraph.createNode(LORA_NODE) ?? node; // made again: the refresh re-registered the node
      } catch (error) {
        console.warn("[PaCo] could not refresh the LoRA list", error);
      }
    }
    const known = listed();
    const widget = loraWidget();
    if (widget) {
      widget.value = choice;
      widget.callback?.(choice);
    }
    const canvas = app.canvas;
    const graph = canvas?.graph ?? app.graph;
    const ds = canvas?.ds;
    const element = canvas?.canvas;
    if (ds && element) {
      node.pos = [
        (element.clientWidth / 2) / ds.scale - ds.offset[0] - node.size[0] / 2,
        (element.clientHeight / 2) / ds.scale - ds.offset[1] - node.size[1] / 2,
      ];
    }
    graph.add(node);
    if (widget && widget.value !== choice) widget.value = choice; // set again should graph.add reset it
    canvas?.selectNode?.(node);
    graph.setDirtyCanvas?.(true, true);
    if (known) toast("success", "PaCo LoRA node added", choice, 4000);
    else toast("warn", "PaCo LoRA node added", `${choice} is not in models/loras yet; it appears once the job exports it (then press R to refresh).`);
    return node;
  }

  mount(element) {
    installStyle();
    this.panel = new JobsPanel(element, this);
    if (this.lastSelected && this.jobs.has(this.lastSelected)) this.panel.open(this.lastSelected);
    this.refreshList();
    clearInterval(this.pollTimer);
    this.pollTimer = setInterval(() => {
      if (!this.panel?.isOpen) return this.unmount();
      this.refreshList();
      if (this.panel.selected) this.refreshDetail(this.panel.selected);
    }, POLL_MS);
  }

  unmount() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
    this.lastSelected = this.panel?.selected ?? null;
    this.panel = null;
  }
}

const controller = new JobsController();
installExtras(controller, JobsPanel, { api, toast }); // sample/save now, continue, queue, compare, notifications

app.registerExtension({
  name: "PaCo.Jobs",
  async setup() {
    api.addEventListener("paco.job", (event) => controller.onEvent(event.detail));
    api.addEventListener("reconnected", () => controller.panel?.isOpen && controller.refreshAll());
    if (!app.extensionManager?.registerSidebarTab) {
      console.warn("[PaCo] this ComfyUI frontend has no sidebar tabs; the PaCo Jobs tab is not shown");
      return;
    }
    app.extensionManager.registerSidebarTab({
      id: "paco-jobs",
      icon: "pi pi-chart-line",
      title: "PaCo Jobs",
      tooltip: "PaCo training jobs: progress, reward curves, samples",
      type: "custom",
      render: (element) => controller.mount(element),
      destroy: () => controller.unmount(),
    });
    controller.refreshList(); // knows the statuses, so a job that ends later is announced once
  },
});

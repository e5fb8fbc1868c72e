// Compare runs: the list's "Compare" mode picks two or more jobs; the comparison overlays
// their training reward and held-out curves (one line per job) and shows their latest
// sample grids side by side, with the table `paco jobs compare` prints.

import { rewardChart } from "./chart.js";
import { h } from "./dom.js";

function number(value) {
  return Number.isFinite(value) ? Number(value.toPrecision(3)).toString() : "–";
}

/** The comparison element of a `/paco/job-compare` answer. */
export function comparisonView(answer, { sampleUrl, onClose }) {
  const curves = answer.curves ?? [];
  const rows = answer.rows ?? [];
  const metric = curves.find((c) => c.held_out_metric)?.held_out_metric ?? "held-out";
  const view = h("div", { className: "paco-compare", "data-jobs": rows.map((r) => r.id).join(",") });
  view.append(
    h("button", { className: "paco-back", onclick: onClose }, "← All jobs"),
    h("h3", {}, `Comparing ${rows.length} jobs`),
    rewardChart("Training reward (aggregated mean)", curves.map((c) => ({ name: c.name || c.id, points: c.train ?? [] }))),
    rewardChart(`Held-out (${metric})`, curves.map((c) => ({ name: c.name || c.id, points: c.held_out ?? [] })), { dots: true }),
  );
  const table = h(
    "table",
    { className: "paco-compare-table" },
    h("tr", {}, ["job", "step", "train", "held-out", "best (step)", "s/step"].map((t) => h("th", {}, t))),
    rows.map((row) =>
      h(
        "tr",
        { "data-job-id": row.id },
        h("td", { title: row.id }, row.name || row.id),
        h("td", {}, `${row.step}/${row.total}`),
        h("td", {}, number(row.train_reward)),
        h("td", {}, number(row.held_out)),
        h("td", {}, row.best_held_out == null ? "–" : `${number(row.best_held_out)} (${row.best_step})`),
        h("td", {}, number(row.s_per_step)),
      ),
    ),
  );
  view.append(h("h4", {}, "Side by side"), h("div", { className: "paco-table-scroll" }, table), h("h4", {}, "Latest samples"));
  const samples = h("div", { className: "paco-compare-samples" });
  for (const row of rows) {
    const cell = h("figure", { className: "paco-compare-sample", "data-job-id": row.id });
    if (row.sample) {
      const img = h("img", { src: sampleUrl(row.id, row.step), alt: `latest sample grid of ${row.name || row.id}` });
      img.addEventListener("error", () => img.replaceWith(h("div", { className: "paco-note" }, "No sample grid yet.")));
      cell.append(img);
    } else cell.append(h("div", { className: "paco-note" }, "No sample grid yet."));
    cell.append(h("figcaption", {}, row.name || row.id));
    samples.append(cell);
  }
  view.append(samples);
  return view;
}

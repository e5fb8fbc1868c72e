// Reward curves as SVG, drawn by the pack (no chart library): one line per reward, the
// step on x, the reward's mean on y. Colours come from the frontend's palette variables
// so the lines read on the light and the dark theme.

const SVG_NS = "http://www.w3.org/2000/svg";
export const LINE_COLORS = [
  "var(--p-blue-500, #3b82f6)",
  "var(--p-orange-500, #f97316)",
  "var(--p-green-500, #22c55e)",
  "var(--p-purple-500, #a855f7)",
  "var(--p-pink-500, #ec4899)",
  "var(--p-teal-500, #14b8a6)",
  "var(--p-red-500, #ef4444)",
  "var(--p-yellow-600, #ca8a04)",
];

const WIDTH = 320;
const HEIGHT = 150;
const MARGIN = { left: 40, right: 10, top: 8, bottom: 20 };
const MAX_DOTS = 40;

function svg(tag, attrs = {}, text) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, String(value));
  if (text != null) element.textContent = text;
  return element;
}

/** 3 significant digits, no exponent for the usual reward range. */
export function formatValue(value) {
  if (!Number.isFinite(value)) return "–";
  if (value !== 0 && Math.abs(value) < 0.001) return value.toExponential(1);
  return Number(value.toPrecision(3)).toString();
}

/** Labels for ``values`` with as few significant digits (3 to 8) as keep them apart:
 * close held-out means (0.2691, 0.2693, 0.2695) would all read "0.269" at 3 digits. */
export function distinctLabels(values) {
  for (let digits = 3; digits <= 8; digits += 1) {
    const labels = values.map((value) => {
      if (!Number.isFinite(value)) return "–";
      if (value !== 0 && Math.abs(value) < 0.001) return value.toExponential(digits - 2);
      return Number(value.toPrecision(digits)).toString();
    });
    if (new Set(labels).size === new Set(values).size) return labels;
  }
  return values.map(formatValue);
}

function extent(values) {
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (low === high) {
    const pad = Math.abs(low) * 0.1 || 0.5;
    low -= pad;
    high += pad;
  }
  return [low, high];
}

/** The SVG path of a line; a missing value (null, NaN) breaks the line. */
export function pathData(points, x, y) {
  let data = "";
  let pen = "M";
  for (const [step, value] of points) {
    if (!Number.isFinite(value)) {
      pen = "M";
      continue;
    }
    data += `${pen}${x(step).toFixed(1)},${y(value).toFixed(1)} `;
    pen = "L";
  }
  return data.trim();
}

/** A chart element: the SVG and a legend (name and latest value of each line). */
export function rewardChart(title, lines, { dots = false } = {}) {
  const figure = document.createElement("figure");
  figure.className = "paco-chart";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.append(caption);

  const finite = lines.flatMap((line) => line.points.filter((p) => Number.isFinite(p[1])));
  if (finite.length === 0) {
    const empty = document.createElement("div");
    empty.className = "paco-chart-empty";
    empty.textContent = "No values yet";
    figure.append(empty);
    return figure;
  }
  const [x0, x1] = finite.length > 1 ? extent(finite.map((p) => p[0])) : [finite[0][0] - 1, finite[0][0] + 1];
  const [y0, y1] = extent(finite.map((p) => p[1]));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (step) => MARGIN.left + ((step - x0) / (x1 - x0)) * plotW;
  const y = (value) => MARGIN.top + (1 - (value - y0) / (y1 - y0)) * plotH;

  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "paco-chart-svg",
    role: "img",
    "aria-label": title,
  });
  const ticks = [0, 0.5, 1].map((fractionUp) => y0 + fractionUp * (y1 - y0));
  const tickLabels = distinctLabels(ticks);
  ticks.forEach((value, index) => {
    const top = y(value);
    chart.append(
      svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: top, y2: top, class: "paco-grid" }),
      svg("text", { x: MARGIN.left - 4, y: top + 3, "text-anchor": "end", class: "paco-axis" }, tickLabels[index]),
    );
  });
  const stepLabels = finite.length > 1 ? [x0, x1] : [finite[0][0]];
  for (const step of stepLabels) {
    const anchor = step === x0 && stepLabels.length > 1 ? "start" : step === x1 ? "end" : "middle";
    chart.append(
      svg("text", { x: x(step), y: HEIGHT - 5, "text-anchor": anchor, class: "paco-axis" }, `step ${Math.round(step)}`),
    );
  }

  const legend = document.createElement("ul");
  legend.className = "paco-legend";
  lines.forEach((line, index) => {
    const color = LINE_COLORS[index % LINE_COLORS.length];
    const shown = line.points.filter((p) => Number.isFinite(p[1]));
    const group = svg("g", { class: "paco-line", "data-name": line.name, "data-points": shown.length });
    group.style.color = color;
    const data = pathData(line.points, x, y);
    if (data) group.append(svg("path", { d: data, fill: "none", stroke: "currentColor", "stroke-width": 1.6 }));
    if (dots || shown.length <= MAX_DOTS) {
      for (const [step, value] of shown) {
        group.append(svg("circle", { cx: x(step), cy: y(value), r: shown.length === 1 ? 3 : 2, fill: "currentColor" }));
      }
    }
    chart.append(group);

    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "paco-swatch";
    swatch.style.background = color;
    const latest = shown.length ? formatValue(shown[shown.length - 1][1]) : "–";
    item.append(swatch, document.createTextNode(`${line.name} ${latest}`));
    item.title = `${line.name}: latest ${latest} at step ${shown.length ? shown[shown.length - 1][0] : "–"}`;
    legend.append(item);
  });
  figure.append(chart, legend);
  return figure;
}

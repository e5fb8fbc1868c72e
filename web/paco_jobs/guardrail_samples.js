// Guardrail warnings in the job view: which check fired, and for the image checks the first
// evaluation's sample beside the sample that fired it (docs/guardrail.md). Pure DOM building:
// `h` is the view's element helper, `sampleUrl(step)` the URL of a step's sample grid.

const TITLES = {
  reward_gaming: "The LoRA may be gaming its reward",
  image_high_frequency: "Guardrail: noise in the samples",
  image_grid: "Guardrail: grid artefacts in the samples",
  image_sharpness: "Guardrail: the samples blur",
  image_saturation: "Guardrail: over-saturated samples",
};

export function guardrailTitle(code) {
  return TITLES[code] ?? "Warning";
}

export function guardrailSamples(h, warning, sampleUrl) {
  const steps = warning?.samples;
  if (!Array.isArray(steps) || steps.length !== 2 || !sampleUrl) return null;
  installGuardrailStyle();
  const [before, after] = steps;
  const figure = (step, label) =>
    h(
      "figure",
      { className: "paco-guardrail-sample" },
      h("img", { src: sampleUrl(step), alt: `${label}: sample grid of step ${step}`, loading: "lazy" }),
      h("figcaption", {}, `${label} · step ${step}`),
    );
  const action = warning.action ? h("div", { className: "paco-note" }, `Action: ${warning.action}`) : null;
  return h(
    "div",
    { className: "paco-guardrail-samples", "data-check": warning.check ?? "" },
    h("div", { className: "paco-guardrail-pair" }, figure(before, "first evaluation"), figure(after, "when it fired")),
    action,
  );
}

const STYLE = `
.paco-guardrail-pair { display: flex; gap: 6px; margin-top: 6px; }
.paco-guardrail-sample { flex: 1; margin: 0; }
.paco-guardrail-sample img { width: 100%; image-rendering: pixelated; border-radius: 4px; }
.paco-guardrail-sample figcaption { font-size: 11px; opacity: 0.8; }
`;

function installGuardrailStyle() {
  if (typeof document === "undefined" || document.getElementById("paco-guardrail-style")) return;
  const style = document.createElement("style");
  style.id = "paco-guardrail-style";
  style.textContent = STYLE;
  document.head.append(style);
}

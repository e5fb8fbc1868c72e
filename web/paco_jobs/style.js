// The sidebar's CSS, written with the frontend's theme variables (they change with the
// colour palette), each with a fallback for an older frontend.
//
// The frontends name their colours differently: 1.27 and 1.49 have PrimeVue's (--p-primary-color,
// --p-green-500, ...), 1.58 has its own (--primary, --color-success, --warning); the ComfyUI ones
// (--comfy-menu-bg, --fg-color, --error-text, ...) are in all three. The panel's own names below
// pick whichever the page has, so the rules after them use one name per role.

const CSS = `
.paco-jobs {
  --paco-accent: var(--p-primary-color, var(--primary, #60a5fa));
  --paco-good: var(--p-green-500, var(--color-success, #22c55e));
  --paco-warn: var(--p-orange-500, var(--warning, #f97316));
  --paco-bad: var(--error-text, #f44);
  --paco-radius: var(--p-border-radius-md, 6px);
}
.paco-jobs { display: flex; flex-direction: column; height: 100%; overflow: hidden;
  color: var(--fg-color, #ddd); font-size: 13px; background: var(--comfy-menu-bg, #171718); }
.paco-jobs button { font: inherit; color: var(--fg-color, #ddd); background: var(--comfy-input-bg, #222);
  border: 1px solid var(--border-color, #4e4e4e); border-radius: var(--paco-radius);
  padding: 3px 10px; cursor: pointer; }
.paco-jobs button:hover:not(:disabled) { border-color: var(--paco-accent); }
.paco-jobs button:disabled { opacity: 0.45; cursor: default; }
.paco-jobs button.paco-danger { color: var(--paco-bad); }
.paco-jobs button.paco-primary { border-color: var(--paco-accent); }
.paco-jobs-header { display: flex; align-items: center; justify-content: space-between; gap: 8px;
  padding: 10px 12px; border-bottom: 1px solid var(--border-color, #4e4e4e); }
.paco-jobs-header h3 { margin: 0; font-size: 13px; font-weight: 600; letter-spacing: 0.04em;
  text-transform: uppercase; }
.paco-jobs-body { flex: 1; overflow-y: auto; padding: 8px 12px 16px; }
.paco-jobs-empty { color: var(--descrip-text, #999); padding: 16px 0; line-height: 1.5; }
.paco-jobs-empty code { font-size: 12px; }
.paco-job-row { display: block; width: 100%; text-align: left; margin: 0 0 8px; padding: 8px 10px !important;
  background: var(--comfy-menu-secondary-bg, #303030) !important; }
.paco-job-row-top { display: flex; align-items: center; justify-content: space-between; gap: 6px; }
.paco-job-name { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.paco-job-sub { color: var(--descrip-text, #999); font-size: 12px; margin-top: 4px; overflow-wrap: anywhere; }
.paco-job-sub.paco-error { color: var(--paco-bad); }
.paco-status { flex: none; font-size: 11px; padding: 1px 7px; border-radius: 10px; border: 1px solid currentColor; }
.paco-tone-active { color: var(--paco-accent); }
.paco-tone-good { color: var(--paco-good); }
.paco-tone-bad { color: var(--paco-bad); }
.paco-tone-warn { color: var(--paco-warn); }
.paco-tone-muted { color: var(--descrip-text, #999); }
.paco-progress { height: 6px; margin-top: 6px; border-radius: 3px; overflow: hidden;
  background: var(--comfy-input-bg, #222); border: 1px solid var(--border-color, #4e4e4e); }
.paco-progress > div { height: 100%; background: var(--paco-accent); transition: width 0.4s; }
.paco-progress.paco-tone-good > div { background: var(--paco-good); }
.paco-progress.paco-tone-bad > div { background: var(--paco-bad); }
.paco-progress.paco-tone-muted > div, .paco-progress.paco-tone-warn > div { background: var(--descrip-text, #999); }
.paco-job-view h4 { margin: 14px 0 6px; font-size: 12px; font-weight: 600; color: var(--descrip-text, #999);
  text-transform: uppercase; letter-spacing: 0.04em; }
.paco-job-title { display: flex; align-items: center; justify-content: space-between; gap: 8px; margin: 4px 0; }
.paco-job-title h3 { margin: 0; font-size: 15px; overflow-wrap: anywhere; }
.paco-job-id { color: var(--descrip-text, #999); font-size: 11px; }
.paco-actions { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 10px; }
.paco-banner { margin-top: 10px; padding: 8px 10px; border-radius: var(--paco-radius); line-height: 1.4;
  border: 1px solid var(--paco-warn);
  background: color-mix(in srgb, var(--paco-warn) 14%, transparent); }
.paco-banner strong { display: block; color: var(--paco-warn); }
.paco-banner.paco-error { border-color: var(--paco-bad);
  background: color-mix(in srgb, var(--paco-bad) 12%, transparent); }
.paco-banner.paco-error strong { color: var(--paco-bad); }
.paco-confirm { margin-top: 10px; padding: 8px 10px; border: 1px solid var(--paco-bad);
  border-radius: var(--paco-radius); }
.paco-confirm label { display: flex; gap: 6px; align-items: center; margin: 6px 0; }
.paco-chart { margin: 0 0 10px; }
.paco-chart figcaption { font-size: 12px; margin-bottom: 2px; overflow-wrap: anywhere; }
.paco-chart-svg { width: 100%; height: auto; display: block; background: var(--comfy-menu-secondary-bg, #303030);
  border: 1px solid var(--border-color, #4e4e4e); border-radius: 4px; }
.paco-chart-svg .paco-grid { stroke: var(--border-color, #4e4e4e); stroke-width: 0.6; stroke-dasharray: 3 3; }
.paco-chart-svg .paco-axis { fill: var(--descrip-text, #999); font-size: 9px; font-family: sans-serif; }
.paco-chart-empty { color: var(--descrip-text, #999); font-size: 12px; padding: 10px;
  border: 1px dashed var(--border-color, #4e4e4e); border-radius: 4px; }
.paco-legend { list-style: none; margin: 4px 0 0; padding: 0; display: flex; flex-wrap: wrap; gap: 2px 12px;
  font-size: 11px; color: var(--descrip-text, #999); }
.paco-legend li { display: flex; align-items: center; gap: 4px; }
.paco-swatch { width: 10px; height: 3px; border-radius: 1px; display: inline-block; }
.paco-sample img { width: 100%; display: block; border-radius: 4px; border: 1px solid var(--border-color, #4e4e4e);
  image-rendering: auto; }
.paco-sample .paco-note, .paco-note { color: var(--descrip-text, #999); font-size: 12px; }
.paco-log { margin: 0; max-height: 220px; overflow: auto; padding: 6px 8px; font-size: 11px; line-height: 1.35;
  white-space: pre-wrap; overflow-wrap: anywhere; background: var(--comfy-input-bg, #222);
  color: var(--input-text, #ddd); border: 1px solid var(--border-color, #4e4e4e); border-radius: 4px;
  font-family: var(--font-mono, monospace); }
`;

export function installStyle() {
  if (document.getElementById("paco-jobs-style")) return;
  const style = document.createElement("style");
  style.id = "paco-jobs-style";
  style.textContent = CSS;
  document.head.append(style);
}

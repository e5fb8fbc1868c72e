// The one DOM builder of the PaCo Jobs sidebar's modules (view.js, compare.js, extras.js).

/** `h("div", {className: "x", onclick: f}, child, ...)`: an element with its attributes, listeners and children. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "className") element.className = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  element.append(...children.flat().filter((child) => child != null && child !== false));
  return element;
}

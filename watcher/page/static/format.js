// The status page's small pieces: DOM building (text only, never HTML), names, sizes and times.
// A module of page.js; the CSP allows scripts from the agent itself only.

const MEDIA_URL = /^\/(thumbnail|video)\?[^\s]*$/; // the two routes the agent serves files on

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function append(parent, ...children) {
  for (const child of children) if (child) parent.appendChild(child);
  return parent;
}

export function mediaUrl(url) {
  // Relative to the page, so that it works behind a reverse proxy's path prefix too.
  return typeof url === "string" && MEDIA_URL.test(url) ? "." + url : null;
}

export function baseName(path) {
  const text = String(path);
  const cut = text.replace(/\/+$/, "").lastIndexOf("/");
  return cut >= 0 ? text.slice(cut + 1) : text;
}

export function dirName(path) {
  const text = String(path);
  const cut = text.lastIndexOf("/");
  return cut > 0 ? text.slice(0, cut) : "";
}

export function joinPath(folder, file) {
  return String(folder).replace(/\/+$/, "") + "/" + String(file);
}

export function shellQuote(text) {
  const s = String(text);
  return /^[\w@%+=:,./-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
}

export function bytes(n) {
  const value = Number(n) || 0;
  if (value < 1000) return value + " B";
  const units = ["kB", "MB", "GB", "TB"];
  let scaled = value;
  let unit = -1;
  while (scaled >= 1000 && unit < units.length - 1) {
    scaled /= 1000;
    unit += 1;
  }
  return scaled.toFixed(scaled < 10 ? 1 : 0) + " " + units[unit];
}

export function parseTime(iso) {
  if (typeof iso !== "string") return null;
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? null : when;
}

export function clock(when) {
  const now = new Date();
  const time = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (when.toDateString() === now.toDateString()) return time;
  return when.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + time;
}

export function relative(when) {
  const seconds = Math.round((when.getTime() - Date.now()) / 1000);
  const size = Math.abs(seconds);
  let text;
  if (size < 5) return "now";
  if (size < 90) text = size + " s";
  else if (size < 90 * 60) text = Math.round(size / 60) + " min";
  else if (size < 36 * 3600) text = Math.round(size / 3600) + " h";
  else text = Math.round(size / 86400) + " days";
  return seconds > 0 ? "in " + text : text + " ago";
}

export function timeText(iso) {
  const when = parseTime(iso);
  return when ? clock(when) + " (" + relative(when) + ")" : "unknown";
}

export function accountName(account) {
  return account === null || account === undefined || account === "" || account === "default"
    ? "the token's only account"
    : "account " + account;
}

export function count(number, one, many) {
  return number + " " + (number === 1 ? one : many);
}

export function bar(value, max, label) {
  const progress = el("progress", "bar");
  progress.max = Math.max(1, Number(max) || 0);
  progress.value = Math.min(progress.max, Math.max(0, Number(value) || 0));
  progress.setAttribute("aria-label", label);
  return progress;
}

export function pathBlock(path, className) {
  const block = el("div", className || "path");
  append(block, el("span", "name", baseName(path)));
  const dir = dirName(path);
  if (dir) append(block, el("span", "dir", dir));
  return block;
}

// Small DOM helpers. Everything from the swarm (transcripts, titles, file names) is set as text,
// never parsed as HTML: an agent's output must not be able to script the dashboard.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export const fmt = {
  int: (n) => Math.round(n || 0).toLocaleString("en-US"),
  usd: (n) => {
    const v = n || 0;
    return v === 0 ? "$0" : v < 0.01 ? `$${v.toFixed(4)}` : `$${v.toFixed(2)}`;
  },
  tokens: (n) => {
    const v = n || 0;
    if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
    if (v >= 1e4) return `${Math.round(v / 1e3)}k`;
    return v.toLocaleString("en-US");
  },
  time: (ts) => (ts ? new Date(ts * 1000).toLocaleTimeString() : "–"),
  ago: (ts) => {
    if (!ts) return "";
    const s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 60) return `${Math.round(s)}s ago`;
    if (s < 3600) return `${Math.round(s / 60)}m ago`;
    if (s < 86400) return `${Math.round(s / 3600)}h ago`;
    return `${Math.round(s / 86400)}d ago`;
  },
  clip: (text, n) => (text && text.length > n ? `${text.slice(0, n)}…` : text || ""),
};

// Call fn at most once per `ms`, always with the latest call honoured (trailing edge). The first call runs at
// once: performance.now() starts at the page's load, so `last = 0` held every panel's first drawing back until
// the page was `ms` old (the task board came up empty beside a banner already drawn).
export function throttle(fn, ms) {
  let timer = null;
  let last = -Infinity;
  return (...args) => {
    const wait = last + ms - performance.now();
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      last = performance.now();
      fn(...args);
    }, Math.max(0, wait));
  };
}

export async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = (body && body.error) || `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

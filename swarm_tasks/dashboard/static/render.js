// Drawing the graph on two stacked canvases: the scene (links and nodes) is redrawn only when the
// layout, the view or an agent changed; the overlay above it (selection, hover, activity halos,
// labels) holds a few shapes and is redrawn freely. Nodes are batched into one path per role and
// status style, so thousands of nodes cost a handful of fills. Coordinates are computed in device
// pixels, so line widths stay one pixel whatever the zoom.

const BG = "#0b1020";
const LINK = "rgba(148, 163, 184, 0.26)";
const TAU = 2 * Math.PI;

// Roles are told apart by fill, states by the ring around it, and the two palettes share no colour (nor a
// near one): role fills are blues, greens, violets and greys; rings are white, yellow, red and orange.
// (A reviewer once filled amber looked "waiting", a sub-reviewer filled orange "stopped".)
export const ROLE_COLOURS = {
  planner: "#a78bfa", worker: "#60a5fa", judge: "#c084fc", resolver: "#34d399", scanner: "#94a3b8",
  reviewer: "#2dd4bf", subreviewer: "#818cf8", agent: "#22d3ee",
};
const PALETTE = ["#4e79a7", "#59a14f", "#76b7b2", "#b07aa1", "#9c755f", "#8cd17d", "#d4a6c8", "#6b8ec9",
  "#5fb3a1", "#a3a3c2", "#7aa6c2", "#9f8fd6"];
export const STATUS_RING = {
  queued: null, ready: null, running: "#ffffff", waiting: "#facc15", done: null, failed: "#ef4444",
  stopped: "#f97316", cancelled: "#78716c",
};
const DIMMED = 0.12; // nodes a search or filter leaves out stay in place, barely visible
const FADED = new Set(["done", "cancelled"]);

export function roleColour(role) {
  if (ROLE_COLOURS[role]) return ROLE_COLOURS[role];
  let hash = 0;
  for (const ch of role || "") hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

export class Renderer {
  constructor(scene, overlay) {
    this.scene = scene;
    this.overlay = overlay;
    this.sctx = scene.getContext("2d", { alpha: false });
    this.octx = overlay.getContext("2d");
  }

  resize(width, height, dpr) {
    for (const c of [this.scene, this.overlay]) {
      c.width = Math.round(width * dpr);
      c.height = Math.round(height * dpr);
      c.style.width = `${width}px`;
      c.style.height = `${height}px`;
    }
    this.width = width;
    this.height = height;
    this.dpr = dpr;
  }

  drawScene(nodes, links, view, match = null) {
    const { sctx: ctx, dpr } = this;
    const w = this.scene.width;
    const h = this.scene.height;
    const k = view.k * dpr;
    const ox = view.x * dpr;
    const oy = view.y * dpr;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = BG;
    ctx.fillRect(0, 0, w, h);

    ctx.beginPath();
    for (const l of links) {
      ctx.moveTo(ox + l.source.x * k, oy + l.source.y * k);
      ctx.lineTo(ox + l.target.x * k, oy + l.target.y * k);
    }
    ctx.strokeStyle = LINK;
    ctx.lineWidth = dpr;
    ctx.stroke();

    // One path per (role, fill style) and one per ring colour: a handful of fills for any number of nodes.
    const fills = new Map();
    const rings = new Map();
    const ringWidth = 1.5 * dpr;
    for (const n of nodes) {
      const x = ox + n.x * k;
      const y = oy + n.y * k;
      const r = Math.max(1, n.r * k);
      if (x < -r - 4 || y < -r - 4 || x > w + r + 4 || y > h + r + 4) continue; // off screen
      const out = match && !match(n);
      const key = `${n.role}|${out ? 3 : FADED.has(n.status) ? 1 : n.status === "queued" ? 2 : 0}`;
      let path = fills.get(key);
      if (!path) fills.set(key, (path = new Path2D()));
      if (r < 1.5) {
        path.rect(x - r, y - r, 2 * r, 2 * r); // a dot this small needs no curve
        continue;
      }
      path.moveTo(x + r, y);
      path.arc(x, y, r, 0, TAU);
      const ring = out ? null : STATUS_RING[n.status];
      if (ring) {
        let rp = rings.get(ring);
        if (!rp) rings.set(ring, (rp = new Path2D()));
        rp.moveTo(x + r + ringWidth, y);
        rp.arc(x, y, r + ringWidth, 0, TAU);
      }
    }
    for (const [key, path] of fills) {
      const [role, style] = key.split("|");
      const colour = roleColour(role);
      if (style === "2") {
        ctx.fillStyle = BG;
        ctx.fill(path);
        ctx.strokeStyle = colour;
        ctx.lineWidth = ringWidth;
        ctx.stroke(path);
      } else {
        ctx.globalAlpha = style === "3" ? DIMMED : style === "1" ? 0.5 : 1;
        ctx.fillStyle = colour;
        ctx.fill(path);
        ctx.globalAlpha = 1;
      }
    }
    for (const [colour, path] of rings) {
      ctx.strokeStyle = colour;
      ctx.lineWidth = colour === STATUS_RING.failed ? 2 * ringWidth : ringWidth;
      ctx.stroke(path);
    }
  }

  drawOverlay({ view, selected, hovered, activity, byId, labelled, now }) {
    const { octx: ctx, dpr } = this;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    ctx.setTransform(dpr * view.k, 0, 0, dpr * view.k, dpr * view.x, dpr * view.y);
    const px = 1 / view.k; // one screen pixel in graph units
    let live = false;
    for (const [id, at] of activity) {
      const age = (now - at) / 1500;
      const n = byId.get(id);
      if (age >= 1 || !n || n.x === undefined) {
        activity.delete(id);
        continue;
      }
      live = true;
      ctx.beginPath();
      ctx.arc(n.x, n.y, n.r + (4 + 10 * age) * px, 0, TAU);
      ctx.strokeStyle = `rgba(255, 255, 255, ${0.7 * (1 - age)})`;
      ctx.lineWidth = 2 * px;
      ctx.stroke();
    }
    for (const n of [selected, hovered]) {
      if (!n || n.x === undefined) continue;
      ctx.beginPath();
      ctx.arc(n.x, n.y, n.r + 4 * px, 0, TAU);
      ctx.strokeStyle = n === selected ? "#facc15" : "rgba(250, 204, 21, 0.6)";
      ctx.lineWidth = 2.5 * px;
      ctx.stroke();
    }
    ctx.font = `${11 * px}px ui-sans-serif, system-ui, sans-serif`;
    ctx.textBaseline = "middle";
    this.labels = []; // what this frame wrote beside nodes (a canvas keeps no text to read back)
    for (const n of labelled) {
      if (!n || n.x === undefined) continue;
      const focus = n === hovered || n === selected;
      ctx.fillStyle = n === selected ? "#fde68a" : "rgba(226, 232, 240, 0.85)";
      const name = n.label ? `${n.spec} · ${n.label}` : n.spec; // which file or task, not only which kind
      const text = focus ? `${name} · ${n.status}` : name;
      ctx.fillText(text, n.x + n.r + 4 * px, n.y);
      this.labels.push({ id: n.id, text, selected: n === selected });
    }
    return live; // halos still fading: draw again next frame
  }
}

// The agent tree as a force-directed graph drawn on a canvas (d3-force for the layout).
//
// Why it stays smooth with thousands of agents: it draws on a canvas in a few batched paths (one per
// role and one per status ring, not one per node); the simulation is stepped by our own animation
// loop, one tick per frame, and only while it is warm; new agents are queued and added in batches
// once per frame, placed beside their parent so the layout only has to settle locally; a status
// change only recolours and never reheats the layout.

const d3 = window.d3;

const ROLE_COLOURS = {
  planner: "#a78bfa", worker: "#60a5fa", judge: "#f472b6", resolver: "#34d399", scanner: "#94a3b8",
  reviewer: "#fbbf24", subreviewer: "#fb923c", agent: "#22d3ee",
};
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#bab0ac", "#8cd17d", "#d4a6c8"];
export const STATUS_RING = {
  queued: null, ready: "#e2e8f0", running: "#ffffff", waiting: "#fbbf24", done: null, failed: "#ef4444",
  stopped: "#f97316", cancelled: null,
};
const FADED = new Set(["done", "cancelled"]);
const MAX_ADD_PER_FRAME = 400;
const COLLIDE_MAX = 1500;

export function roleColour(role) {
  if (ROLE_COLOURS[role]) return ROLE_COLOURS[role];
  let hash = 0;
  for (const ch of role || "") hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

function radius(node) {
  const size = node.cost_usd > 0 ? node.cost_usd * 20000 : node.tokens || 0; // a cent weighs like 200 tokens
  return 3.5 + Math.min(9, 1.3 * Math.log2(1 + size / 400)) + (node.depth === 0 ? 2.5 : 0);
}

export class GraphView {
  constructor(canvas, { onSelect, onHover } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.onSelect = onSelect || (() => {});
    this.onHover = onHover || (() => {});
    this.nodes = [];
    this.byId = new Map();
    this.links = [];
    this.pending = [];
    this.orphans = new Map(); // parent id -> children seen before it
    this.activity = new Map(); // node id -> time of its latest turn, for a brief halo
    this.selected = null;
    this.hovered = null;
    this.view = { x: 0, y: 0, k: 1 };
    this.userMoved = false;
    this.dirty = true;
    this.frameTimes = [];
    this.lastFrame = 0;
    this.insetRight = 0; // pixels on the right covered by the agent panel
    this.linkForce = d3.forceLink([]).id((d) => d.id).distance((l) => l.source.r + l.target.r + 10)
      .strength(0.8);
    // Collisions keep small trees legible; past COLLIDE_MAX nodes the charge alone spaces them (cheaper).
    this.collide = d3.forceCollide((d) => d.r + 2).strength(0.8);
    this.simulation = d3.forceSimulation([])
      .force("link", this.linkForce)
      .force("charge", d3.forceManyBody().strength(-22).theta(0.95).distanceMax(260))
      .force("x", d3.forceX(0).strength(0.015))
      .force("y", d3.forceY(0).strength(0.015))
      .alphaDecay(0.03)
      .velocityDecay(0.45)
      .stop(); // stepped by our frame loop, never by d3's own timer
    this.resize();
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement);
    this.bindInput();
    requestAnimationFrame((t) => this.frame(t));
  }

  // -- data --------------------------------------------------------------------------------------
  reset() {
    this.nodes = [];
    this.byId.clear();
    this.links = [];
    this.pending = [];
    this.orphans.clear();
    this.activity.clear();
    this.selected = null;
    this.hovered = null;
    this.userMoved = false;
    this.simulation.nodes([]);
    this.linkForce.links([]);
    this.dirty = true;
  }

  // An agent the graph has not seen (from the snapshot or an event); drawn from the next frame on.
  add(agent) {
    if (this.byId.has(agent.id)) return;
    const node = { ...agent, r: 0 };
    node.r = radius(node);
    this.byId.set(node.id, node);
    this.pending.push(node);
  }

  update(agent) {
    const node = this.byId.get(agent.id);
    if (!node) return this.add(agent);
    node.status = agent.status;
    node.tokens = agent.tokens;
    node.cost_usd = agent.cost_usd;
    node.turn = agent.turn;
    node.r = radius(node);
    this.dirty = true;
  }

  pulse(id) {
    if (this.byId.has(id)) {
      this.activity.set(id, performance.now());
      this.dirty = true;
    }
  }

  // Place a big first snapshot as a radial tree, so the simulation starts near its rest state.
  seedRadial(agents) {
    const children = new Map();
    const roots = [];
    for (const a of agents) {
      if (a.parent && agents.has(a.parent)) {
        if (!children.has(a.parent)) children.set(a.parent, []);
        children.get(a.parent).push(a.id);
      } else roots.push(a.id);
    }
    const leaves = new Map();
    const countLeaves = (id) => {
      const kids = children.get(id) || [];
      const n = kids.length ? kids.reduce((s, k) => s + countLeaves(k), 0) : 1;
      leaves.set(id, n);
      return n;
    };
    let total = 0;
    for (const r of roots) total += countLeaves(r);
    const place = (id, depth, from, span) => {
      const a = agents.get(id);
      const angle = from + span / 2;
      const rad = depth === 0 && roots.length === 1 ? 0 : 40 + depth * 70;
      a.x = Math.cos(angle) * rad + (Math.random() - 0.5) * 4;
      a.y = Math.sin(angle) * rad + (Math.random() - 0.5) * 4;
      let at = from;
      for (const k of children.get(id) || []) {
        const share = (span * leaves.get(k)) / leaves.get(id);
        place(k, depth + 1, at, share);
        at += share;
      }
    };
    let at = 0;
    for (const r of roots) {
      const share = (2 * Math.PI * leaves.get(r)) / total;
      place(r, 0, at, share);
      at += share;
    }
  }

  flush() {
    if (!this.pending.length) return false;
    const batch = this.pending.splice(0, MAX_ADD_PER_FRAME);
    for (const node of batch) {
      const parent = node.parent ? this.byId.get(node.parent) : null;
      if (node.x === undefined) {
        if (parent && parent.x !== undefined) {
          // Just outside the parent, away from the centre: the tree grows outwards.
          const out = Math.atan2(parent.y, parent.x) + (Math.random() - 0.5) * 1.6;
          node.x = parent.x + Math.cos(out) * 18;
          node.y = parent.y + Math.sin(out) * 18;
        } else {
          node.x = (Math.random() - 0.5) * 40;
          node.y = (Math.random() - 0.5) * 40;
        }
      }
      this.nodes.push(node);
      if (parent && parent.index !== undefined) { // the parent is drawn already
        this.links.push({ source: parent, target: node });
      } else if (node.parent) {
        if (!this.orphans.has(node.parent)) this.orphans.set(node.parent, []);
        this.orphans.get(node.parent).push(node);
      }
      for (const child of this.orphans.get(node.id) || []) this.links.push({ source: node, target: child });
      this.orphans.delete(node.id);
      node.index = this.nodes.length - 1;
    }
    this.simulation.force("collide", this.nodes.length <= COLLIDE_MAX ? this.collide : null);
    this.simulation.nodes(this.nodes);
    this.linkForce.links(this.links);
    // Reheat gently: enough to make room for the newcomers, not enough to shake a big settled tree.
    const heat = this.nodes.length > 2000 ? 0.12 : 0.35;
    this.simulation.alpha(Math.max(this.simulation.alpha(), heat));
    this.dirty = true;
    return true;
  }

  // -- the frame loop ------------------------------------------------------------------------------
  frame(t) {
    if (this.lastFrame) {
      this.frameTimes.push(t - this.lastFrame);
      if (this.frameTimes.length > 600) this.frameTimes.splice(0, this.frameTimes.length - 600);
    }
    this.lastFrame = t;
    this.flush();
    if (this.simulation.alpha() > this.simulation.alphaMin()) {
      this.simulation.tick();
      if (!this.userMoved) this.fit(0.15);
      this.dirty = true;
    }
    if (this.activity.size) this.dirty = true;
    if (this.dirty) this.draw(t);
    requestAnimationFrame((next) => this.frame(next));
  }

  frameStats() {
    const xs = [...this.frameTimes].sort((a, b) => a - b);
    const q = (p) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] : 0);
    return { frames: xs.length, median: q(0.5), p95: q(0.95), max: xs.length ? xs[xs.length - 1] : 0 };
  }

  resize() {
    const rect = this.canvas.parentElement.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.width = Math.max(1, rect.width);
    this.height = Math.max(1, rect.height);
    this.canvas.width = Math.round(this.width * dpr);
    this.canvas.height = Math.round(this.height * dpr);
    this.canvas.style.width = `${this.width}px`;
    this.canvas.style.height = `${this.height}px`;
    this.dpr = dpr;
    this.dirty = true;
  }

  // Ease the view towards one that shows every node.
  fit(ease = 1) {
    if (!this.nodes.length) return;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of this.nodes) {
      if (n.x < x0) x0 = n.x;
      if (n.x > x1) x1 = n.x;
      if (n.y < y0) y0 = n.y;
      if (n.y > y1) y1 = n.y;
    }
    const pad = 40;
    const width = Math.max(200, this.width - this.insetRight);
    const k = Math.min(1.8, (width - 2 * pad) / Math.max(1, x1 - x0), (this.height - 2 * pad) / Math.max(1, y1 - y0));
    const x = width / 2 - k * (x0 + x1) / 2;
    const y = this.height / 2 - k * (y0 + y1) / 2;
    const v = this.view;
    v.k += (k - v.k) * ease;
    v.x += (x - v.x) * ease;
    v.y += (y - v.y) * ease;
    this.dirty = true;
  }

  draw(now) {
    const { ctx, view, dpr } = this;
    this.dirty = false;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#0b1020";
    ctx.fillRect(0, 0, this.width, this.height);
    ctx.setTransform(dpr * view.k, 0, 0, dpr * view.k, dpr * view.x, dpr * view.y);
    const px = 1 / view.k; // one screen pixel in graph units

    ctx.beginPath();
    for (const l of this.links) {
      ctx.moveTo(l.source.x, l.source.y);
      ctx.lineTo(l.target.x, l.target.y);
    }
    ctx.strokeStyle = "rgba(148, 163, 184, 0.28)";
    ctx.lineWidth = px;
    ctx.stroke();

    // Batch nodes into one path per (role, faded) and one per status ring.
    const fills = new Map();
    const rings = new Map();
    for (const n of this.nodes) {
      const key = `${n.role}|${FADED.has(n.status) ? 1 : n.status === "queued" ? 2 : 0}`;
      let path = fills.get(key);
      if (!path) fills.set(key, (path = new Path2D()));
      path.moveTo(n.x + n.r, n.y);
      path.arc(n.x, n.y, n.r, 0, 2 * Math.PI);
      const ring = STATUS_RING[n.status];
      if (ring) {
        let rp = rings.get(ring);
        if (!rp) rings.set(ring, (rp = new Path2D()));
        rp.moveTo(n.x + n.r + 1.5 * px, n.y);
        rp.arc(n.x, n.y, n.r + 1.5 * px, 0, 2 * Math.PI);
      }
    }
    for (const [key, path] of fills) {
      const [role, style] = key.split("|");
      const colour = roleColour(role);
      if (style === "2") {
        ctx.fillStyle = "#0b1020";
        ctx.fill(path);
        ctx.strokeStyle = colour;
        ctx.lineWidth = 1.5 * px;
        ctx.stroke(path);
      } else {
        ctx.globalAlpha = style === "1" ? 0.5 : 1;
        ctx.fillStyle = colour;
        ctx.fill(path);
        ctx.globalAlpha = 1;
      }
    }
    for (const [colour, path] of rings) {
      ctx.strokeStyle = colour;
      ctx.lineWidth = (colour === STATUS_RING.failed ? 2.5 : 1.5) * px;
      ctx.stroke(path);
    }

    // A fading halo on agents that just took a turn.
    for (const [id, at] of this.activity) {
      const age = (now - at) / 1500;
      const n = this.byId.get(id);
      if (age >= 1 || !n || n.x === undefined) {
        this.activity.delete(id);
        continue;
      }
      ctx.beginPath();
      ctx.arc(n.x, n.y, n.r + (4 + 10 * age) * px, 0, 2 * Math.PI);
      ctx.strokeStyle = `rgba(255, 255, 255, ${0.7 * (1 - age)})`;
      ctx.lineWidth = 2 * px;
      ctx.stroke();
    }

    for (const n of [this.selected, this.hovered]) {
      if (!n || n.x === undefined) continue;
      ctx.beginPath();
      ctx.arc(n.x, n.y, n.r + 4 * px, 0, 2 * Math.PI);
      ctx.strokeStyle = n === this.selected ? "#facc15" : "rgba(250, 204, 21, 0.6)";
      ctx.lineWidth = 2.5 * px;
      ctx.stroke();
    }
    this.drawLabels(px);
  }

  drawLabels(px) {
    const { ctx } = this;
    const few = this.nodes.length <= 60;
    const labelled = few ? this.nodes.filter((n) => n.x !== undefined) : [this.selected, this.hovered].filter(Boolean);
    ctx.font = `${11 * px}px ui-sans-serif, system-ui, sans-serif`;
    ctx.textBaseline = "middle";
    for (const n of labelled) {
      const text = n === this.hovered || n === this.selected ? `${n.spec} · ${n.status}` : n.spec;
      ctx.fillStyle = n === this.selected ? "#fde68a" : "rgba(226, 232, 240, 0.85)";
      ctx.fillText(text, n.x + n.r + 4 * px, n.y);
    }
  }

  // -- input ---------------------------------------------------------------------------------------
  toGraph(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    return { x: (clientX - rect.left - this.view.x) / this.view.k, y: (clientY - rect.top - this.view.y) / this.view.k };
  }

  // Where a node is on the screen, in client (viewport) coordinates; null if unknown or not yet drawn.
  screenPosition(id) {
    const n = this.byId.get(id);
    if (!n || n.x === undefined) return null;
    const rect = this.canvas.getBoundingClientRect();
    return { x: rect.left + this.view.x + n.x * this.view.k, y: rect.top + this.view.y + n.y * this.view.k };
  }

  nodeAt(clientX, clientY) {
    const p = this.toGraph(clientX, clientY);
    let best = null;
    let bestD = Infinity;
    for (const n of this.nodes) {
      const d = Math.hypot(n.x - p.x, n.y - p.y) - n.r;
      if (d < bestD) {
        best = n;
        bestD = d;
      }
    }
    return best && bestD <= 6 / this.view.k ? best : null;
  }

  select(id) {
    this.selected = id ? this.byId.get(id) || null : null;
    this.dirty = true;
  }

  bindInput() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y, moved: false };
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener("pointermove", (e) => {
      if (drag) {
        const dx = e.clientX - drag.x;
        const dy = e.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
        if (drag.moved) {
          this.view.x = drag.vx + dx;
          this.view.y = drag.vy + dy;
          this.userMoved = true;
          this.dirty = true;
        }
        return;
      }
      const n = this.nodeAt(e.clientX, e.clientY);
      if (n !== this.hovered) {
        this.hovered = n;
        c.style.cursor = n ? "pointer" : "grab";
        this.onHover(n, e);
        this.dirty = true;
      } else if (n) this.onHover(n, e);
    });
    c.addEventListener("pointerleave", () => {
      this.hovered = null;
      this.onHover(null);
      this.dirty = true;
    });
    c.addEventListener("pointerup", (e) => {
      const wasDrag = drag && drag.moved;
      drag = null;
      if (wasDrag) return;
      const n = this.nodeAt(e.clientX, e.clientY);
      if (n) this.onSelect(n.id);
    });
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      const rect = c.getBoundingClientRect();
      const mx = e.clientX - rect.left;
      const my = e.clientY - rect.top;
      const k = Math.min(12, Math.max(0.05, this.view.k * Math.exp(-e.deltaY * 0.0015)));
      this.view.x = mx - ((mx - this.view.x) * k) / this.view.k;
      this.view.y = my - ((my - this.view.y) * k) / this.view.k;
      this.view.k = k;
      this.userMoved = true;
      this.dirty = true;
    }, { passive: false });
  }

  refit() {
    this.userMoved = false;
    this.fit(1);
  }

  // Leave `px` pixels on the right free (the agent panel covers them); refit unless the user moved.
  setInset(px) {
    if (px === this.insetRight) return;
    this.insetRight = px;
    if (!this.userMoved) this.fit(1);
  }
}

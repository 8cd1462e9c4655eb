// The agent tree as a force-directed graph: layout-worker.js lays it out, render.js draws it.
//
// Why it stays smooth with thousands of agents: the simulation runs in a worker, one tick per frame
// at most and only while it is warm, so the page's main thread only draws; new agents are queued and
// sent in batches once per frame, placed beside their parent so the layout only has to settle
// locally; a status change only recolours and never reheats the layout; hover, selection and
// activity halos redraw only the small overlay canvas, not the scene.

import { Renderer } from "./render.js";

export { ROLE_COLOURS, roleColour, STATUS_RING } from "./render.js";

const MAX_ADD_PER_FRAME = 500;
const ALPHA_MIN = 0.001; // d3's default: below it the worker stops ticking
const SPACING = 13; // graph units between neighbouring agents in a first placement
const GOLDEN_ANGLE = Math.PI * (3 - Math.sqrt(5));

function radius(node) {
  const size = node.cost_usd > 0 ? node.cost_usd * 20000 : node.tokens || 0; // a cent weighs like 200 tokens
  return 3.5 + Math.min(9, 1.3 * Math.log2(1 + size / 400)) + (node.depth === 0 ? 2.5 : 0);
}

export class GraphView {
  constructor(scene, overlay, { onSelect, onHover } = {}) {
    this.canvas = overlay; // on top: it takes the pointer
    this.renderer = new Renderer(scene, overlay);
    this.onSelect = onSelect || (() => {});
    this.onHover = onHover || (() => {});
    this.worker = new Worker("/static/layout-worker.js");
    this.worker.onmessage = (e) => this.received(e.data);
    this.gen = 0;
    this.frameTimes = [];
    this.drawTimes = [];
    this.tickTimes = [];
    this.lastFrame = 0;
    this.view = { x: 0, y: 0, k: 1 };
    this.insetRight = 0; // pixels on the right covered by the agent panel
    this.reset();
    this.resize();
    new ResizeObserver(() => this.resize()).observe(overlay.parentElement);
    this.bindInput();
    requestAnimationFrame((t) => this.frame(t));
  }

  // -- data --------------------------------------------------------------------------------------
  reset() {
    this.gen += 1;
    this.worker.postMessage({ type: "reset", gen: this.gen });
    this.nodes = [];
    this.byId = new Map();
    this.links = [];
    this.orphans = new Map(); // parent id -> children seen before it
    this.pending = [];
    this.radii = new Map(); // node index -> new radius, sent once per frame
    this.activity = new Map(); // node id -> time of its latest turn, for a brief halo
    this.sentSeq = 0;
    this.doneSeq = 0;
    this.alpha = 0;
    this.positions = null;
    this.selected = null;
    this.hovered = null;
    this.userMoved = false;
    this.match = null;
    this.dirty = true; // the scene (links, nodes) must be redrawn
    this.overlayDirty = true; // only the overlay (selection, hover, halos, labels)
  }

  // An agent the graph has not seen (from the snapshot or an event); drawn from the next frame on.
  add(agent) {
    if (this.byId.has(agent.id)) return;
    const node = { ...agent, r: 0, index: undefined };
    node.r = radius(node);
    this.byId.set(node.id, node);
    this.pending.push(node);
  }

  update(agent) {
    const node = this.byId.get(agent.id);
    if (!node) return this.add(agent);
    Object.assign(node, { status: agent.status, tokens: agent.tokens, cost_usd: agent.cost_usd, turn: agent.turn,
      label: agent.label || node.label });
    const r = radius(node);
    if (r !== node.r) {
      node.r = r;
      if (node.index !== undefined) this.radii.set(node.index, r);
    }
    this.dirty = true;
  }

  pulse(id) {
    if (this.byId.has(id)) {
      this.activity.set(id, performance.now());
      this.overlayDirty = true;
    }
  }

  // Place a first snapshot as nested discs, near where the forces would put it, so a big tree does not
  // have to unfold from a heap: an agent's leaf children sit in a sunflower disc around it, its
  // sub-trees on a ring just outside that disc, each sub-tree laid out the same way.
  seedLayout(agents) {
    const children = new Map();
    const roots = [];
    for (const a of agents.values()) {
      if (a.parent && agents.has(a.parent)) {
        if (!children.has(a.parent)) children.set(a.parent, []);
        children.get(a.parent).push(a);
      } else roots.push(a);
    }
    const extent = new Map();
    const measure = (a) => {
      const kids = children.get(a.id) || [];
      const leaves = kids.filter((k) => !children.has(k.id)).length;
      const disc = leaves ? SPACING * Math.sqrt(leaves + 1) : 0;
      let ring = 0;
      let widest = 0;
      for (const k of kids) {
        if (!children.has(k.id)) continue;
        const e = measure(k);
        ring += 2 * e + SPACING;
        widest = Math.max(widest, e);
      }
      const radius = widest ? Math.max(disc + widest + SPACING, ring / (2 * Math.PI)) : 0;
      const e = widest ? radius + widest : disc + SPACING;
      extent.set(a.id, { disc, radius, e });
      return e;
    };
    const place = (a, x, y) => {
      a.x = x;
      a.y = y;
      const kids = children.get(a.id) || [];
      const { radius } = extent.get(a.id);
      let leaf = 0;
      const subtrees = kids.filter((k) => children.has(k.id));
      const total = subtrees.reduce((s, k) => s + 2 * extent.get(k.id).e + SPACING, 0);
      let angle = Math.random() * 2 * Math.PI;
      for (const k of kids) {
        if (!children.has(k.id)) {
          leaf += 1;
          const at = sunflower(leaf);
          k.x = x + at.x;
          k.y = y + at.y;
        } else {
          const share = ((2 * extent.get(k.id).e + SPACING) / total) * 2 * Math.PI;
          place(k, x + Math.cos(angle + share / 2) * radius, y + Math.sin(angle + share / 2) * radius);
          angle += share;
        }
      }
    };
    let ring = 0;
    for (const r of roots) ring += 2 * measure(r) + SPACING;
    let angle = 0;
    for (const r of roots) {
      const share = ((2 * extent.get(r.id).e + SPACING) / ring) * 2 * Math.PI;
      const radius = roots.length > 1 ? ring / (2 * Math.PI) : 0;
      place(r, Math.cos(angle + share / 2) * radius, Math.sin(angle + share / 2) * radius);
      angle += share;
    }
  }

  flush() {
    if (this.radii.size) {
      this.worker.postMessage({ type: "radius", gen: this.gen, radii: [...this.radii] });
      this.radii.clear();
    }
    if (!this.pending.length) return;
    const batch = this.pending.splice(0, MAX_ADD_PER_FRAME);
    for (const node of batch) {
      const parent = node.parent ? this.byId.get(node.parent) : null;
      if (node.x === undefined) {
        if (parent && parent.x !== undefined) {
          // The next seat of the parent's sunflower: siblings spread evenly as they arrive.
          parent.kids = (parent.kids || 0) + 1;
          const at = sunflower(parent.kids);
          node.x = parent.x + at.x;
          node.y = parent.y + at.y;
        } else {
          node.x = (Math.random() - 0.5) * 40;
          node.y = (Math.random() - 0.5) * 40;
        }
      }
      node.index = this.nodes.length;
      this.nodes.push(node);
      if (parent && parent.index !== undefined) this.links.push({ source: parent, target: node });
      else if (node.parent) {
        if (!this.orphans.has(node.parent)) this.orphans.set(node.parent, []);
        this.orphans.get(node.parent).push(node);
      }
      for (const child of this.orphans.get(node.id) || []) this.links.push({ source: node, target: child });
      this.orphans.delete(node.id);
    }
    this.sentSeq += 1;
    this.worker.postMessage({
      type: "add", gen: this.gen, seq: this.sentSeq, heat: this.nodes.length > 2000 ? 0.12 : 0.35,
      nodes: batch.map((n) => ({ id: n.id, parent: n.parent, r: n.r, x: n.x, y: n.y })),
    });
    this.dirty = true;
  }

  received(m) {
    if (m.gen !== this.gen || m.type !== "positions") return;
    this.positions = m; // applied at the next frame
    this.tickTimes.push(m.tickMs);
    if (this.tickTimes.length > 600) this.tickTimes.splice(0, this.tickTimes.length - 600);
  }

  // Whether the layout is at rest: nothing waiting to be sent, the worker saw every batch and is cold.
  settled() {
    return !this.pending.length && this.doneSeq === this.sentSeq && this.alpha <= ALPHA_MIN && !this.positions;
  }

  // -- the frame loop ------------------------------------------------------------------------------
  frame(t) {
    if (this.lastFrame) push(this.frameTimes, t - this.lastFrame);
    this.lastFrame = t;
    this.flush();
    const m = this.positions;
    if (m) {
      this.positions = null;
      const n = Math.min(this.nodes.length, m.xy.length / 2);
      for (let i = 0; i < n; i++) {
        this.nodes[i].x = m.xy[2 * i];
        this.nodes[i].y = m.xy[2 * i + 1];
      }
      this.alpha = m.alpha;
      this.doneSeq = m.seq;
      if (!this.userMoved) this.fit(0.15);
      this.dirty = true;
    }
    if (this.dirty || this.overlayDirty) {
      const start = performance.now();
      this.draw(t);
      push(this.drawTimes, performance.now() - start);
    }
    if (m) this.worker.postMessage({ type: "ack", gen: this.gen });
    requestAnimationFrame((next) => this.frame(next));
  }

  frameStats() {
    const q = (xs, p) => {
      const ys = [...xs].sort((a, b) => a - b);
      return ys.length ? ys[Math.min(ys.length - 1, Math.floor(p * ys.length))] : 0;
    };
    return {
      frames: this.frameTimes.length, median: q(this.frameTimes, 0.5), p95: q(this.frameTimes, 0.95),
      max: q(this.frameTimes, 1), draw_median: q(this.drawTimes, 0.5), tick_median: q(this.tickTimes, 0.5),
    };
  }

  resetFrameStats() {
    this.frameTimes = [];
    this.drawTimes = [];
    this.tickTimes = [];
  }

  resize() {
    const rect = this.canvas.parentElement.getBoundingClientRect();
    this.width = Math.max(1, rect.width);
    this.height = Math.max(1, rect.height);
    this.renderer.resize(this.width, this.height, window.devicePixelRatio || 1);
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
    const k = Math.min(2.2, (width - 2 * pad) / Math.max(1, x1 - x0), (this.height - 2 * pad) / Math.max(1, y1 - y0));
    const v = this.view;
    v.k += (k - v.k) * ease;
    v.x += (width / 2 - k * (x0 + x1) / 2 - v.x) * ease;
    v.y += (this.height / 2 - k * (y0 + y1) / 2 - v.y) * ease;
    this.dirty = true;
  }

  // Dim the nodes `match` rejects (search and filters); null shows every node as it is.
  setFilter(match) {
    this.match = match;
    this.dirty = true;
  }

  draw(now) {
    if (this.dirty) this.renderer.drawScene(this.nodes, this.links, this.view, this.match);
    const labelled = this.nodes.length <= 60 ? this.nodes : [this.selected, this.hovered];
    this.overlayDirty = this.renderer.drawOverlay({
      view: this.view, selected: this.selected, hovered: this.hovered, activity: this.activity, byId: this.byId,
      labelled, now,
    });
    this.dirty = false;
  }

  // -- input ---------------------------------------------------------------------------------------
  toGraph(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    return { x: (clientX - rect.left - this.view.x) / this.view.k, y: (clientY - rect.top - this.view.y) / this.view.k };
  }

  // Where a node is on the screen, in client (viewport) coordinates; null if unknown or not yet drawn.
  screenPosition(id) {
    const n = this.byId.get(id);
    if (!n || n.index === undefined) return null;
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
    this.overlayDirty = true;
  }

  setHovered(node) {
    if (node === this.hovered) return;
    this.hovered = node;
    this.canvas.style.cursor = node ? "pointer" : "grab";
    this.overlayDirty = true;
  }

  moveView(x, y, k) {
    Object.assign(this.view, { x, y, k });
    this.userMoved = true;
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
        if (drag.moved) this.moveView(drag.vx + dx, drag.vy + dy, this.view.k);
        return;
      }
      const n = this.nodeAt(e.clientX, e.clientY);
      this.setHovered(n);
      this.onHover(n, e);
    });
    c.addEventListener("pointerleave", () => {
      this.setHovered(null);
      this.onHover(null);
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
      const v = this.view;
      const k = Math.min(12, Math.max(0.05, v.k * Math.exp(-e.deltaY * 0.0015)));
      this.moveView(mx - ((mx - v.x) * k) / v.k, my - ((my - v.y) * k) / v.k, k);
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

// The i-th seat (from 1) of a sunflower: even spacing for any count, no overlap, no gaps.
function sunflower(i) {
  const r = SPACING * Math.sqrt(i + 0.5);
  const a = i * GOLDEN_ANGLE;
  return { x: r * Math.cos(a), y: r * Math.sin(a) };
}

function push(xs, value) {
  xs.push(value);
  if (xs.length > 600) xs.splice(0, xs.length - 600);
}

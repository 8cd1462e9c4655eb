// The force layout of the agent tree, run in a worker so the page's main thread only draws and
// handles input: with thousands of agents a simulation tick costs more than a whole frame.
//
// Protocol (all messages carry the page's generation `gen`; a new run starts a new one):
//   page -> worker  {type: "reset", gen}
//                   {type: "add", gen, seq, heat, nodes: [{id, parent, r, x, y}]}   (appended in order)
//                   {type: "radius", gen, radii: [[index, r], ...]}
//                   {type: "ack", gen}                   (the page drew the last positions it got)
//   worker -> page  {type: "positions", gen, seq, alpha, tickMs, xy: Float32Array [x0, y0, x1, y1, ...]}
/* global d3, importScripts */
importScripts("vendor/d3-dispatch.min.js", "vendor/d3-quadtree.min.js", "vendor/d3-timer.min.js",
  "vendor/d3-force.min.js");

const COLLIDE_MAX = 1500; // collisions keep small trees legible; past this the charge alone spaces nodes
const FRAME_MS = 16;

let gen = 0;
let seq = 0;
let nodes = [];
let byId = new Map();
let links = [];
let orphans = new Map(); // parent id -> children that arrived before it
let acked = true;
let unsent = false; // positions changed since the last post
let scheduled = false;
let tickMs = 0;

const linkForce = d3.forceLink([]).distance((l) => l.source.r + l.target.r + 10).strength(0.8);
const collide = d3.forceCollide((d) => d.r + 2).strength(0.8);
const simulation = d3.forceSimulation([])
  .force("link", linkForce)
  .force("charge", d3.forceManyBody().strength(-22).theta(0.95).distanceMax(260))
  .force("x", d3.forceX(0).strength(0.015))
  .force("y", d3.forceY(0).strength(0.015))
  .alphaDecay(0.03)
  .velocityDecay(0.45)
  .stop(); // stepped by loop() below, never by d3's own timer

function add(batch, heat) {
  for (const n of batch) {
    const node = { id: n.id, r: n.r, x: n.x, y: n.y };
    nodes.push(node);
    byId.set(n.id, node);
    const parent = n.parent ? byId.get(n.parent) : null;
    if (parent) links.push({ source: parent, target: node });
    else if (n.parent) {
      if (!orphans.has(n.parent)) orphans.set(n.parent, []);
      orphans.get(n.parent).push(node);
    }
    for (const child of orphans.get(n.id) || []) links.push({ source: node, target: child });
    orphans.delete(n.id);
  }
  simulation.force("collide", nodes.length <= COLLIDE_MAX ? collide : null);
  simulation.nodes(nodes);
  linkForce.links(links);
  // Reheat gently: enough to make room for the newcomers, not enough to shake a big settled tree.
  simulation.alpha(Math.max(simulation.alpha(), heat));
}

function post() {
  const xy = new Float32Array(nodes.length * 2);
  for (let i = 0; i < nodes.length; i++) {
    xy[2 * i] = nodes[i].x;
    xy[2 * i + 1] = nodes[i].y;
  }
  acked = false;
  unsent = false;
  self.postMessage({ type: "positions", gen, seq, alpha: simulation.alpha(), tickMs, xy }, [xy.buffer]);
}

// One tick per frame at most, and a post only once the page drew the previous one: a slow page
// (or a busy machine) slows the layout down instead of queueing work it cannot keep up with.
function loop() {
  scheduled = false;
  const start = performance.now();
  const warm = simulation.alpha() > simulation.alphaMin();
  if (warm) {
    simulation.tick();
    tickMs = performance.now() - start;
    unsent = true;
  }
  if (acked && unsent) post();
  if (warm) schedule(Math.max(0, FRAME_MS - (performance.now() - start)));
}

function schedule(delay = 0) {
  if (!scheduled) {
    scheduled = true;
    setTimeout(loop, delay);
  }
}

self.onmessage = (e) => {
  const m = e.data;
  if (m.type === "reset") {
    gen = m.gen;
    seq = 0;
    nodes = [];
    byId = new Map();
    links = [];
    orphans = new Map();
    acked = true;
    simulation.nodes([]);
    linkForce.links([]);
    simulation.alpha(0);
    return;
  }
  if (m.gen !== gen) return;
  if (m.type === "add") {
    seq = m.seq;
    add(m.nodes, m.heat);
    unsent = true;
    schedule();
  } else if (m.type === "radius") {
    for (const [i, r] of m.radii) if (nodes[i]) nodes[i].r = r;
  } else if (m.type === "ack") {
    acked = true;
    if (unsent || simulation.alpha() > simulation.alphaMin()) schedule();
  }
};

// sftlab ui: the live loss curve (inline SVG, polled) and keyboard review. Plain JavaScript, no libraries.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

// Draw train (and eval) loss against step; the y axis spans the data.
function drawCurve(box, series) {
  const all = series.train.concat(series.eval);
  if (!all.length) return;
  const W = 640, H = 240, P = 40;
  const xs = all.map(p => p.step), ys = all.map(p => p.loss);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const y0 = Math.min(...ys), y1 = Math.max(...ys, y0 + 1e-9);
  const sx = s => P + (s - x0) / (x1 - x0) * (W - 2 * P);
  const sy = v => H - P - (v - y0) / (y1 - y0) * (H - 2 * P);
  const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "curve"});
  el("line", {x1: P, y1: H - P, x2: W - P, y2: H - P, class: "axis"}, svg);
  el("line", {x1: P, y1: P, x2: P, y2: H - P, class: "axis"}, svg);
  const label = (x, y, text, anchor) => { el("text", {x, y, "text-anchor": anchor}, svg).textContent = text; };
  label(P, H - P + 16, x0, "middle");
  label(W - P, H - P + 16, x1, "middle");
  label(P - 4, sy(y1) + 4, y1.toFixed(3), "end");
  label(P - 4, sy(y0) + 4, y0.toFixed(3), "end");
  for (const [name, points] of Object.entries(series)) {
    if (!points.length) continue;
    const d = points.map((p, i) => `${i ? "L" : "M"}${sx(p.step).toFixed(1)},${sy(p.loss).toFixed(1)}`).join(" ");
    el("path", {d, class: `series ${name}`, "data-points": points.length}, svg);
  }
  box.replaceChildren(svg);
}

function pollCurve(box) {
  const status = document.getElementById("curve-status");
  const tick = async () => {
    try {
      const r = await fetch(`/api/metrics?r=${encodeURIComponent(box.dataset.run)}`);
      if (r.ok) {
        const m = await r.json();
        drawCurve(box, {train: m.train, eval: m.eval});
        const last = m.train[m.train.length - 1];
        box.dataset.points = m.train.length;
        if (last) status.textContent = `step ${last.step}: loss ${last.loss.toFixed(4)} (${m.train.length} points; updates every 2 s)`;
      }
    } catch (e) { status.textContent = "server not answering; retrying"; }
  };
  tick();
  setInterval(tick, 2000);
}

// Keyboard review: k keep, d drop, e edit the answer, j/n next; every decision is posted, then the next record opens.
function setupReview(root) {
  const msg = document.getElementById("message");
  const editor = document.getElementById("editor");
  const answer = document.getElementById("answer");
  const why = document.getElementById("why");
  const next = () => { if (root.dataset.next) location.href = root.dataset.next; else msg.textContent = "last record in this list"; };
  async function decide(decision) {
    const body = {run: root.dataset.run, id: root.dataset.id, decision, why: why.value};
    if (decision === "edit") body.answer = answer.value;
    const r = await fetch("/api/review", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const out = await r.json();
    if (!r.ok) { msg.textContent = `not saved: ${out.error}`; return; }
    document.getElementById("decision").textContent = out.decision;
    msg.textContent = `saved: ${out.decision}`;
    root.dataset.saved = (Number(root.dataset.saved || 0) + 1).toString();
    next();
  }
  const edit = () => { editor.hidden = false; answer.focus(); };
  const cancel = () => { editor.hidden = true; answer.blur(); };
  root.addEventListener("click", e => {
    const b = e.target.closest("button");
    if (!b) return;
    if (b.dataset.decision) decide(b.dataset.decision);
    else if (b.dataset.action === "edit") edit();
    else if (b.dataset.action === "next") next();
    else if (b.dataset.action === "cancel") cancel();
  });
  document.addEventListener("keydown", e => {
    if (e.target === answer) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); decide("edit"); }
      else if (e.key === "Escape") cancel();
      return;
    }
    if (e.target.tagName === "INPUT" || e.ctrlKey || e.metaKey || e.altKey) return;
    const action = {k: () => decide("keep"), d: () => decide("drop"), e: edit, j: next, n: next}[e.key];
    if (action) { e.preventDefault(); action(); }
  });
}

async function postJSON(url, body) {
  const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  return [r.ok, await r.json()];
}

// Start a run from a recipe, then open its job page.
function setupLaunch(form) {
  form.addEventListener("submit", async e => {
    e.preventDefault();
    const overrides = form.overrides.value.split("\n").map(s => s.trim()).filter(Boolean);
    const [ok, out] = await postJSON("/api/jobs", {recipe: form.recipe.value, overrides, until: form.until.value});
    if (ok) location.href = `/job?id=${out.id}`;
    else document.getElementById("message").textContent = out.error;
  });
}

// Follow a job's log (appended as it grows) and its state; stop it on request.
function followJob(box) {
  const log = document.getElementById("log"), state = document.getElementById("state");
  let offset = 0, timer = null;
  const tick = async () => {
    const r = await fetch(`/api/jobs/${box.dataset.id}?offset=${offset}`);
    if (!r.ok) return;
    const out = await r.json();
    if (out.log) { log.textContent += out.log; log.scrollTop = log.scrollHeight; }
    offset = out.offset;
    state.textContent = out.state;
    box.dataset.state = out.state;
    if (out.state !== "running" && !out.log) clearInterval(timer);
  };
  document.getElementById("stop").addEventListener("click", async () => {
    state.textContent = "stopping";
    await postJSON(`/api/jobs/${box.dataset.id}/stop`, {});
    tick();
  });
  tick();
  timer = setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const launch = document.getElementById("launch");
  if (launch) setupLaunch(launch);
  const job = document.getElementById("job");
  if (job) followJob(job);
  const curve = document.getElementById("curve");
  if (curve) pollCurve(curve);
  const review = document.getElementById("review");
  if (review) setupReview(review);
  const q = document.getElementById("q");
  if (q) document.addEventListener("keydown", e => { if (e.key === "/" && e.target !== q) { e.preventDefault(); q.focus(); } });
});

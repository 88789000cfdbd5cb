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
function drawCurve(box, series, colors) {
  const all = Object.values(series).flat();
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
    const attrs = {d, class: `series ${name}`, "data-points": points.length};
    if (colors && colors[name]) attrs.stroke = colors[name];
    el("path", attrs, svg);
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
        if (last) {
          const of = m.max_steps ? ` of ${m.max_steps} (${Math.round(100 * last.step / m.max_steps)}%)` : "";
          status.textContent = `step ${last.step}${of}: loss ${last.loss.toFixed(4)} (${m.train.length} points; updates every 2 s)`;
        }
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

// Chat: one history per model column; each answer is read from the server-sent events as they arrive.
function setupChat(box, form) {
  const columns = [...box.querySelectorAll(".chat-column")].map(node => ({node, history: []}));
  const prompt = document.getElementById("prompt");
  const bubble = (col, role, text) => {
    const div = document.createElement("div");
    div.className = `turn ${role}`;
    div.innerHTML = `<div class="role">${role}</div><pre></pre>`;
    div.querySelector("pre").textContent = text;
    col.node.querySelector(".messages").appendChild(div);
    return div;
  };
  async function answer(col) {
    const out = bubble(col, "assistant", "");
    const pre = out.querySelector("pre");
    out.dataset.state = "waiting";
    const body = {run: box.dataset.run, model: col.node.dataset.model, messages: col.history,
                  max_tokens: Number(document.getElementById("max-tokens").value)};
    const r = await fetch("/api/chat", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    if (!r.ok) { pre.textContent = `error: ${(await r.json()).error}`; out.dataset.state = "error"; return; }
    const reader = r.body.getReader(), decoder = new TextDecoder();
    let buffer = "", chunks = 0;
    out.dataset.state = "streaming";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      const events = buffer.split("\n\n");
      buffer = events.pop();
      for (const event of events) {
        const data = event.replace(/^data: /, "").trim();
        if (!data || data === "[DONE]") continue;
        const msg = JSON.parse(data);
        if (msg.error) { pre.textContent += ` [error: ${msg.error.message || msg.error}]`; continue; }
        const delta = (msg.choices && msg.choices[0].delta.content) || "";
        if (delta) { pre.textContent += delta; out.dataset.chunks = ++chunks; }
      }
    }
    col.history.push({role: "assistant", content: pre.textContent});
    out.dataset.state = "done";
  }
  form.addEventListener("submit", e => {
    e.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    prompt.value = "";
    for (const col of columns) { col.history.push({role: "user", content: text}); bubble(col, "user", text); answer(col); }
  });
  prompt.addEventListener("keydown", e => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } });
}

// Several runs' training loss in one chart, one colour per run, polled like the run page.
const PALETTE = ["#2f6fde", "#d9480f", "#2b8a3e", "#9c36b5", "#e67700", "#0b7285"];
function compareCurves(box) {
  const names = JSON.parse(box.dataset.runs);
  const colors = Object.fromEntries(names.map((n, i) => [n, PALETTE[i % PALETTE.length]]));
  const legend = document.getElementById("legend");
  legend.replaceChildren(...names.map(n => {
    const li = document.createElement("li");
    li.textContent = n;
    li.style.color = colors[n];
    return li;
  }));
  const tick = async () => {
    const series = {};
    for (const name of names) {
      const r = await fetch(`/api/metrics?r=${encodeURIComponent(name)}`);
      if (r.ok) series[name] = (await r.json()).train;
    }
    drawCurve(box, series, colors);
  };
  tick();
  setInterval(tick, 5000);
}

// The record as training renders it, trained tokens marked (HTML escaped by the server).
async function showMask(box) {
  const r = await fetch(box.dataset.url);
  const out = await r.json();
  if (out.html) {
    box.innerHTML = `<p class="muted">${out.trained} of ${out.tokens} tokens trained (marked)</p>` + out.html;
    box.dataset.state = "done";
  } else {
    box.textContent = `not rendered: ${out.error}`;
    box.dataset.state = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const maskBox = document.getElementById("mask");
  if (maskBox) showMask(maskBox);
  const compare = document.getElementById("compare-curve");
  if (compare) compareCurves(compare);
  const chatBox = document.getElementById("chat"), chatForm = document.getElementById("chat-form");
  if (chatBox && chatForm) setupChat(chatBox, chatForm);
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

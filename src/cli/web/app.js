// jobq web: the dashboard. Polls /api/snapshot (2 s), /api/history (5 s) and
// /api/dead (5 s), follows /api/events (server-sent events), and draws the
// throughput chart and sparklines itself. Everything from Redis is put in
// the page as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  snap: null, snapAt: 0, history: [], interval: 5, dead: null, token: sessionStorage.getItem("jobq-token") || "",
  events: [], paused: false, evTimes: [], lastOk: 0, purgeArmed: 0,
};

// ---- formatting ----

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid instanceof Node ? kid : String(kid));
  return e;
}
const num = (n) => (n === null || n === undefined || isNaN(n)) ? "–" : Math.round(n).toLocaleString("en-US");
function rate(n) {
  if (n === null || n === undefined || isNaN(n)) return "–";
  if (n === 0) return "0";
  if (n < 10) return n.toFixed(1);
  return Math.round(n).toLocaleString("en-US");
}
function dur(s) {
  if (s === null || s === undefined || isNaN(s)) return "–";
  if (s < 0) s = 0;
  if (s < 0.001) return (s * 1e6).toFixed(0) + " µs";
  if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : s < 0.1 ? 1 : 0) + " ms";
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
  if (s < 86400) return Math.floor(s / 3600) + " h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + " min";
  return Math.floor(s / 86400) + " d " + Math.floor(s % 86400 / 3600) + " h";
}
function ago(t) {
  if (!t) return "–";
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 1) return "just now";
  if (s < 60) return Math.floor(s) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}
function bytes(n) {
  if (n === null || n === undefined) return "–";
  const u = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
function toast(text, bad) {
  const t = el("div", {class: "toast" + (bad ? " bad" : ""), text, role: "status"});
  document.body.append(t);
  setTimeout(() => t.remove(), bad ? 6000 : 3000);
}

// ---- the API ----
// Paths are relative, so that the page also works behind a proxy under a
// prefix (https://ops.example/jobq/).

async function api(path, opts) {
  opts = opts || {};
  const headers = {};
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.write) headers["Authorization"] = "Bearer " + state.token;
  const r = await fetch(path, {method: opts.body !== undefined ? "POST" : "GET", headers, cache: "no-store",
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined});
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok && !opts.allow?.includes(r.status)) {
    if (r.status === 401 || r.status === 403) setToken("");
    throw new Error((data && data.error) || ("HTTP " + r.status));
  }
  return {status: r.status, data};
}
const canWrite = () => !!(state.snap && state.snap.writable && state.token);

function setToken(t) {
  state.token = t;
  if (t) sessionStorage.setItem("jobq-token", t); else sessionStorage.removeItem("jobq-token");
  renderAuth();
}

// ---- rates from the history ----

// Processed and failed per minute of queue q (null: every queue) between
// the newest sample and the one `window` seconds before it.
function rateOf(q, window) {
  const h = state.history;
  if (h.length < 2) return null;
  const last = h[h.length - 1];
  let base = h[0];
  for (let i = h.length - 2; i >= 0; i--) { if (last.t - h[i].t >= window) { base = h[i]; break; } }
  const dt = last.t - base.t;
  if (dt <= 0) return null;
  const sum = (p, k) => {
    if (q !== null) return (p.queues[q] || [0, 0])[k];
    return Object.values(p.queues).reduce((a, v) => a + v[k], 0);
  };
  return {p: Math.max(0, sum(last, 0) - sum(base, 0)) * 60 / dt, f: Math.max(0, sum(last, 1) - sum(base, 1)) * 60 / dt};
}

// [t, processed/min, failed/min] of q (null: all) for each sample, each
// over the `smooth` seconds before it.
function series(q, smooth) {
  const h = state.history, out = [];
  const sum = (p, k) => q !== null ? (p.queues[q] || [0, 0])[k] : Object.values(p.queues).reduce((a, v) => a + v[k], 0);
  let j = 0;
  for (let i = 1; i < h.length; i++) {
    while (j < i - 1 && h[i].t - h[j + 1].t >= smooth) j++;
    const dt = h[i].t - h[j].t;
    if (dt <= 0) continue;
    out.push([h[i].t, Math.max(0, sum(h[i], 0) - sum(h[j], 0)) * 60 / dt, Math.max(0, sum(h[i], 1) - sum(h[j], 1)) * 60 / dt]);
  }
  return out;
}

// ---- drawing ----

function niceStep(max, ticks) {
  const raw = max / ticks, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

function drawChart() {
  const c = $("chart"), ctx = c.getContext("2d"), dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth, hgt = 180;
  if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(hgt * dpr); }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, hgt);
  const css = getComputedStyle(document.documentElement);
  const col = (v) => css.getPropertyValue(v).trim();
  const pts = series(null, 30);
  const left = 52, right = 10, top = 10, bottom = 24, pw = w - left - right, ph = hgt - top - bottom;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = col("--muted");
  if (pts.length < 2) {
    ctx.fillText("collecting samples… (one every " + state.interval + " s)", left, top + ph / 2);
    $("chart-span").textContent = "";
    return;
  }
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  let max = 0;
  for (const p of pts) max = Math.max(max, p[1], p[2]);
  const step = niceStep(max || 1, 4), ymax = Math.max(step, Math.ceil((max || 1) / step) * step);
  const x = (t) => left + (t1 === t0 ? 0 : (t - t0) / (t1 - t0)) * pw, y = (v) => top + ph - v / ymax * ph;
  ctx.strokeStyle = col("--line");
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let v = 0; v <= ymax + 1e-9; v += step) {
    ctx.beginPath(); ctx.moveTo(left, Math.round(y(v)) + .5); ctx.lineTo(left + pw, Math.round(y(v)) + .5); ctx.stroke();
    ctx.fillText(rate(v), left - 6, y(v));
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const span = t1 - t0, every = span > 2400 ? 600 : span > 1200 ? 300 : span > 300 ? 120 : 60;
  for (let t = Math.ceil(t0 / every) * every; t <= t1; t += every) ctx.fillText(clock(t), x(t), top + ph + 6);
  const line = (k, color, fill) => {
    ctx.beginPath();
    pts.forEach((p, i) => i ? ctx.lineTo(x(p[0]), y(p[k])) : ctx.moveTo(x(p[0]), y(p[k])));
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.lineJoin = "round"; ctx.stroke();
    if (fill) {
      ctx.lineTo(x(t1), y(0)); ctx.lineTo(x(t0), y(0)); ctx.closePath();
      ctx.globalAlpha = .12; ctx.fillStyle = color; ctx.fill(); ctx.globalAlpha = 1;
    }
  };
  line(1, col("--accent"), true);
  line(2, col("--bad"), false);
  $("chart-span").textContent = "last " + dur(span) + ", 30 s windows";
}

function sparkline(q) {
  const pts = series(q, 30), w = 120, h = 22;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("class", "spark");
  if (pts.length < 2) return svg;
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  const max = Math.max(1e-9, ...pts.map((p) => p[1]));
  const poly = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  poly.setAttribute("points", pts.map((p) => ((p[0] - t0) / Math.max(1, t1 - t0) * (w - 2) + 1).toFixed(1) + "," +
    (h - 2 - p[1] / max * (h - 4)).toFixed(1)).join(" "));
  poly.setAttribute("fill", "none"); poly.setAttribute("stroke", "currentColor"); poly.setAttribute("stroke-width", "1.5");
  svg.append(poly);
  svg.style.color = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim();
  return svg;
}

// ---- rendering ----

function cell(n, hot) {
  return el("td", {class: "n" + (n === 0 ? " zero" : hot && n > 0 ? " hot" : ""), text: num(n)});
}

function latencyOf(q, kind) {
  const l = (state.snap.latency || []).filter((x) => x.queue === q && x.kind === kind && x.count > 0);
  if (!l.length) return "–";
  // The busiest handler's figures; the tooltip lists all.
  l.sort((a, b) => b.count - a.count);
  return dur(l[0].p50) + " / " + dur(l[0].p99);
}
function latencyTitle(q, kind) {
  return (state.snap.latency || []).filter((x) => x.queue === q && x.kind === kind)
    .map((x) => x.handler + ": p50 " + dur(x.p50) + ", p90 " + dur(x.p90) + ", p99 " + dur(x.p99) + " (" + num(x.count) + " jobs)").join("\n");
}

function renderQueues() {
  const s = state.snap, tb = $("queues").tBodies[0];
  tb.replaceChildren();
  for (const q of s.queues) {
    const r = rateOf(q.name, 60);
    const w = el("td", {class: "n mono", text: latencyOf(q.name, "wait"), title: latencyTitle(q.name, "wait") || null});
    const run = el("td", {class: "n mono", text: latencyOf(q.name, "run"), title: latencyTitle(q.name, "run") || null});
    tb.append(el("tr", {"data-queue": q.name}, el("td", {class: "name"}, q.name, q.paused ? el("span", {class: "pill warn", text: "paused", title: "jobq resume " + q.name + " lets workers take its jobs again"}) : null), cell(q.waiting), cell(q.inflight),
      cell(q.scheduled), cell(q.parked), cell(q.dead, true), el("td", {class: "n", text: r ? rate(r.p) : "–"}),
      el("td", {class: "n" + (r && r.f > 0 ? " hot" : ""), text: r ? rate(r.f) : "–"}), w, run, el("td", {}, sparkline(q.name))));
  }
  if (!s.queues.length) tb.append(el("tr", {}, el("td", {colspan: 11, class: "empty", text: "no queues yet: nothing was ever enqueued under prefix " + s.prefix})));
  else {
    const t = s.totals, r = rateOf(null, 60);
    tb.append(el("tr", {class: "total"}, el("td", {text: "total"}), cell(t.waiting), cell(t.inflight), cell(t.scheduled),
      cell(t.parked), cell(t.dead, true), el("td", {class: "n", text: r ? rate(r.p) : "–"}), el("td", {class: "n", text: r ? rate(r.f) : "–"}),
      el("td"), el("td"), el("td")));
  }
  $("queues-note").textContent = s.queues.length + (s.queues.length === 1 ? " queue" : " queues");
  const sel = $("dead-queue"), have = new Set([...sel.options].map((o) => o.value));
  for (const q of s.queues) if (!have.has(q.name)) sel.append(el("option", {value: q.name, text: q.name}));
}

function renderCards() {
  const s = state.snap, t = s.totals, j = s.jobs;
  $("c-waiting").textContent = num(t.waiting);
  $("c-running").textContent = num(t.inflight);
  $("c-scheduled").textContent = num(t.scheduled);
  $("c-dead").textContent = num(t.dead);
  $("c-dead").classList.toggle("bad", t.dead > 0);
  // The same figures as the queue table's total: from the samples, else
  // what the daemons report.
  const r = rateOf(null, 60);
  const ppm = r ? r.p : j.processed_per_minute, fpm = r ? r.f : j.failed_per_minute;
  $("c-ppm").textContent = rate(ppm);
  $("c-fpm").textContent = rate(fpm);
  $("c-fpm").classList.toggle("bad", fpm > 0);
  $("c-workers").textContent = num(s.workers.busy) + " / " + num(s.workers.total);
  const alive = s.daemons.filter((d) => d.alive).length;
  $("c-daemons").textContent = num(alive) + (alive < s.daemons.length ? " (+" + (s.daemons.length - alive) + " dead)" : "");
}

// A running job's reported progress: a bar, the percentage, the message.
function progressBar(p) {
  const pct = Math.max(0, Math.min(100, Math.round((p.fraction || 0) * 100)));
  const fill = el("span");
  fill.style.width = pct + "%"; // through the CSSOM: the CSP forbids style attributes
  return el("div", {class: "progress", title: (p.message || "") + (p.time ? " (reported " + ago(p.time) + ")" : "")},
    el("span", {class: "bar"}, fill), el("span", {class: "muted", text: pct + "%" + (p.message ? " " + p.message : "")}));
}

function renderDaemons() {
  const box = $("daemons"), s = state.snap;
  box.replaceChildren();
  if (!s.daemons.length) { box.append(el("div", {class: "empty", text: "no daemon registered: start jobqd"})); return; }
  const now = s.time;
  for (const d of s.daemons) {
    const head = el("div", {class: "daemon-head"}, el("span", {class: "id", text: d.id}),
      el("span", {class: "pill " + (d.alive ? "ok" : "bad"), text: d.alive ? "alive" : "dead"}),
      el("span", {class: "muted", text: "jobqd " + (d.version || "?")}),
      el("span", {class: "muted", text: "up " + (d.alive && d.started_at ? dur(now - d.started_at) : "–")}),
      el("span", {class: "muted", "data-ago": d.heartbeat_at, text: "heartbeat " + ago(d.heartbeat_at)}),
      el("span", {class: "muted", text: "queues " + (d.queues || []).join(", ")}),
      d.rss_bytes ? el("span", {class: "muted", text: "supervisor " + bytes(d.rss_bytes)}) : null);
    const div = el("div", {class: "daemon"}, head);
    if (d.alive) {
      const t = el("table", {class: "grid"}, el("thead", {}, el("tr", {}, el("th", {text: "Worker"}), el("th", {class: "n", text: "PID"}),
        el("th", {text: "State"}), el("th", {text: "Queue"}), el("th", {text: "Current job"}), el("th", {class: "n", text: "Running for"}),
        el("th", {class: "n", text: "Jobs done"}), el("th", {class: "n", text: "Memory"}))));
      const tb = el("tbody");
      for (const w of d.workers || []) {
        const busy = typeof w.job === "string";
        tb.append(el("tr", {}, el("td", {text: "#" + w.number}), el("td", {class: "n mono", text: w.pid}),
          el("td", {}, el("span", {class: "pill " + (busy ? "info" : ""), text: busy ? "busy" : "idle"})),
          el("td", {text: busy ? (w.queue || "") : ""}),
          el("td", {class: "mono cut", title: busy ? w.job : null}, busy ? el("a", {href: "#", text: w.job, onclick: (e) => { e.preventDefault(); lookup(w.job); }}) : "",
            busy && w.progress ? progressBar(w.progress) : null),
          el("td", {class: "n", text: busy ? dur(w.running_for) : ""}), el("td", {class: "n", text: num(w.jobs_done)}),
          el("td", {class: "n", text: w.rss_bytes ? bytes(w.rss_bytes) : "–"})));
      }
      t.append(tb);
      div.append(t);
    }
    box.append(div);
  }
}

function renderDead() {
  const box = $("dead"), d = state.dead;
  box.replaceChildren();
  if (!d) return;
  $("dead-total").textContent = d.total ? num(d.total) + " in total" + (d.total > d.entries.length ? ", newest " + d.entries.length + " shown" : "") : "";
  $("purge").disabled = !canWrite() || !d.total;
  if (!d.entries.length) { box.append(el("div", {class: "empty", text: "no dead jobs"})); return; }
  const t = el("table", {class: "grid", id: "dead-table"}, el("thead", {}, el("tr", {}, el("th", {text: "Failed"}), el("th", {text: "Queue"}),
    el("th", {text: "Job"}), el("th", {text: "Handler"}), el("th", {class: "n", text: "Attempts"}), el("th", {text: "Error"}), el("th"))));
  const tb = el("tbody");
  for (const e of d.entries) {
    let payload = e.payload ?? e.unreadable ?? (e.payload_base64 ? "(base64) " + e.payload_base64 : "");
    try { payload = JSON.stringify(JSON.parse(payload), null, 2); } catch (x) { /* shown as it is */ }
    const retry = el("button", {class: "small write", type: "button", text: "Retry", disabled: !canWrite() || !e.id,
      title: canWrite() ? "put it back on " + e.queue + " with fresh attempts" : "needs the token", "data-id": e.id,
      onclick: () => retryDead(e)});
    tb.append(el("tr", {"data-id": e.id || ""}, el("td", {class: "nowrap", "data-ago": e.failed_at, text: ago(e.failed_at), title: e.failed_at ? new Date(e.failed_at * 1000).toLocaleString() : null}),
      el("td", {text: e.queue}), el("td", {class: "mono cut", text: e.id || "–", title: e.id || null}), el("td", {text: e.handler || "–"}),
      el("td", {class: "n", text: num(e.attempts)}),
      el("td", {}, el("div", {class: "err", text: e.error || ""}),
        el("details", {class: "payload"}, el("summary", {text: "payload" + (e.payload_cut ? " (cut)" : "")}), el("pre", {text: payload}))),
      el("td", {}, retry)));
  }
  t.append(tb);
  box.append(t);
}

function renderAuth() {
  const writable = !!(state.snap && state.snap.writable);
  $("auth").hidden = !writable;
  $("readonly").hidden = !state.snap || writable;
  const on = canWrite();
  $("token").hidden = on; $("unlock").hidden = on; $("unlocked").hidden = !on; $("lock").hidden = !on;
  for (const b of document.querySelectorAll("button.write")) b.disabled = !on || b.id === "purge" && !(state.dead && state.dead.total);
}

function renderAll() {
  if (!state.snap) return;
  const s = state.snap;
  $("where").textContent = s.redis + "  ·  prefix " + s.prefix + "  ·  jobq " + s.version;
  renderCards(); renderQueues(); renderDaemons(); drawChart(); renderAuth();
}

function tick() {
  const live = state.lastOk && Date.now() - state.lastOk < 6000;
  $("dot").className = "dot " + (live ? "live" : state.lastOk ? "down" : "");
  $("updated").textContent = state.lastOk ? (live ? "live · updated " : "stale · updated ") + ago(state.lastOk / 1000) : "connecting…";
  for (const n of document.querySelectorAll("[data-ago]")) {
    const t = parseFloat(n.getAttribute("data-ago"));
    n.textContent = (n.textContent.startsWith("heartbeat") ? "heartbeat " : "") + ago(t);
  }
  const now = Date.now();
  state.evTimes = state.evTimes.filter((t) => now - t < 10000);
  $("ev-rate").textContent = state.evTimes.length ? (state.evTimes.length / 10).toFixed(1) + " events/s" : "";
}

// ---- loading ----

async function loadSnapshot() {
  try {
    const {data} = await api("api/snapshot");
    state.snap = data; state.lastOk = Date.now();
    renderAll();
  } catch (e) {
    $("updated").textContent = "error: " + e.message;
  }
}
async function loadHistory() {
  try {
    const {data} = await api("api/history");
    state.history = data.points; state.interval = data.interval;
    if (state.snap) { drawChart(); renderQueues(); }
  } catch (e) { /* the snapshot poll reports */ }
}
async function loadDead() {
  const q = $("dead-queue").value;
  try {
    const {data} = await api("api/dead?limit=50" + (q ? "&queue=" + encodeURIComponent(q) : ""));
    state.dead = data;
    renderDead(); renderAuth();
  } catch (e) { /* idem */ }
}

async function retryDead(e) {
  try {
    const {data} = await api("api/dead/retry", {write: true, body: {id: e.id, queue: e.queue}});
    toast("retrying " + data.retried + " on " + data.queue);
  } catch (x) { toast("retry failed: " + x.message, true); }
  loadDead(); loadSnapshot();
}

async function purge() {
  const q = $("dead-queue").value, b = $("purge");
  if (Date.now() - state.purgeArmed > 4000) {
    state.purgeArmed = Date.now();
    b.textContent = "Really purge " + num(state.dead ? state.dead.total : 0) + (q ? " of " + q : "") + "?";
    setTimeout(() => { if (Date.now() - state.purgeArmed >= 4000) b.textContent = "Purge…"; }, 4100);
    return;
  }
  state.purgeArmed = 0;
  b.textContent = "Purge…";
  try {
    const {data} = await api("api/dead/purge", {write: true, body: q ? {queue: q} : {all: true}});
    toast("removed " + num(data.removed) + " dead job(s)");
  } catch (x) { toast("purge failed: " + x.message, true); }
  loadDead(); loadSnapshot();
}

async function lookup(id) {
  id = (id || $("job-id").value).trim();
  $("job-id").value = id;
  const box = $("job");
  box.replaceChildren();
  if (!id) return;
  try {
    const {data} = await api("api/job/" + encodeURIComponent(id), {allow: [404]});
    const st = data.state, cls = {finished: data.result && data.result.status === "ok" ? "ok" : "bad", running: "info", waiting: "warn", scheduled: "warn", parked: "warn"}[st] || "";
    const kv = el("dl", {class: "kv"}, el("dt", {text: "job"}), el("dd", {class: "mono", text: data.id}),
      el("dt", {text: "state"}), el("dd", {}, el("span", {class: "pill " + cls, text: st === "finished" ? "finished: " + data.result.status : st === "unknown" ? "not found" : st})));
    if (data.queue) kv.append(el("dt", {text: "queue"}), el("dd", {text: data.queue}));
    if (data.daemon) kv.append(el("dt", {text: "daemon"}), el("dd", {class: "mono", text: data.daemon}));
    const r = data.result;
    if (r) {
      if (r.finished_at) kv.append(el("dt", {text: "finished"}), el("dd", {text: ago(r.finished_at) + (r.started_at ? ", ran " + dur(r.finished_at - r.started_at) : "")}));
      if (r.attempts) kv.append(el("dt", {text: "attempts"}), el("dd", {text: r.attempts}));
      if (r.error) kv.append(el("dt", {text: "error"}), el("dd", {class: "err", text: r.error}));
    }
    if (st === "unknown") kv.append(el("dt"), el("dd", {class: "muted", text: "no result (never run, or expired) and not queued, parked or running"}));
    box.append(kv);
    if (r) box.append(el("pre", {text: JSON.stringify(r.result, null, 2)}));
    else if (data.payload) box.append(el("pre", {text: JSON.stringify(data.payload, null, 2)}));
    if (data.payload && st === "parked" && Array.isArray(data.payload.depends_on))
      kv.append(el("dt", {text: "depends on"}), el("dd", {class: "mono", text: data.payload.depends_on.join(", ")}));
    if (["waiting", "scheduled", "parked", "running"].includes(st)) {
      box.append(el("button", {class: "small danger write", type: "button", text: "Cancel job", disabled: !canWrite(),
        title: canWrite() ? null : "needs the token", onclick: async () => {
          try {
            const res = await api("api/job/" + encodeURIComponent(id) + "/cancel", {write: true, body: {}});
            toast(res.data.cancelled === "removed" ? "cancelled " + id : "asked its daemon to stop " + id);
          } catch (x) { toast("cancel failed: " + x.message, true); }
          setTimeout(() => lookup(id), 500);
        }}));
    }
  } catch (e) {
    box.append(el("div", {class: "err", text: e.message}));
  }
}

// ---- live events ----

const evClass = {ok: "ok", failed: "bad", dead: "bad", retrying: "warn", cancelled: "warn", started: "info", queued: "info", progress: "info"};
function addEvent(ev) {
  state.evTimes.push(Date.now());
  if (state.paused) return;
  const what = [ev.queue, ev.handler, ev.id].filter(Boolean).join(" · ") + (ev.error ? " — " + ev.error : "");
  const li = el("li", {class: "fresh"}, el("span", {class: "when", "data-ago": ev.time || Date.now() / 1000, text: ago(ev.time)}),
    el("span", {}, el("span", {class: "pill " + (evClass[ev.event] || ""), text: ev.event || "?"})),
    el("span", {class: "what" + (ev.error ? " err" : ""), text: what, title: what}));
  const list = $("events");
  $("ev-empty").hidden = true;
  list.prepend(li);
  while (list.children.length > 100) list.lastChild.remove();
}
function follow() {
  const es = new EventSource("api/events");
  es.onmessage = (m) => { try { addEvent(JSON.parse(m.data)); } catch (e) { /* not an event */ } };
}

// ---- start ----

document.addEventListener("DOMContentLoaded", () => {
  $("auth").addEventListener("submit", async (e) => {
    e.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    state.token = t;
    try {
      await api("api/auth", {write: true, body: {}});
      setToken(t);
      $("token").value = "";
      toast("write actions enabled");
      renderDead();
    } catch (x) { setToken(""); toast("token refused: " + x.message, true); }
  });
  $("lock").addEventListener("click", () => { setToken(""); renderDead(); });
  $("purge").addEventListener("click", purge);
  $("dead-queue").addEventListener("change", loadDead);
  $("lookup").addEventListener("submit", (e) => { e.preventDefault(); lookup(); });
  $("ev-pause").addEventListener("click", () => { state.paused = !state.paused; $("ev-pause").textContent = state.paused ? "resume" : "pause"; });
  window.addEventListener("resize", () => state.snap && drawChart());
  $("foot").textContent = "jobq web · refreshes every 2 s · times are relative to this browser's clock";
  loadSnapshot(); loadHistory(); loadDead(); follow();
  setInterval(loadSnapshot, 2000);
  setInterval(loadHistory, 5000);
  setInterval(loadDead, 5000);
  setInterval(tick, 1000);
});

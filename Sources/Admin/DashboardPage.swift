/// The live dashboard served at `GET /` on the admin port: one self-contained page (HTML,
/// CSS and JavaScript inline; no external resource, so it works offline and behind any
/// firewall). It holds no data: once a second it polls `GET /status`, `GET /series` and
/// `GET /events?after=N` (and `GET /comparisons` every third second) with the bearer token
/// the operator typed, kept in the tab's sessionStorage only.
///
/// Hooks for tests: cluster rows are `tr[data-cluster=UUID]`, a rollout's panel is
/// `[data-rollout=UUID]` with its percentage in `.percent`, the buttons are
/// `button[data-command=pause|resume|promote|rollback][data-cluster=UUID]`, the
/// confirmation's button is `#confirm-yes`, the token form `#token-form`.
enum DashboardPage {
    /// The page as a response (built once).
    static let response = AdminResponse(status: 200, contentType: "text/html; charset=utf-8", body: Array(html.utf8),
                                        extraHeaders: ["Cache-Control: no-store",
                                                       "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'"])

    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Switchyard</title>
<style>
:root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --dim:#6b7385; --line:#e2e5eb; --ok:#1a7f37; --bad:#c62828; --warn:#b26a00; --accent:#2f5bd3; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--ink); }
header { display:flex; align-items:center; gap:16px; padding:10px 20px; background:#1d2330; color:#fff; }
header h1 { font-size:17px; margin:0; font-weight:600; }
header .meta { color:#b8bfce; font-size:12px; }
header .live { margin-left:auto; font-size:12px; }
.dot { display:inline-block; width:8px; height:8px; border-radius:50%; background:#888; margin-right:6px; }
.dot.on { background:#3ddc84; } .dot.off { background:#e05050; }
main { padding:16px 20px; display:grid; gap:16px; }
section.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
h2 { font-size:15px; margin:0 0 8px; } h3 { font-size:13px; margin:12px 0 6px; color:var(--dim); text-transform:uppercase; letter-spacing:.04em; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--dim); font-weight:500; } td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size:12px; }
.badge { display:inline-block; padding:1px 7px; border-radius:10px; font-size:12px; background:#e8ebf1; }
.badge.active, .badge.up, .badge.completed, .badge.progressing { background:#dcf3e3; color:var(--ok); }
.badge.failed, .badge.down, .badge.rolledBack { background:#fbe0e0; color:var(--bad); }
.badge.pending, .badge.paused, .badge.drained { background:#fdf0d8; color:var(--warn); }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:6px; vertical-align:middle; }
.charts { display:grid; grid-template-columns:repeat(auto-fill, minmax(260px, 1fr)); gap:12px; }
.chart { border:1px solid var(--line); border-radius:6px; padding:6px 8px; }
.chart .title { font-size:12px; color:var(--dim); display:flex; justify-content:space-between; }
.chart svg { width:100%; height:80px; display:block; }
.rollouts:not(:empty)::before { content:"Rollout"; display:block; font-size:13px; margin:12px 0 6px; color:var(--dim); text-transform:uppercase; letter-spacing:.04em; }
.rollout { border:1px solid var(--line); border-radius:6px; padding:8px 12px; margin-top:8px; }
.rollout .head { display:flex; flex-wrap:wrap; gap:14px; align-items:center; }
.rollout .percent { font-size:20px; font-weight:600; }
.bar { height:6px; background:#e8ebf1; border-radius:3px; overflow:hidden; margin:6px 0; }
.bar > div { height:100%; background:var(--accent); }
.gate.fail td { color:var(--bad); }
button { font:inherit; padding:4px 12px; border-radius:5px; border:1px solid #c3c9d5; background:#fff; cursor:pointer; }
button:hover:not(:disabled) { background:#eef1f7; } button:disabled { opacity:.45; cursor:default; }
button.danger { border-color:#e6a5a5; color:var(--bad); }
.buttons { display:flex; gap:8px; margin-top:8px; }
#confirm { position:fixed; left:50%; top:16px; transform:translateX(-50%); background:#fff; border:1px solid #c3c9d5; border-radius:8px; padding:12px 16px; box-shadow:0 6px 24px rgba(0,0,0,.15); display:none; z-index:2; }
#confirm.open { display:block; } #confirm .buttons { justify-content:flex-end; }
#token-form { display:none; gap:8px; align-items:center; }
#token-form.open { display:flex; }
#message { font-size:12px; color:var(--dim); }
#message.error { color:var(--bad); }
.events li { list-style:none; padding:3px 0; border-bottom:1px solid var(--line); font-size:13px; }
.events ul { margin:0; padding:0; max-height:320px; overflow:auto; }
.events .kind { display:inline-block; min-width:150px; }
.diff { color:var(--bad); } .same { color:var(--ok); }
.empty { color:var(--dim); font-style:italic; }
</style>
</head>
<body>
<header>
  <h1>Switchyard</h1>
  <span class="meta" id="meta">connecting…</span>
  <form id="token-form"><label for="token">API token</label> <input id="token" type="password" autocomplete="off" size="24"> <button type="submit">Use</button></form>
  <span class="live"><span class="dot" id="dot"></span><span id="live">waiting</span></span>
</header>
<div id="confirm" role="dialog"><div id="confirm-text"></div><div class="buttons"><button id="confirm-no" type="button">Cancel</button><button id="confirm-yes" type="button" class="danger">Confirm</button></div></div>
<main>
  <div id="services"></div><div id="no-clusters"></div>
  <section class="card"><h2>Newest CONCURRENT comparisons</h2><div id="comparisons" class="empty">none yet</div></section>
  <section class="card events"><h2>Events</h2><ul id="events"><li class="empty">none yet</li></ul></section>
  <div id="message"></div>
</main>
<script>
"use strict";
const SERIES_SECONDS = 300;
const palette = ["#2f5bd3", "#e8590c", "#2b8a3e", "#ae3ec9", "#0b7285", "#c92a2a", "#5f3dc4", "#a07c00"];
const view = { token: sessionStorage.getItem("switchyard-token") || "", status: null, series: {}, seriesNow: 0,
               seriesLoaded: false, events: [], lastEvent: 0, comparisons: null, polls: 0, colors: {}, pending: null };

function esc(v) {
  return String(v).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function fmt(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return Number(v).toFixed(digits === undefined ? 1 : digits);
}
function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000)), m = Math.floor(s / 60);
  return m > 0 ? m + " min " + (s % 60) + " s" : s + " s";
}
function color(uuid) {
  if (!(uuid in view.colors)) view.colors[uuid] = palette[Object.keys(view.colors).length % palette.length];
  return view.colors[uuid];
}
function say(text, isError) {
  const m = document.getElementById("message");
  m.textContent = text; m.className = isError ? "error" : "";
}

class NeedToken extends Error {}

/// Replaces an element's content only when it changed, so that what the operator points at
/// (a button mid-click, a hovered chip) stays in place between polls.
const shown = new WeakMap();
function setHTML(element, html) {
  if (shown.get(element) === html) return;
  element.innerHTML = html;
  shown.set(element, html);
}
/// The child of `parent` with `attribute` = `key`, made with `make` when missing.
function keyed(parent, tag, attribute, key, make) {
  for (const child of parent.children) if (child.getAttribute(attribute) === key) return child;
  const element = document.createElement(tag);
  element.setAttribute(attribute, key);
  make(element, key);
  parent.appendChild(element);
  return element;
}
function skeleton(section, name) {
  section.className = "card service";
  section.innerHTML = "<h2>Service " + esc(name) + '</h2><div class="clusters"></div><div class="rollouts"></div>' +
    '<h3>Last 5 minutes</h3><div class="charts"></div>';
}

/// One API call with the token; a 401 opens the token form.
async function call(path, method) {
  const headers = {};
  if (view.token) headers["Authorization"] = "Bearer " + view.token;
  const response = await fetch(path, { method: method || "GET", headers, cache: "no-store" });
  if (response.status === 401) {
    document.getElementById("token-form").classList.add("open");
    throw new NeedToken("the API wants a token");
  }
  return response;
}
async function getJSON(path) {
  const response = await call(path);
  if (!response.ok) throw new Error(path + ": " + response.status + " " + (await response.text()));
  return response.json();
}

/// Adds fetched points to the kept series (by cluster, by second) and drops points older
/// than five minutes.
function mergeSeries(data) {
  view.seriesNow = data.now;
  for (const [uuid, entry] of Object.entries(data.clusters)) {
    const kept = view.series[uuid] || { version: entry.version, points: new Map() };
    kept.version = entry.version;
    for (const p of entry.points) kept.points.set(p[0], p);
    view.series[uuid] = kept;
  }
  for (const [uuid, entry] of Object.entries(view.series)) {
    for (const second of entry.points.keys()) if (second <= data.now - SERIES_SECONDS) entry.points.delete(second);
    if (entry.points.size === 0) delete view.series[uuid];
  }
}

async function poll() {
  try {
    const seconds = view.seriesLoaded ? 10 : SERIES_SECONDS;
    const wantComparisons = view.polls % 3 === 0;
    const [status, series, events, comparisons] = await Promise.all([
      getJSON("/status"), getJSON("/series?seconds=" + seconds), getJSON("/events?after=" + view.lastEvent),
      wantComparisons ? getJSON("/comparisons") : Promise.resolve(null)]);
    view.status = status;
    mergeSeries(series);
    view.seriesLoaded = true;
    view.events = view.events.concat(events.events).slice(-200);
    view.lastEvent = events.next;
    if (comparisons) view.comparisons = comparisons;
    view.polls++;
    document.getElementById("dot").className = "dot on";
    document.getElementById("live").textContent = "live · " + new Date().toLocaleTimeString();
    render();
  } catch (error) {
    document.getElementById("dot").className = "dot off";
    document.getElementById("live").textContent = error instanceof NeedToken ? "token needed" : "no answer";
    if (!(error instanceof NeedToken)) say(String(error.message || error), true);
  }
  setTimeout(poll, 1000);
}

/// Per cluster over the last `seconds` seconds: requests, errors and the latest latencies.
function recent(uuid, seconds) {
  const entry = view.series[uuid];
  const out = { requests: 0, errors: 0, p50: null, p99: null };
  if (!entry) return out;
  for (const p of entry.points.values()) {
    if (p[0] <= view.seriesNow - seconds) continue;
    out.requests += p[1]; out.errors += p[2];
    if (p[3] !== null) { out.p50 = p[3]; out.p99 = p[4]; }
  }
  return out;
}

function render() {
  const status = view.status;
  document.getElementById("meta").textContent = "generation " + status.generation + " · " + status.workers + " workers · up " +
    duration(status.uptimeSeconds * 1000) + (status.durableState ? " · durable state" : " · state in memory");
  // Clusters are grouped by service; a proxy without services has one, "default".
  const services = new Map();
  for (const c of status.clusters) {
    const name = c.service || "default";
    if (!services.has(name)) services.set(name, []);
    services.get(name).push(c);
  }
  const root = document.getElementById("services");
  for (const [name, clusters] of services) renderService(keyed(root, "section", "data-service", name, skeleton), clusters);
  for (const section of [...root.children]) if (!services.has(section.dataset.service)) section.remove();
  setHTML(document.getElementById("no-clusters"), services.size === 0 ? '<section class="card"><h2>No clusters</h2></section>' : "");
  renderComparisons();
  renderEvents();
}

function renderService(section, clusters) {
  const windows = clusters.map(c => recent(c.uuid, 10));
  const total = windows.reduce((n, w) => n + w.requests, 0);
  let rows = "";
  clusters.forEach((c, i) => {
    const w = windows[i];
    const backends = Object.entries(c.backends || {}).map(([server, b]) =>
      '<span class="badge ' + esc(b.status) + '" title="' + esc(server + ": " + b.status) + '">' + esc(server) + " " + esc(b.status) + "</span>").join(" ");
    rows += '<tr data-cluster="' + esc(c.uuid) + '"><td><span class="swatch" style="background:' + color(c.uuid) + '"></span>' + esc(c.version) +
      '</td><td><code>' + esc(c.uuid) + "</code></td><td>" + esc(c.mode) + '</td><td><span class="badge ' + esc(c.state) + '">' + esc(c.state) +
      "</span>" + (c.failure ? '<div class="diff">' + esc(c.failure.reason) + "</div>" : "") + "</td><td>" + backends +
      '</td><td class="num split">' + (total > 0 ? fmt(100 * w.requests / total) + " %" : "–") + '</td><td class="num">' + fmt(w.requests / 10) +
      '</td><td class="num">' + (w.requests > 0 ? fmt(100 * w.errors / w.requests, 2) + " %" : "–") + '</td><td class="num">' + fmt(w.p50, 2) +
      '</td><td class="num">' + fmt(w.p99, 2) + "</td></tr>";
  });
  setHTML(section.querySelector(".clusters"), "<table><thead><tr><th>version</th><th>uuid</th><th>mode</th><th>state</th><th>backends</th>" +
    "<th class=num>traffic (10 s)</th><th class=num>req/s</th><th class=num>errors</th><th class=num>p50 ms</th><th class=num>p99 ms</th></tr></thead><tbody>" +
    rows + "</tbody></table>");
  const rollouts = section.querySelector(".rollouts");
  const planned = clusters.filter(c => c.rollout);
  for (const c of planned) renderRollout(keyed(rollouts, "div", "data-rollout", c.uuid, panel), c);
  for (const child of [...rollouts.children]) if (!planned.some(c => c.uuid === child.dataset.rollout)) child.remove();
  const charts = [
    ["requests / s", p => p[1]], ["error ratio %", p => p[1] > 0 ? 100 * p[2] / p[1] : null],
    ["p50 ms", p => p[3]], ["p99 ms", p => p[4]],
  ].map(([title, value]) => renderChart(title, clusters, value)).join("");
  setHTML(section.querySelector(".charts"), charts);
}

function panel(element) {
  element.className = "rollout";
  element.innerHTML = '<div class="head"></div><div class="bar"><div></div></div><div class="gates"></div><div class="buttons"></div>';
}

function renderRollout(element, c) {
  const r = c.rollout;
  const percent = r.percent === undefined ? null : r.percent;
  const inStep = r.stepStarted ? duration(Date.now() - Date.parse(r.stepStarted)) : "–";
  const stepText = r.steps > 0 ? (r.step ? "step " + r.step + " of " + r.steps : "not started") : "gates only";
  let gates = "";
  for (const [name, g] of Object.entries(r.gates || {})) {
    const failing = g.value !== null && g.value > g.limit;
    gates += '<tr class="gate' + (failing ? " fail" : "") + '"><td>' + esc(name) + '</td><td class="num">' + fmt(g.value, 3) +
      '</td><td class="num">' + fmt(g.limit, 3) + "</td><td>" + (g.value === null ? "no data" : failing ? "above limit" : "within") + "</td></tr>";
  }
  const can = { pause: r.state === "progressing", resume: r.state === "paused",
                promote: r.state === "progressing" || r.state === "paused" || r.state === "pending",
                rollback: r.state !== "rolledBack" };
  const buttons = ["pause", "resume", "promote", "rollback"].map(cmd =>
    '<button type="button" data-command="' + cmd + '" data-cluster="' + esc(c.uuid) + '" data-version="' + esc(c.version) + '"' +
    (cmd === "rollback" ? ' class="danger"' : "") + (can[cmd] ? "" : " disabled") + ">" + cmd + "</button>").join("");
  element.dataset.state = r.state;
  setHTML(element.querySelector(".head"), '<span class="swatch" style="background:' + color(c.uuid) + '"></span><strong>' + esc(c.version) +
    '</strong><span class="badge ' + esc(r.state) + '">' + esc(r.state) + "</span><span>" + stepText + '</span><span class="percent">' +
    (percent === null ? "–" : fmt(percent) + " %") + "</span><span>" + inStep + " in step</span>" +
    (r.requests ? "<span>window: " + r.requests.new + " new / " + r.requests.old + " old requests</span>" : "") +
    (r.reason ? '<span class="diff">' + esc(r.reason) + "</span>" : ""));
  element.querySelector(".bar > div").style.width = (percent || 0) + "%";
  setHTML(element.querySelector(".gates"), gates ? "<table><thead><tr><th>gate</th><th class=num>value</th><th class=num>limit</th><th></th></tr></thead><tbody>" +
    gates + "</tbody></table>" : "");
  setHTML(element.querySelector(".buttons"), buttons);
}

/// A small line chart: one line per cluster over the last five minutes.
function renderChart(title, clusters, value) {
  const width = 300, height = 80, from = view.seriesNow - SERIES_SECONDS;
  let max = 0;
  const lines = [];
  for (const c of clusters) {
    const entry = view.series[c.uuid];
    if (!entry) continue;
    const points = [...entry.points.values()].sort((a, b) => a[0] - b[0]).map(p => [p[0], value(p)]).filter(p => p[1] !== null);
    for (const p of points) max = Math.max(max, p[1]);
    lines.push([c.uuid, points]);
  }
  const top = max > 0 ? max * 1.1 : 1;
  let paths = "";
  for (const [uuid, points] of lines) {
    if (points.length === 0) continue;
    const d = points.map(p => ((p[0] - from) / SERIES_SECONDS * width).toFixed(1) + "," + (height - p[1] / top * (height - 4)).toFixed(1)).join(" ");
    paths += '<polyline fill="none" stroke-width="1.5" stroke="' + color(uuid) + '" points="' + d + '"/>';
  }
  return '<div class="chart"><div class="title"><span>' + esc(title) + "</span><span>max " + fmt(max, 2) + '</span></div><svg viewBox="0 0 ' + width + " " + height +
    '" preserveAspectRatio="none"><line x1="0" y1="' + height + '" x2="' + width + '" y2="' + height + '" stroke="#e2e5eb"/>' + paths +
    '</svg><div class="title"><span>−5 min</span><span>now</span></div></div>';
}

function renderComparisons() {
  const c = view.comparisons;
  if (!c) return;
  const box = document.getElementById("comparisons");
  if (c.recent.length === 0) { box.className = "empty"; box.textContent = "none yet"; return; }
  box.className = "";
  let rows = "";
  for (const r of c.recent.slice(0, 10)) {
    const what = [];
    if (r.status[0] !== r.status[1]) what.push("status " + r.status[0] + " → " + r.status[1]);
    if (r.framing[0] !== r.framing[1]) what.push("framing " + r.framing[0] + " → " + r.framing[1]);
    if (r.headerDifferences.length) what.push("headers: " + r.headerDifferences.join(", "));
    if (!r.bodyIgnored && !r.bodyDigestEqual) what.push("body differs" + (r.firstDifferenceOffset !== null ? " at byte " + r.firstDifferenceOffset : ""));
    if (r.bodyNotCompared) what.push("body not compared: " + r.bodyNotCompared);
    rows += "<tr><td>" + esc(r.time.slice(11, 19)) + "</td><td><code>" + esc(r.method + " " + r.target) + "</code></td><td>" +
      esc(r.clusters.old + " → " + r.clusters.new) + '</td><td class="' + (r.divergent ? "diff" : "same") + '">' +
      (what.length ? esc(what.join("; ")) : "same") + '</td><td class="num">' + fmt(r.latencyMs[0], 2) + " / " + fmt(r.latencyMs[1], 2) + "</td></tr>";
  }
  box.innerHTML = "<p>" + c.total + " compared, " + c.divergent + " divergent, " + c.fallbacks + " fallbacks</p>" +
    "<table><thead><tr><th>time</th><th>request</th><th>old → new</th><th>what differed</th><th class=num>ms old / new</th></tr></thead><tbody>" +
    rows + "</tbody></table>";
}

function renderEvents() {
  const list = document.getElementById("events");
  if (view.events.length === 0) return;
  list.innerHTML = view.events.slice(-50).reverse().map(e =>
    '<li data-event="' + esc(e.kind) + '"><span class="mono">' + esc(e.time.slice(11, 19)) + '</span> <span class="kind">' + esc(e.kind.replace(/_/g, " ")) +
    "</span> " + esc(e.version) + " <code>" + esc(e.cluster) + "</code> " + esc(e.detail) + "</li>").join("");
}

// Buttons: a confirmation, then the API call.
document.addEventListener("click", event => {
  const button = event.target.closest("button[data-command]");
  if (!button || button.disabled) return;
  view.pending = { command: button.dataset.command, cluster: button.dataset.cluster };
  document.getElementById("confirm-text").textContent =
    button.dataset.command + " the rollout of " + button.dataset.version + " (" + button.dataset.cluster + ")?";
  document.getElementById("confirm").classList.add("open");
});
document.getElementById("confirm-no").addEventListener("click", () => {
  view.pending = null;
  document.getElementById("confirm").classList.remove("open");
});
document.getElementById("confirm-yes").addEventListener("click", async () => {
  const pending = view.pending;
  view.pending = null;
  document.getElementById("confirm").classList.remove("open");
  if (!pending) return;
  try {
    const response = await call("/configuration/cluster/" + encodeURIComponent(pending.cluster) + "/" + pending.command, "POST");
    const text = (await response.text()).trim();
    say(pending.command + " " + pending.cluster + ": " + (response.ok ? "done" : response.status + " " + text), !response.ok);
  } catch (error) {
    say(pending.command + ": " + (error.message || error), true);
  }
});
document.getElementById("token-form").addEventListener("submit", event => {
  event.preventDefault();
  view.token = document.getElementById("token").value.trim();
  sessionStorage.setItem("switchyard-token", view.token);
  document.getElementById("token-form").classList.remove("open");
  say("");
});
poll();
</script>
</body>
</html>
"""#
}

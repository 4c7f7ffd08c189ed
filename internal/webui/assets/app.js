// The dashboard: it reads the peer's built-in resources over JSTP through
// the WebSocket gateway (jstp.js), every two seconds, and sends what the
// user types. Everything from the network is written into the page as
// text, never as markup.

import { connect, answerInfo, endpointText, kindOf } from "./jstp.js";

const POLL_MS = 2000;
const SPARK_POINTS = 60;
const MAX_EVENTS = 200;
const MAX_HISTORY = 20;
const DIMS = ["cpu", "ram", "disk", "net"];

const $ = (id) => document.getElementById(id);

const state = {
  config: null,
  client: null,
  spark: new Map(), // peer id -> recent loads (1 - headroom)
  bindings: [], // {spec: {endpoint, host, answer}, binding, error}
  history: [],
};

// el builds an element; children are nodes or text.
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = dv;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function show(id, text) {
  const e = $(id);
  e.textContent = text ?? "";
  e.hidden = !text;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function short(id) {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id;
}

function pct(x) {
  return typeof x === "number" ? `${Math.round(x * 100)}%` : "—";
}

function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function json(v) {
  return v === undefined ? "" : JSON.stringify(v, null, 2);
}

async function api(path, body) {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const res = await fetch(path, init);
  let doc;
  try {
    doc = await res.json();
  } catch {
    throw new Error(`${path}: ${res.status} ${res.statusText}`);
  }
  if (!res.ok) throw new Error(doc.error ?? `${path}: ${res.status}`);
  return doc;
}

// ---------------------------------------------------------------------
// Connection

function setStatus(s, text) {
  const e = $("status");
  e.dataset.state = s;
  e.textContent = text ?? s;
}

async function run() {
  let delay = 500;
  for (;;) {
    setStatus("connecting", "connecting…");
    try {
      const c = await connect(state.config.gateway);
      delay = 500;
      state.client = c;
      setStatus("connected");
      c.addEventListener("dispatch", (e) => logEvent(e.detail, null));
      await rebind(c);
      poll(c);
      const info = await c.closed;
      state.client = null;
      setStatus("disconnected", `disconnected (${info.code}); reconnecting`);
      renderBindings();
    } catch (err) {
      setStatus("disconnected", "disconnected");
      show("poll-error", err.message);
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 10000);
  }
}

async function poll(c) {
  while (c.open) {
    try {
      await refresh(c);
      show("poll-error", "");
    } catch (err) {
      if (c.open) show("poll-error", err.message);
    }
    await sleep(POLL_MS);
  }
}

async function get(c, resource) {
  const [a] = await c.request({ method: "GET", resource }, { timeout: 5000 }).all();
  const code = a ? answerInfo(a)[0] : 0;
  if (code !== 200) throw new Error(`GET /${resource.join("/")}: ${code || "no answer"} ${a?.body === undefined ? "" : JSON.stringify(a.body)}`);
  return a.body;
}

async function refresh(c) {
  const [peer, peers, sat, subs, recent] = await Promise.all([
    get(c, ["peer"]),
    get(c, ["peers"]),
    get(c, ["saturation"]),
    get(c, ["subscriptions"]),
    // Served only by peers that keep them (up --ui does).
    get(c, ["dispatches"]).catch(() => null),
  ]);
  renderPeer(peer);
  renderPeers(peers ?? []);
  renderSaturation(sat);
  renderServices(sat);
  renderSubscriptions(subs ?? []);
  renderRecent(recent);
}

function renderRecent(list) {
  $("recent-card").hidden = list === null;
  $("recent").tBodies[0].replaceChildren(
    ...(list ?? []).map((d) =>
      el(
        "tr",
        {},
        el("td", {}, new Date(d.ts).toLocaleTimeString()),
        el("td", { class: "mono" }, `${d.method} /${d.resource.join("/")}`),
        el("td", { class: "mono", title: d.from }, short(d.from)),
        el("td", { class: "mono", title: d.author ?? "" }, d.author ? short(d.author) : ""),
      ),
    ),
  );
}

// ---------------------------------------------------------------------
// The views

function renderPeer(p) {
  $("peer-id").textContent = p.id;
  $("peer-version").textContent = `${p.version} (${p.protocol})`;
  $("peer-uptime").textContent = duration(p.uptimeMs);
  const dl = $("engine-stats");
  const rows = [];
  for (const [k, v] of Object.entries(p.stats ?? {})) {
    if (v && typeof v === "object") {
      for (const [dk, dv] of Object.entries(v)) rows.push(el("dt", {}, `${k}.${dk}`), el("dd", {}, dv));
    } else {
      rows.push(el("dt", {}, k), el("dd", {}, v));
    }
  }
  dl.replaceChildren(...rows);
}

function renderPeers(peers) {
  $("peers-count").textContent = `(${peers.length})`;
  $("peers-empty").hidden = peers.length > 0;
  $("peers").tBodies[0].replaceChildren(
    ...peers.map((p) =>
      el(
        "tr",
        { data: { peer: p.id } },
        el("td", { class: "peer id", title: p.id }, p.id),
        el("td", {}, p.agent || "—"),
        el("td", { class: "mono", title: (p.addrs ?? []).join("\n") }, (p.addrs ?? [])[0] ?? "—"),
        el("td", { class: "num latency" }, p.latencyMs > 0 ? `${p.latencyMs.toFixed(p.latencyMs < 10 ? 2 : 0)} ms` : "—"),
        el("td", {}, p.inbound ? "by them" : "by us"),
      ),
    ),
  );
}

function reportsOf(sat) {
  if (!sat) return [];
  return [{ ...sat.self, self: true, ageMs: 0 }, ...(sat.peers ?? [])];
}

function renderSaturation(sat) {
  const reports = reportsOf(sat);
  const replica = state.config.replica;
  document.querySelector("#saturation .replica-col").hidden = !replica;
  const seen = new Set();
  const rows = reports.map((r) => {
    seen.add(r.peer);
    const load = 1 - (r.headroom ?? 1);
    const hist = state.spark.get(r.peer) ?? [];
    hist.push(load);
    if (hist.length > SPARK_POINTS) hist.shift();
    state.spark.set(r.peer, hist);
    const others = Object.entries(r.sat ?? {})
      .filter(([k]) => !DIMS.includes(k))
      .map(([k, v]) => `${k} ${pct(v)}`)
      .join(", ");
    return el(
      "tr",
      { data: { peer: r.peer, level: r.level } },
      el("td", { class: "peer id", title: r.peer }, r.peer, r.self ? el("span", { class: "self" }, "this peer") : null),
      el("td", {}, el("span", { class: `level level-${r.level}` }, r.level)),
      el("td", { class: "num headroom" }, pct(r.headroom)),
      ...DIMS.map((d) => el("td", { class: `num dim-${d}` }, pct(r.sat?.[d]))),
      el("td", {}, others || "—"),
      el("td", { class: "num" }, r.rif ?? 0),
      el("td", {}, sparkline(hist)),
      el("td", { class: "num" }, r.self ? "now" : `${(r.ageMs / 1000).toFixed(0)} s`),
      replica ? el("td", {}, el("button", { type: "button", class: "secondary replica", onclick: () => addReplica(r.peer) }, "Add a replica")) : null,
    );
  });
  for (const id of state.spark.keys()) if (!seen.has(id)) state.spark.delete(id);
  $("saturation").tBodies[0].replaceChildren(...rows);
}

function sparkline(values) {
  const NS = "http://www.w3.org/2000/svg";
  const w = 120;
  const h = 24;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const title = document.createElementNS(NS, "title");
  title.textContent = `load now ${pct(values.at(-1))}, highest shown ${pct(Math.max(...values))}`;
  svg.append(title);
  // The warning threshold, for scale.
  const warn = document.createElementNS(NS, "line");
  const wy = (h - 1 - 0.8 * (h - 2)).toFixed(1);
  warn.setAttribute("x1", "0");
  warn.setAttribute("x2", String(w));
  warn.setAttribute("y1", wy);
  warn.setAttribute("y2", wy);
  svg.append(warn);
  const step = w / (SPARK_POINTS - 1);
  const x0 = w - step * (values.length - 1);
  const pts = values.map((v, i) => `${(x0 + i * step).toFixed(1)},${(h - 1 - Math.min(1, Math.max(0, v)) * (h - 2)).toFixed(1)}`);
  if (pts.length === 1) pts.push(`${w},${pts[0].split(",")[1]}`);
  const line = document.createElementNS(NS, "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.append(line);
  return svg;
}

function renderServices(sat) {
  const names = new Map();
  for (const r of reportsOf(sat)) {
    for (const n of r.names ?? []) {
      if (!names.has(n)) names.set(n, []);
      names.get(n).push(r);
    }
  }
  const sorted = [...names.keys()].sort();
  $("services-empty").hidden = sorted.length > 0;
  $("services").tBodies[0].replaceChildren(
    ...sorted.map((n) =>
      el(
        "tr",
        { data: { service: n } },
        el("td", { class: "mono" }, n),
        el(
          "td",
          {},
          ...names.get(n).map((r) =>
            el("div", { class: "replica-of", title: r.peer }, el("span", { class: "id" }, short(r.peer)), " ", el("span", { class: `level level-${r.level}` }, `${pct(r.headroom)} free`)),
          ),
        ),
      ),
    ),
  );
}

function renderSubscriptions(subs) {
  $("subscriptions").tBodies[0].replaceChildren(
    ...subs.map((s) =>
      el(
        "tr",
        {},
        el("td", { class: "mono" }, endpointText(s)),
        el("td", { class: "mono", title: s.owner }, s.owner),
        el("td", { class: "num" }, s.queued),
        el("td", { class: "num" }, s.handled),
        el("td", { class: "num" }, s.dropped),
      ),
    ),
  );
}

async function addReplica(peer) {
  show("replica-result", `Adding a replica for ${short(peer)}…`);
  try {
    await api("/api/replica", { peer });
    show("replica-result", `The replica action ran for ${peer}.`);
  } catch (err) {
    show("replica-result", `The replica action failed: ${err.message}`);
  }
}

// ---------------------------------------------------------------------
// Sending

function answerItem(a) {
  const [code, , trig] = answerInfo(a);
  const cls = code >= 200 && code < 300 ? "ok" : code < 200 ? "info" : "err";
  return el(
    "li",
    { class: "answer", data: { code: String(code) } },
    el("span", { class: `code ${cls}` }, code),
    el("span", { class: "meta" }, trig ? `from ${short(trig)}` : "for the whole transaction"),
    a.body === undefined ? null : el("pre", {}, json(a.body)),
  );
}

async function send(ev) {
  ev.preventDefault();
  const text = $("send-text").value;
  show("send-error", "");
  const c = state.client;
  if (!c) {
    show("send-error", "Not connected to the peer.");
    return;
  }
  let d;
  try {
    d = (await api("/api/parse", { text })).dispatch;
  } catch (err) {
    show("send-error", err.message);
    return;
  }
  remember(text);
  const list = $("answers");
  list.replaceChildren();
  const kind = kindOf(d);
  const wait = $("send-wait").checked && (kind === "regular" || kind === "subscription");
  const button = $("send-button");
  try {
    if (!wait) {
      c.send(d);
      setSendState("sent", "Sent; no answers awaited.");
      return;
    }
    button.disabled = true;
    const tx = c.request(d);
    setSendState("waiting", "Waiting for answers…");
    let n = 0;
    for await (const a of tx) {
      list.append(answerItem(a));
      n++;
    }
    setSendState("complete", `Complete: ${n} answer${n === 1 ? "" : "s"}.`);
  } catch (err) {
    setSendState("failed", "");
    show("send-error", err.message);
  } finally {
    button.disabled = false;
  }
}

function setSendState(s, text) {
  const e = $("send-state");
  e.dataset.state = s;
  e.textContent = text;
}

function remember(text) {
  state.history = [text, ...state.history.filter((t) => t !== text)].slice(0, MAX_HISTORY);
  $("history").replaceChildren(
    ...state.history.map((t) =>
      el("li", { title: t, onclick: () => ($("send-text").value = t) }, t.split("\n")[0]),
    ),
  );
}

// ---------------------------------------------------------------------
// Binding

async function bindSubmit(ev) {
  ev.preventDefault();
  show("bind-error", "");
  const c = state.client;
  if (!c) {
    show("bind-error", "Not connected to the peer.");
    return;
  }
  let d;
  try {
    d = (await api("/api/parse", { text: $("bind-endpoint").value, as: "endpoint", host: $("bind-host").value })).dispatch;
  } catch (err) {
    show("bind-error", err.message);
    return;
  }
  const entry = { spec: { endpoint: d.endpoint, host: d.host ?? [], answer: $("bind-answer").checked } };
  try {
    await bindEntry(c, entry);
    state.bindings.push(entry);
  } catch (err) {
    show("bind-error", err.message);
  }
  renderBindings();
}

async function bindEntry(c, entry) {
  const { endpoint, host, answer } = entry.spec;
  entry.binding = await c.bind(endpoint, (d) => logEvent(d, entry.spec), { host, answer });
  entry.error = null;
}

// rebind binds again what the page had bound: a new connection has none
// of the old one's subscriptions.
async function rebind(c) {
  for (const entry of state.bindings) {
    try {
      await bindEntry(c, entry);
    } catch (err) {
      entry.error = err.message;
    }
  }
  renderBindings();
}

async function release(entry) {
  show("bind-error", "");
  try {
    if (entry.binding?.active) await entry.binding.release();
  } catch (err) {
    show("bind-error", err.message);
    return;
  }
  state.bindings = state.bindings.filter((e) => e !== entry);
  renderBindings();
}

function where(host) {
  return host.length ? ` at ${host.map((h) => (Array.isArray(h) ? h.join(":") : h)).join(", ")}` : " on this peer";
}

function renderBindings() {
  $("bindings").replaceChildren(
    ...state.bindings.map((entry) =>
      el(
        "li",
        { class: "binding", data: { endpoint: endpointText(entry.spec.endpoint), active: String(!!entry.binding?.active) } },
        el(
          "span",
          {},
          el("code", {}, endpointText(entry.spec.endpoint)),
          where(entry.spec.host),
          entry.error ? el("span", { class: "error" }, ` (${entry.error})`) : entry.binding?.active ? "" : " (not bound)",
        ),
        el("button", { type: "button", class: "secondary release", onclick: () => release(entry) }, "Release"),
      ),
    ),
  );
}

function logEvent(d, spec) {
  const list = $("events");
  const what = d.resource ? `/${d.resource.join("/")}` : d.endpoint ? endpointText(d.endpoint) : "";
  list.prepend(
    el(
      "li",
      { class: "event", data: { method: String(d.method ?? ""), resource: what } },
      el("span", { class: "code info" }, d.method),
      el("code", {}, what),
      el("span", { class: "meta" }, ` ${new Date().toLocaleTimeString()}${spec ? ` · ${endpointText(spec.endpoint)}` : ""}`),
      d.body === undefined ? null : el("pre", {}, json(d.body)),
    ),
  );
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

// ---------------------------------------------------------------------

async function main() {
  try {
    state.config = await api("/api/config");
  } catch (err) {
    setStatus("disconnected", "no configuration");
    show("poll-error", err.message);
    return;
  }
  $("peer-id").textContent = state.config.peer;
  $("peer-version").textContent = state.config.version;
  $("gateway").textContent = state.config.gateway;
  document.title = `jstp-peer ${short(state.config.peer)}`;
  $("send-form").addEventListener("submit", send);
  $("bind-form").addEventListener("submit", bindSubmit);
  $("events-clear").addEventListener("click", () => $("events").replaceChildren());
  run();
}

main();

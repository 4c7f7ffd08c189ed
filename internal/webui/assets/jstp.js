// jstp.js: a JSTP client for web pages. It speaks to a jstp-peer through
// the peer's WebSocket gateway, one dispatch per text message, as any
// classic client does, and declares the "provisional" extension so the
// peer says how many answers each transaction gets: a request ends
// exactly when its answers are in. An ES module with no dependencies;
// docs/browser.md is its manual.
//
//   import { connect } from "/jstp.js";
//   const peer = await connect("ws://127.0.0.1:33334/");
//   for await (const a of peer.request({ method: "GET", resource: ["peer"] })) {
//     console.log(a.resource[0], a.body);
//   }

/** The protocol this client writes. */
export const PROTOCOL = Object.freeze(["JSTP", "0.4"]);

/** The extension by which a client reads the peer's provisional answers. */
export const PROVISIONAL = "provisional";

/**
 * How long a request waits for its answers, in milliseconds: the peer
 * answers 504 itself for what is missing after 10 s, and the extra second
 * lets those 504s arrive before the client gives up on its own.
 */
export const DEFAULT_TIMEOUT = 11000;

/** The gateway's default limit on one dispatch, in bytes. */
export const MAX_DISPATCH = 1 << 20;

const CONNECT_TIMEOUT = 10000;
// Copies of one dispatch remembered while they are handed to overlapping
// bindings (see #route); bounded so a binding released mid-way cannot
// make the table grow.
const MAX_ROUNDS = 1024;

/** An error with a JSTP code (400, 404, 413, 502, 504 ...). */
export class JSTPError extends Error {
  constructor(code, message, answer) {
    super(message);
    this.name = "JSTPError";
    this.code = code;
    this.answer = answer;
  }
}

/**
 * The connection ended before a transaction was complete. `answers` holds
 * the answers the transaction had received.
 */
export class ClosedError extends Error {
  constructor(message, answers = []) {
    super(message);
    this.name = "ClosedError";
    this.answers = answers;
  }
}

/**
 * Opens a WebSocket to a peer's gateway ("ws://127.0.0.1:33334/") and
 * resolves to a Client once it is open. Options: timeout (ms, for each
 * request; default DEFAULT_TIMEOUT), connectTimeout (ms, default 10 s).
 */
export function connect(url, options = {}) {
  const WS = options.WebSocket ?? globalThis.WebSocket;
  const wait = options.connectTimeout ?? CONNECT_TIMEOUT;
  return new Promise((resolve, reject) => {
    let ws;
    try {
      ws = new WS(url);
    } catch (err) {
      reject(err);
      return;
    }
    const timer = setTimeout(() => {
      ws.onopen = ws.onclose = null;
      ws.close();
      reject(new Error(`jstp: no connection to ${url} within ${wait} ms`));
    }, wait);
    ws.onerror = () => {}; // a close event follows, and says more
    ws.onopen = () => {
      clearTimeout(timer);
      resolve(new Client(ws, options));
    };
    ws.onclose = (ev) => {
      clearTimeout(timer);
      const origin = globalThis.location?.origin;
      const hint = origin
        ? `: is the peer running, and does its gateway accept pages from ${origin}?`
        : ": is the peer running?";
      reject(new Error(`jstp: cannot connect to ${url} (WebSocket close ${ev.code})${hint}`));
    };
  });
}

/**
 * A connection to a peer. Answers go to the requests that asked for them;
 * events go to the bindings whose endpoint they match. Everything else the
 * peer sends is an event on the client itself:
 *
 *   "dispatch"  (CustomEvent, detail: the dispatch) a dispatch no binding
 *               took, such as one for a BIND sent with send();
 *   "exception" (detail: the dispatch) an exception about no pending request;
 *   "error"     (detail: the error) a binding's handler threw, or its
 *               answer could not be sent;
 *   "close"     (detail: {code, reason}) the connection ended.
 */
export class Client extends EventTarget {
  #ws;
  #timeout;
  #txs = new Map();
  #bindings = new Set();
  #rounds = new Map();
  #resolveClosed;

  constructor(ws, options = {}) {
    super();
    this.#ws = ws;
    this.#timeout = options.timeout ?? DEFAULT_TIMEOUT;
    this.url = ws.url;
    /** What the client counted: what it could not read, answers nobody waited for. */
    this.stats = { received: 0, rejected: 0, unmatched: 0, late: 0, duplicate: 0 };
    /** Resolves with {code, reason} when the connection ends. */
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    ws.onmessage = (ev) => this.#receive(ev.data);
    ws.onerror = () => {};
    ws.onclose = (ev) => this.#ended(ev.code, ev.reason);
  }

  /** Whether the connection is open. */
  get open() {
    return this.#ws.readyState === 1;
  }

  /** The bindings in force. */
  get bindings() {
    return [...this.#bindings];
  }

  /**
   * Sends a dispatch as it is, completed with the protocol and a
   * timestamp when it has none, and returns what was sent. Nothing
   * waits for answers: use request() for that.
   */
  send(d) {
    const out = complete(d);
    this.#write(out);
    return out;
  }

  /**
   * Sends a regular or subscription dispatch and returns its Transaction:
   * an async iterator of its answers, one per triggered subscriber (or
   * one for the whole transaction: 404 when nothing is bound, 502 ...),
   * then 504 for each one missing at the deadline. A transaction id is
   * generated unless token[0] is a string already. Options: timeout (ms),
   * signal (an AbortSignal: the iteration then throws its reason).
   */
  request(d, options = {}) {
    const out = complete(d);
    const kind = kindOf(out);
    if (kind !== "regular" && kind !== "subscription") {
      throw new JSTPError(400, `jstp: a ${kind} dispatch takes no answers`);
    }
    const txid = typeof out.token?.[0] === "string" && out.token[0] !== "" ? out.token[0] : uuid();
    out.token = [txid, ...(out.token ?? []).slice(1)];
    if (!out.protocol.includes(PROVISIONAL)) {
      out.protocol = [...(out.protocol.length < 2 ? PROTOCOL : out.protocol), PROVISIONAL];
    }
    if (this.#txs.has(txid)) {
      throw new JSTPError(400, `jstp: transaction ${txid} is already pending`);
    }
    const tx = new Transaction(txid, out, {
      timeout: options.timeout ?? this.#timeout,
      signal: options.signal,
      stats: this.stats,
      forget: () => this.#txs.delete(txid),
    });
    this.#txs.set(txid, tx);
    try {
      this.#write(out);
    } catch (err) {
      tx._add(answerOf(err instanceof JSTPError ? err.code : 502, txid, undefined, err.message));
    }
    return tx;
  }

  /**
   * Subscribes to an endpoint ({method, resource}; method "*" for any,
   * resource a pattern: "*" one element, "..." any number, ":name" one
   * element captured) and resolves to a Binding once the peer accepted
   * the BIND (every answer 2xx); rejects with a JSTPError otherwise.
   *
   * handler(dispatch, params, binding) runs for every dispatch the
   * binding receives; params holds the ":name" captures. When the
   * dispatch wants an answer, the handler's result (or awaited promise)
   * is the answer's body, code 200; a thrown error answers its `code`
   * (100-599) or 500. Options: host (the host chain, to bind on another
   * peer or service), answer (false: never answer, leaving the sender a
   * 504), timeout, signal.
   */
  async bind(endpoint, handler, options = {}) {
    const ep = endpointOf(endpoint);
    const b = new Binding(this, ep, options.host, handler, options.answer ?? true);
    // Registered before the BIND is sent: the first events may come
    // before its answer.
    this.#bindings.add(b);
    const d = { method: "BIND", endpoint: ep };
    if (options.host?.length) d.host = options.host;
    try {
      await expectOK(this.request(d, options), `BIND ${endpointText(ep)}`);
    } catch (err) {
      this.#bindings.delete(b);
      throw err;
    }
    return b;
  }

  /** Closes the connection; the peer releases its bindings. */
  close(code = 1000, reason = "") {
    this.#ws.close(code, reason);
  }

  _forget(b) {
    this.#bindings.delete(b);
  }

  _answer(d, code, body) {
    const a = answerOf(code, d.token[0], d.token[1], body);
    try {
      this.#write(a);
    } catch (err) {
      this.#emit("error", err);
    }
  }

  #write(d) {
    if (this.#ws.readyState !== 1) {
      throw new ClosedError(`jstp: the connection to ${this.url} is closed`);
    }
    const text = JSON.stringify(d);
    // Checked here: the gateway would refuse it anyway (413), after
    // reading all of it.
    if (text.length > MAX_DISPATCH / 3 && new TextEncoder().encode(text).length > MAX_DISPATCH) {
      throw new JSTPError(413, `jstp: the dispatch exceeds ${MAX_DISPATCH} bytes`);
    }
    this.#ws.send(text);
  }

  #receive(data) {
    this.stats.received++;
    let d;
    try {
      d = typeof data === "string" ? JSON.parse(data) : undefined;
    } catch {
      d = undefined;
    }
    if (d === null || typeof d !== "object" || Array.isArray(d)) {
      this.stats.rejected++;
      return;
    }
    d = lowerKeys(d);
    switch (kindOf(d)) {
      case "answer": {
        const tx = Array.isArray(d.resource) ? this.#txs.get(String(d.resource[1])) : undefined;
        if (tx) tx._add(d);
        else this.stats.unmatched++;
        return;
      }
      case "exception": {
        const txid = d.token?.[0];
        const tx = typeof txid === "string" ? this.#txs.get(txid) : undefined;
        if (tx) tx._add(answerOf(d.exception?.code ?? 400, txid, undefined, d.exception?.message ?? ""));
        else this.#emit("exception", d);
        return;
      }
      default:
        if (!this.#route(d)) this.#emit("dispatch", d);
    }
  }

  // #route hands d to a binding whose endpoint it matches. The peer sends
  // one copy of a dispatch per matching subscription, so when bindings
  // overlap each copy goes to the next of them that has not had one.
  #route(d) {
    const matching = [];
    for (const b of this.#bindings) {
      const params = b._match(d);
      if (params) matching.push([b, params]);
    }
    if (matching.length === 0) return false;
    let pick = matching[0];
    if (matching.length > 1) {
      const key = JSON.stringify([d.method, d.resource ?? null, d.endpoint ?? null, d.timestamp ?? null, d.token?.[0] ?? null]);
      let served = this.#rounds.get(key);
      if (!served) {
        served = new Set();
        this.#rounds.set(key, served);
        if (this.#rounds.size > MAX_ROUNDS) this.#rounds.delete(this.#rounds.keys().next().value);
      }
      pick = matching.find(([b]) => !served.has(b));
      if (!pick) {
        served.clear();
        pick = matching[0];
      }
      served.add(pick[0]);
      if (matching.every(([b]) => served.has(b))) this.#rounds.delete(key);
    }
    pick[0]._event(d, pick[1]);
    return true;
  }

  #ended(code, reason) {
    for (const tx of [...this.#txs.values()]) {
      tx._cut(new ClosedError(`jstp: the connection to ${this.url} closed before the answers were in (${code})`));
    }
    this.#txs.clear();
    for (const b of this.#bindings) b._lost();
    this.#bindings.clear();
    const info = { code, reason };
    this.#resolveClosed(info);
    this.#emit("close", info);
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/**
 * One request's answers, as an async iterator: `for await (const a of
 * tx)`. `all()` collects them. Breaking out of the loop abandons the
 * transaction (later answers are dropped).
 */
export class Transaction {
  #queue = [];
  #waiters = [];
  #ended = false;
  #abandoned = false;
  #error = null;
  #tally = new Tally();
  #timer;
  #signal;
  #onAbort;
  #stats;
  #forget;

  constructor(id, dispatch, { timeout, signal, stats, forget }) {
    /** The transaction id (token[0]). */
    this.id = id;
    /** The dispatch as sent. */
    this.dispatch = dispatch;
    /** Every final answer received so far, in order. */
    this.answers = [];
    this.#stats = stats;
    this.#forget = forget;
    this.#timer = setTimeout(() => this._expire(), timeout);
    if (signal) {
      this.#signal = signal;
      this.#onAbort = () => this._cut(signal.reason ?? new Error("jstp: aborted"));
      if (signal.aborted) queueMicrotask(this.#onAbort);
      else signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /**
   * Whether the transaction ended as transactions do: every expected
   * answer arrived, or the deadline passed (and 504s stand for the rest).
   * False while answers may come, and when it was cut short.
   */
  get complete() {
    return this.#ended && this.#error === null && !this.#abandoned;
  }

  _add(a) {
    if (this.#ended) {
      this.#stats.late++;
      return;
    }
    const [code, , trig] = answerInfo(a);
    if (code >= 100 && code < 200) {
      this.#tally.provisional(a);
    } else if (this.#tally.final(trig)) {
      this.#push(a);
    } else {
      this.#stats.duplicate++;
    }
    if (this.#tally.done) this.#end(null);
  }

  // _expire answers 504 for what is missing at the deadline.
  _expire() {
    if (this.#ended) return;
    const [missing, late] = this.#tally.missing();
    if (late) {
      const msg = "no answer before the deadline";
      if (missing.length === 0) this.#push(answerOf(504, this.id, undefined, msg));
      for (const trig of missing) this.#push(answerOf(504, this.id, trig, msg));
    }
    this.#end(null);
  }

  _cut(err) {
    if (this.#ended) return;
    this.#end(err);
  }

  #push(a) {
    this.answers.push(a);
    const w = this.#waiters.shift();
    if (w) w.resolve({ value: a, done: false });
    else this.#queue.push(a);
  }

  #end(err) {
    this.#ended = true;
    this.#error = err;
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#forget();
    for (const w of this.#waiters.splice(0)) {
      if (err) w.reject(withAnswers(err, this.answers));
      else w.resolve({ value: undefined, done: true });
    }
  }

  next() {
    if (this.#queue.length > 0) return Promise.resolve({ value: this.#queue.shift(), done: false });
    if (this.#ended) {
      return this.#error
        ? Promise.reject(withAnswers(this.#error, this.answers))
        : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  return() {
    this.#queue = [];
    if (!this.#ended) {
      this.#abandoned = true;
      this.#end(null);
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /** Resolves to every answer once the transaction is complete. */
  async all() {
    const out = [];
    for await (const a of this) out.push(a);
    return out;
  }
}

/** A subscription of a client: release() ends it. */
export class Binding {
  #client;
  #handler;
  #answer;
  #compiled;

  constructor(client, endpoint, host, handler, answer) {
    this.#client = client;
    this.#handler = handler;
    this.#answer = answer;
    this.#compiled = compilePattern(endpoint.resource);
    /** The endpoint, {method, resource}. */
    this.endpoint = endpoint;
    /** The host chain the BIND was sent to ([] for the peer itself). */
    this.host = host ?? [];
    /** How many dispatches it received. */
    this.received = 0;
    /** Whether the binding is in force (false after release or a closed connection). */
    this.active = true;
  }

  /**
   * Sends the RELEASE and resolves once the peer answered it; events
   * that arrive meanwhile are still delivered. Rejects with a JSTPError
   * (406 when the peer had no such binding).
   */
  async release(options = {}) {
    if (!this.active) return;
    const d = { method: "RELEASE", endpoint: this.endpoint };
    if (this.host.length) d.host = this.host;
    await expectOK(this.#client.request(d, options), `RELEASE ${endpointText(this.endpoint)}`);
    this.active = false;
    this.#client._forget(this);
  }

  _lost() {
    this.active = false;
  }

  _match(d) {
    const want = this.endpoint.method;
    const method = String(d.method ?? "").toUpperCase();
    if (want !== "*" && want !== method) return null;
    // An endpoint on BIND or RELEASE matches those dispatches by the
    // pattern of their own endpoint ("bind to binds").
    const resource = method === "BIND" || method === "RELEASE" ? d.endpoint?.resource : d.resource;
    if (!Array.isArray(resource)) return null;
    return matchCompiled(this.#compiled, resource);
  }

  async _event(d, params) {
    this.received++;
    const wants = kindOf(d) === "regular" && typeof d.token?.[0] === "string" && typeof d.token?.[1] === "string";
    let code = 200;
    let body;
    try {
      body = await this.#handler(d, params, this);
    } catch (err) {
      code = Number.isInteger(err?.code) && err.code >= 100 && err.code <= 599 ? err.code : 500;
      body = String(err?.message ?? err);
      this.#client.dispatchEvent(new CustomEvent("error", { detail: err }));
    }
    if (wants && this.#answer && this.#client.open) this.#client._answer(d, code, body);
  }
}

/**
 * Matches a resource (an array of scalars) against a pattern (an array
 * of strings) as the peer does, and returns the ":name" captures, or null
 * when it does not match.
 */
export function match(pattern, resource) {
  return matchCompiled(compilePattern(pattern), resource);
}

function compilePattern(pattern) {
  if (!Array.isArray(pattern) || pattern.length === 0) {
    throw new JSTPError(400, "jstp: a resource pattern is a non-empty array of strings");
  }
  return pattern.map((e) => {
    if (typeof e !== "string" || e === "") throw new JSTPError(400, `jstp: bad pattern element ${JSON.stringify(e)}`);
    if (e.startsWith("\\")) return { lit: e.slice(1) };
    if (e === "*") return { one: true };
    if (e === "...") return { any: true };
    if (e.startsWith(":") && e.length > 1) return { cap: e.slice(1) };
    return { lit: e };
  });
}

function matchCompiled(p, resource) {
  const r = resource.map((v) => String(v));
  const params = {};
  const at = (i, j) => {
    if (i === p.length) return j === r.length;
    const e = p[i];
    if (e.any) {
      // Non-greedy: the first position where the rest matches.
      for (let k = j; k <= r.length; k++) if (at(i + 1, k)) return true;
      return false;
    }
    if (j >= r.length) return false;
    if (e.lit !== undefined && e.lit !== r[j]) return false;
    if (e.cap !== undefined) {
      params[e.cap] = r[j];
      if (at(i + 1, j + 1)) return true;
      delete params[e.cap];
      return false;
    }
    return at(i + 1, j + 1);
  };
  return at(0, 0) ? params : null;
}

/** The morphology of a dispatch: "regular", "subscription", "answer" or "exception". */
export function kindOf(d) {
  if (d.exception !== undefined) return "exception";
  const m = String(d.method ?? "").toUpperCase();
  if (m === "ANSWER") return "answer";
  if (m === "BIND" || m === "RELEASE") return "subscription";
  return "regular";
}

/** [code, transactionID, triggeringID] of an answer. */
export function answerInfo(a) {
  const r = Array.isArray(a.resource) ? a.resource : [];
  const code = Number(r[0]);
  return [Number.isInteger(code) ? code : 0, r[1] === undefined ? "" : String(r[1]), r[2] === undefined || r[2] === null ? "" : String(r[2])];
}

// Tally counts a transaction's answers by the rules of the peer
// (docs/mesh.md, "Answers across the mesh"): an answer for the whole
// transaction ends it; announced triggering ids (ANSWER 102
// {"triggered": [...]}) each get one final answer; a final answer with no
// announcement before it is the only one; {"open": true} keeps the
// transaction open until its deadline.
class Tally {
  known = false;
  open = false;
  answered = new Map();
  done = false;
  count = 0;

  provisional(a) {
    if (this.done) return;
    const b = a.body && typeof a.body === "object" ? a.body : {};
    if (b.open === true) {
      this.open = true;
      return;
    }
    this.expect(Array.isArray(b.triggered) ? b.triggered.map(String) : []);
  }

  expect(ids) {
    this.known = true;
    for (const id of ids) if (!this.answered.has(id)) this.answered.set(id, false);
    this.#check();
  }

  final(trig) {
    if (this.done) return false;
    if (trig === "") {
      this.done = true;
      this.count++;
      return true;
    }
    if (this.answered.get(trig) === true) return false;
    // Not one of the announced: a stray answer.
    if (this.known && !this.answered.has(trig)) return false;
    this.answered.set(trig, true);
    this.count++;
    if (!this.known && !this.open) {
      this.done = true;
      return true;
    }
    this.#check();
    return true;
  }

  #check() {
    if (!this.known || this.open || this.answered.size === 0) return;
    for (const ok of this.answered.values()) if (!ok) return;
    this.done = true;
  }

  missing() {
    if (this.done) return [[], false];
    const ids = this.known ? [...this.answered].filter(([, ok]) => !ok).map(([id]) => id).sort() : [];
    if (ids.length > 0) return [ids, true];
    return [[], this.count === 0];
  }
}

function answerOf(code, txid, trig, body) {
  const a = {
    protocol: [...PROTOCOL],
    method: "ANSWER",
    resource: trig ? [code, txid, trig] : [code, txid],
    timestamp: Date.now(),
  };
  if (body !== undefined) a.body = body;
  return a;
}

async function expectOK(tx, what) {
  const answers = await tx.all();
  const bad = answers.find((a) => {
    const c = answerInfo(a)[0];
    return c < 200 || c > 299;
  });
  if (answers.length === 0 || bad) {
    const a = bad ?? answers[0];
    const code = a ? answerInfo(a)[0] : 504;
    const detail = a?.body === undefined ? "" : `: ${typeof a.body === "string" ? a.body : JSON.stringify(a.body)}`;
    throw new JSTPError(code, `jstp: ${what} failed (${code})${detail}`, a);
  }
  return answers;
}

function complete(d) {
  if (d === null || typeof d !== "object" || Array.isArray(d)) {
    throw new JSTPError(400, "jstp: a dispatch is an object");
  }
  const out = { ...lowerKeys(d) };
  if (typeof out.method === "string") out.method = out.method.toUpperCase();
  if (!Array.isArray(out.protocol)) out.protocol = [...PROTOCOL];
  if (out.timestamp === undefined) out.timestamp = Date.now();
  return out;
}

function endpointOf(ep) {
  if (ep === null || typeof ep !== "object" || typeof ep.method !== "string") {
    throw new JSTPError(400, 'jstp: an endpoint is {method: "POST", resource: ["news", "*"]}');
  }
  compilePattern(ep.resource);
  return { method: ep.method.toUpperCase(), resource: [...ep.resource] };
}

/** "METHOD /a/b", as the peer writes endpoints. */
export function endpointText(ep) {
  return `${ep.method} /${ep.resource.join("/")}`;
}

function lowerKeys(d) {
  for (const k of Object.keys(d)) {
    if (k !== k.toLowerCase()) {
      const out = {};
      for (const [key, v] of Object.entries(d)) out[key.toLowerCase()] = v;
      return out;
    }
  }
  return d;
}

function withAnswers(err, answers) {
  if (err && typeof err === "object" && !("answers" in err)) {
    try {
      err.answers = answers;
    } catch {
      // a frozen reason: left as it is
    }
  }
  return err;
}

// uuid makes a version 4 UUID. crypto.randomUUID exists only in secure
// contexts; getRandomValues everywhere.
function uuid() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// eventgate console: a live view of the event stream over SSE or WebSocket.
//
// The connection is held by a small reconnect wrapper of its own, the same on both transports:
// every drop (network error, clean end, server shutdown, a non-200 answer, where EventSource
// gives up for good) closes the transport and opens a new one after a jittered exponential
// backoff, resuming with ?since=<last event id>. EventSource's own reconnect is not used: it only
// sends Last-Event-ID on its own retries and stops for good after any non-200.
//
// Payload strings are not HTML-escaped by the server, so everything is inserted as text
// (textContent), never as markup. No dependencies, no build step, no external assets.
"use strict";

(() => {
  // The built-in types; the server's catalogue (GET /api/v1/catalogue) adds the operator's.
  const BUILTIN_TYPES = ["job.queued", "job.started", "job.progress", "job.completed", "job.failed",
    "note.created", "note.updated", "note.deleted", "queue.status"];
  const CATALOGUE_TIMEOUT_MS = 5000;
  const TOKEN_KEY = "eventgate.token"; // sessionStorage: the token lives as long as the tab
  const SETTINGS_KEY = "eventgate.settings";
  const COOKIE = "eventgate_token"; // read by the server on GET /api/... (EventSource, WebSocket)
  const MAX_EVENTS = 500; // rows kept in the event list
  const MAX_JOBS = 200; // rows kept in the jobs table
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  const STABLE_MS = 5000; // a connection that lived this long resets the backoff
  const TRANSPORT_NAMES = { sse: "SSE", ws: "WebSocket" };

  const el = {};
  const st = {
    transport: "sse", token: "", topics: [], types: [], since: "",
    active: false, // a connection is wanted (not stopped by the user, an expired token or a fatal answer)
    gen: 0, // generation of the current connection; callbacks of older ones are ignored
    conn: null, timer: 0, attempt: 0, openedAt: 0, everOpened: false,
    lastId: "", lostPosition: false,
    count: 0, jobs: new Map(), queue: null,
    knownTypes: BUILTIN_TYPES, // every type the server knows, from its catalogue when it could be read
  };

  // ---- Event ids: "<ms>-<seq>", compared numerically part by part, never as text. ----

  const stripZeros = (d) => d.replace(/^0+(?=\d)/, "");
  function parseId(s) {
    const m = /^(\d{1,20})-(\d{1,20})$/.exec(typeof s === "string" ? s : "");
    return m ? [stripZeros(m[1]), stripZeros(m[2])] : null;
  }
  const cmpDigits = (a, b) => (a.length - b.length) || (a < b ? -1 : a > b ? 1 : 0);
  function idCmp(a, b) {
    const x = parseId(a);
    const y = parseId(b);
    if (!x || !y) return x ? 1 : y ? -1 : 0;
    return cmpDigits(x[0], y[0]) || cmpDigits(x[1], y[1]);
  }

  // ---- Small DOM helpers. ----

  function node(tag, className, text) {
    const n = document.createElement(tag);
    if (className) n.className = className;
    if (text !== undefined) n.textContent = text;
    return n;
  }
  function clockTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    const p = (n, w) => String(n).padStart(w, "0");
    return `${p(d.getHours(), 2)}:${p(d.getMinutes(), 2)}:${p(d.getSeconds(), 2)}.${p(d.getMilliseconds(), 3)}`;
  }
  const splitList = (v) => v.split(/[\s,]+/).filter(Boolean);

  function setState(state, text) {
    el.conn.dataset.state = state;
    el.conn.dataset.transport = st.transport;
    el.conn.textContent = text;
  }
  function showFormError(text) {
    el.formError.textContent = text;
    el.formError.hidden = !text;
  }

  // ---- Token: kept for the tab, sent as a cookie scoped to /api, never in a URL. ----

  function setToken(token) {
    st.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    writeCookie();
  }

  // writeCookie sets the cookie to this tab's token, or deletes it when the tab has none. The
  // token lives in the tab, but the cookie is the browser's, shared by every tab of this host
  // whatever the port: another console tab (of this eventgate or of another one on the same
  // host) that connects rewrites or deletes it. So it is written again right before every
  // connection attempt (open); otherwise this tab's reconnects, or its switch to the other
  // transport, would go out with another tab's token or none and be refused with a 401 that
  // EventSource and WebSocket hide, while probe (Authorization header) still says the token is
  // fine, so the page would retry "could not connect" forever.
  function writeCookie() {
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = st.token
      ? `${COOKIE}=${st.token}; Path=/api; SameSite=Strict${secure}`
      : `${COOKIE}=; Path=/api; Max-Age=0; SameSite=Strict${secure}`;
  }

  // api GETs a JSON route with the token; it resolves to {status, body} (body null if not JSON)
  // and rejects only on network errors.
  async function api(path) {
    const headers = { Accept: "application/json" };
    if (st.token) headers.Authorization = `Bearer ${st.token}`;
    const resp = await fetch(path, { headers, cache: "no-store", credentials: "same-origin" });
    let body = null;
    try { body = await resp.json(); } catch (_) { /* not JSON */ }
    return { status: resp.status, body };
  }
  const errorMessage = (r) => (r.body && r.body.error && r.body.error.message) || `HTTP ${r.status}`;

  // ---- Connection. ----

  function filterQuery() {
    const q = new URLSearchParams();
    for (const t of st.topics) q.append("topic", t);
    for (const t of st.types) q.append("type", t);
    return q;
  }

  function streamURL(path, websocket) {
    const q = filterQuery();
    const since = st.lastId || st.since;
    if (since) q.set("since", since);
    const qs = q.toString();
    const rel = path + (qs ? `?${qs}` : "");
    if (!websocket) return rel;
    return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${rel}`;
  }

  // start (re)connects now with the current settings; the backoff starts over.
  function start() {
    stop();
    st.active = true;
    st.attempt = 0;
    open();
  }

  // stop closes the connection and cancels any pending reconnect.
  function stop() {
    st.active = false;
    st.gen++;
    clearTimeout(st.timer);
    st.timer = 0;
    if (st.conn) st.conn.close();
    st.conn = null;
  }

  function open() {
    clearTimeout(st.timer);
    st.timer = 0;
    const gen = ++st.gen;
    const name = TRANSPORT_NAMES[st.transport];
    if (st.attempt > 0) setState("reconnecting", `reconnecting over ${name} (attempt ${st.attempt})…`);
    else setState("connecting", `connecting over ${name}…`);
    writeCookie(); // another tab may have changed it since: this attempt carries our token
    // The catalogue first: EventSource only hands over the named events it listens for, and a
    // reload on the server may have added types since the last connection.
    loadCatalogue().then(() => {
      if (gen !== st.gen) return;
      if (st.transport === "ws") openWebSocket(gen);
      else openEventSource(gen);
    });
  }

  // loadCatalogue refreshes the known event types from GET /api/v1/catalogue (revalidated with
  // its ETag, so usually a 304). It never fails: without an answer the types stay as they were.
  async function loadCatalogue() {
    const headers = { Accept: "application/json" };
    if (st.token) headers.Authorization = `Bearer ${st.token}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), CATALOGUE_TIMEOUT_MS);
    try {
      const resp = await fetch("/api/v1/catalogue", { headers, cache: "no-cache", credentials: "same-origin", signal: abort.signal });
      if (resp.status !== 200) return;
      const body = await resp.json();
      if (!body || !Array.isArray(body.types)) return;
      const entries = body.types.filter((e) => e && typeof e.type === "string");
      st.knownTypes = entries.map((e) => e.type);
      renderTypes(entries);
    } catch (_) {
      /* offline or refused: the connection attempt will tell */
    } finally {
      clearTimeout(timer);
    }
  }

  // renderTypes fills the type suggestions of the filter and the list of event types.
  function renderTypes(entries) {
    el.typeNames.replaceChildren(...entries.map((e) => {
      const o = node("option");
      o.value = e.type;
      return o;
    }));
    el.typeList.replaceChildren(...entries.map((e) => {
      const li = node("li");
      li.dataset.type = e.type;
      li.dataset.builtin = String(e.builtin === true);
      li.append(node("code", "type-name", e.type), node("code", "type-topic", typeof e.topic === "string" ? e.topic : ""));
      if (e.builtin !== true) li.append(node("span", "badge", "custom"));
      li.append(node("span", "type-desc", typeof e.description === "string" ? e.description : ""));
      return li;
    }));
    el.typesEmpty.hidden = entries.length > 0;
  }

  function openEventSource(gen) {
    const es = new EventSource(streamURL("/api/v1/stream", false));
    st.conn = es;
    let opened = false;
    const current = () => gen === st.gen;
    es.onopen = () => {
      if (!current()) return;
      opened = true;
      onOpen();
    };
    const onMessage = (e) => {
      if (!current()) return;
      let ev = null;
      try { ev = JSON.parse(e.data); } catch (_) { return; }
      onEvent(ev);
    };
    for (const t of st.knownTypes) es.addEventListener(t, onMessage);
    es.addEventListener("resync", (e) => {
      if (!current()) return;
      let body = {};
      try { body = JSON.parse(e.data) || {}; } catch (_) { /* keep {} */ }
      onResync(body, e.lastEventId);
    });
    es.addEventListener("shutdown", () => {
      if (!current()) return;
      es.close();
      onDrop(gen, "the server is restarting", true, opened);
    });
    es.addEventListener("auth_expired", () => {
      if (!current()) return;
      es.close();
      onExpired();
    });
    es.onerror = () => {
      if (!current()) return;
      // Network error, clean end of the stream, or a non-200 answer (then EventSource is
      // CLOSED for good): in every case, close it and reconnect ourselves.
      es.close();
      onDrop(gen, opened ? "the connection was lost" : "could not connect", false, opened);
    };
  }

  function openWebSocket(gen) {
    let ws;
    try {
      ws = new WebSocket(streamURL("/api/v1/ws", true));
    } catch (err) {
      onFatal("error", `cannot open a WebSocket: ${err.message}`);
      return;
    }
    st.conn = ws;
    let opened = false;
    const current = () => gen === st.gen;
    ws.onopen = () => {
      if (!current()) return;
      opened = true;
      onOpen();
    };
    ws.onmessage = (m) => {
      if (!current()) return;
      let msg = null;
      try { msg = JSON.parse(m.data); } catch (_) { return; }
      if (!msg || typeof msg !== "object") return;
      if (typeof msg.id === "string" && typeof msg.topic === "string") {
        onEvent(msg);
      } else if (msg.type === "subscribed" && parseId(msg.position) && !st.lastId && !st.since) {
        // Where delivery starts: resuming from here after a drop loses nothing.
        st.lastId = msg.position;
      } else if (msg.type === "resync") {
        onResync(msg, "");
      } else if (msg.type === "error") {
        showFormError(`server: ${msg.code}: ${msg.message}`);
      }
    };
    ws.onerror = () => { /* onclose follows with the details */ };
    ws.onclose = (e) => {
      if (!current()) return;
      if (e.code === 1008 && /expired/i.test(e.reason)) {
        onExpired();
        return;
      }
      let why = opened ? `closed (${e.code}${e.reason ? ` ${e.reason}` : ""})` : "could not connect";
      if (e.code === 1012) why = "the server is restarting";
      if (e.code === 1013) why = "the server is overloaded";
      onDrop(gen, why, e.code === 1012, opened);
    };
  }

  function onOpen() {
    st.openedAt = Date.now();
    const name = TRANSPORT_NAMES[st.transport];
    const first = !st.everOpened;
    st.everOpened = true;
    if (st.lostPosition) {
      // Live again, but no event had been seen before the drop, so there is no position to
      // resume from: what happened meanwhile is only in the folded state.
      st.lostPosition = false;
      setState("resynced", `connected over ${name} — resynced: no position to resume from, state refetched`);
      refreshState(null);
      return;
    }
    const from = st.lastId ? `resumed after ${st.lastId}` : st.since ? `from ${st.since}` : "live";
    setState("connected", `connected over ${name} — ${from}`);
    if (first) refreshState(null);
  }

  function backoff(attempt) {
    const d = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt - 1, 16));
    return Math.round(d * (0.5 + Math.random() / 2));
  }

  // onDrop schedules the next attempt. A connection that never opened is first explained with a
  // request the browser lets us read (EventSource and WebSocket hide the status): 401/403/400 stop,
  // anything else is retried.
  function onDrop(gen, why, shutdown, opened) {
    if (gen !== st.gen || !st.active) return;
    st.conn = null;
    if (opened && Date.now() - st.openedAt >= STABLE_MS) st.attempt = 0;
    if (opened && !st.lastId && !st.since) st.lostPosition = true;
    if (opened || shutdown) {
      schedule(gen, why, shutdown);
      return;
    }
    probe().then((fatal) => {
      if (gen !== st.gen || !st.active) return;
      if (fatal) onFatal(fatal.state, fatal.text);
      else schedule(gen, why, false);
    });
  }

  function schedule(gen, why, shutdown) {
    st.attempt++;
    let delay = backoff(st.attempt);
    // After a shutdown, spread the reconnects like the server's jittered retry: does.
    if (shutdown) delay = Math.max(delay, 500 + Math.round(Math.random() * 2000));
    setState("reconnecting", `reconnecting (attempt ${st.attempt}, in ${(delay / 1000).toFixed(1)} s) — ${why}`);
    st.timer = setTimeout(() => {
      if (gen === st.gen && st.active) open();
    }, delay);
  }

  async function probe() {
    const q = filterQuery();
    q.set("limit", "1");
    let r;
    try {
      r = await api(`/api/v1/events?${q}`);
    } catch (_) {
      return null; // the server is unreachable: retry
    }
    if (r.status === 401) {
      const msg = errorMessage(r);
      return /expired/i.test(msg)
        ? { state: "expired", text: "token expired — enter a new token and press Connect" }
        : { state: "error", text: `not authorized: ${msg}` };
    }
    if (r.status === 403 || r.status === 400) return { state: "error", text: `refused: ${errorMessage(r)}` };
    return null;
  }

  function onFatal(state, text) {
    stop();
    setState(state, text);
  }

  function onExpired() {
    onFatal("expired", "token expired — enter a new token and press Connect");
  }

  // ---- Events and state. ----

  function setLastId(id) {
    st.lastId = id;
    el.lastId.textContent = id || "—";
  }

  function onEvent(ev) {
    if (!ev || typeof ev.type !== "string" || !parseId(ev.id)) return;
    // At-least-once across reconnects: drop what was already shown (ids only increase).
    if (st.lastId && idCmp(ev.id, st.lastId) <= 0) return;
    setLastId(ev.id);
    st.count++;
    el.count.textContent = String(st.count);
    addEventRow(ev);
    const d = ev.data || {};
    if (ev.type.startsWith("job.")) {
      foldJob(ev);
    } else if (ev.type === "queue.status") {
      setQueue({ pending: d.pending, active: d.active, updated_at: ev.time, last_event_id: ev.id });
    }
  }

  function onResync(body, id) {
    // The log could not vouch for our position: continue from where the server says and refetch
    // the folded state. After a reset log (position_unknown) the new ids may be lower than ours.
    if (parseId(id)) setLastId(id);
    else if (body.reason === "position_unknown") setLastId("");
    addControlRow("resync", id, body);
    const name = TRANSPORT_NAMES[st.transport];
    setState("resynced", `connected over ${name} — resynced (${body.reason || "unknown reason"}) at ${clockTime(new Date().toISOString())}, state refetched`);
    if (body.queue && typeof body.queue === "object") setQueue(body.queue);
    refreshState(body.queue ? body.queue : null);
  }

  function addEventRow(ev) {
    const li = node("li");
    li.dataset.id = ev.id;
    li.dataset.type = ev.type;
    const time = node("time", "", clockTime(ev.time));
    time.dateTime = ev.time || "";
    li.append(node("span", "ev-type", ev.type), node("span", "ev-topic", ev.topic || ""), time,
      node("code", "ev-id", ev.id), node("code", "ev-data", JSON.stringify(ev.data)));
    prependRow(li);
  }

  function addControlRow(type, id, body) {
    const li = node("li", "control");
    li.dataset.type = type;
    li.dataset.id = id || "";
    li.append(node("span", "ev-type", type), node("span", "ev-topic", body.reason || ""),
      node("time", "", clockTime(new Date().toISOString())), node("code", "ev-data", JSON.stringify(body)));
    prependRow(li);
  }

  function prependRow(li) {
    el.events.prepend(li);
    while (el.events.childElementCount > MAX_EVENTS) el.events.lastElementChild.remove();
    el.eventsEmpty.hidden = true;
  }

  function setQueue(q) {
    if (st.queue && st.queue.last_event_id && q.last_event_id && idCmp(q.last_event_id, st.queue.last_event_id) < 0) return;
    st.queue = q;
    el.queue.dataset.pending = String(q.pending);
    el.queue.dataset.active = String(q.active);
    const at = q.updated_at ? ` (at ${clockTime(q.updated_at)})` : "";
    el.queue.textContent = `${q.pending} pending · ${q.active} active${at}`;
  }

  // The client-side fold mirrors the server's (streams.FoldJob): idempotent and order-safe, a job
  // never moves backwards (queued → running → completed/failed).
  const STATUS_OF = {
    "job.queued": "queued", "job.started": "running", "job.progress": "running",
    "job.completed": "completed", "job.failed": "failed",
  };
  const RANK = { queued: 1, running: 2, completed: 3, failed: 3 };

  function foldJob(ev) {
    const d = ev.data || {};
    if (typeof d.job_id !== "string") return;
    const job = jobEntry(d.job_id);
    const s = job.state;
    if (s.last_event_id && idCmp(ev.id, s.last_event_id) <= 0) return;
    if (d.job_type) s.job_type = d.job_type;
    const status = STATUS_OF[ev.type];
    const r = RANK[status] || 0;
    const cur = RANK[s.status] || 0;
    s.last_event_id = ev.id;
    if (r < cur || cur === 3) {
      renderJob(job);
      return;
    }
    if (r > cur) s.status = status;
    if (ev.type === "job.progress") {
      s.percent = Math.max(s.percent || 0, Number(d.percent) || 0);
      s.message = d.message || "";
    } else if (ev.type === "job.completed") {
      s.percent = 100;
    } else if (ev.type === "job.failed") {
      s.error = d.error || "";
    }
    s.updated_at = ev.time;
    renderJob(job);
  }

  // mergeJob takes the server's folded state (GET /api/v1/jobs/{id}) unless ours is newer.
  function mergeJob(remote) {
    if (!remote || typeof remote.job_id !== "string") return;
    const job = jobEntry(remote.job_id);
    if (job.state.last_event_id && idCmp(remote.last_event_id, job.state.last_event_id) < 0) return;
    job.state = Object.assign({}, remote);
    renderJob(job);
  }

  function jobEntry(id) {
    let job = st.jobs.get(id);
    if (job) return job;
    const tr = node("tr");
    tr.dataset.job = id;
    const cell = (tag, label, className) => {
      const c = node(tag, className);
      c.dataset.label = label;
      tr.append(c);
      return c;
    };
    const idCell = cell("th", "Job", "job-id");
    idCell.scope = "row";
    idCell.append(node("code", "", id));
    const progress = node("progress");
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute("aria-label", `progress of job ${id}`);
    const pct = node("span", "pct", "0 %");
    const progressCell = node("span");
    progressCell.append(progress, " ", pct);
    job = {
      id, tr, state: { job_id: id, status: "", percent: 0, message: "", error: "", last_event_id: "" },
      type: cell("td", "Type"), status: node("span", "badge"), progress, pct,
    };
    cell("td", "Status", "status").append(job.status);
    cell("td", "Progress", "progress").append(progressCell);
    job.msg = cell("td", "Message", "msg");
    job.time = node("time");
    cell("td", "Updated").append(job.time);
    st.jobs.set(id, job);
    el.jobsBody.prepend(tr);
    el.jobsEmpty.hidden = true;
    if (st.jobs.size > MAX_JOBS) {
      const oldest = st.jobs.keys().next().value;
      st.jobs.get(oldest).tr.remove();
      st.jobs.delete(oldest);
    }
    return job;
  }

  function renderJob(job) {
    const s = job.state;
    const pct = Math.max(0, Math.min(100, Number(s.percent) || 0));
    job.tr.dataset.status = s.status || "";
    job.type.textContent = s.job_type || "";
    job.status.textContent = s.status || "?";
    job.progress.value = pct;
    job.progress.textContent = `${pct} %`;
    job.pct.textContent = `${pct} %`;
    job.msg.textContent = s.status === "failed" ? (s.error || "") : (s.message || "");
    job.time.textContent = s.updated_at ? clockTime(s.updated_at) : "";
    job.time.dateTime = s.updated_at || "";
  }

  // refreshState refetches the queue (unless given) and every job on screen from the folded
  // state, after a resync or a reconnect without a position. Six requests at a time.
  async function refreshState(queue) {
    const gen = st.gen;
    if (!queue) {
      try {
        const r = await api("/api/v1/queue");
        if (gen !== st.gen) return;
        if (r.status === 200 && r.body) setQueue(r.body);
      } catch (_) { /* the next resync or event will tell */ }
    }
    const ids = [...st.jobs.keys()];
    for (let i = 0; i < ids.length; i += 6) {
      const results = await Promise.all(ids.slice(i, i + 6).map((id) =>
        api(`/api/v1/jobs/${encodeURIComponent(id)}`).catch(() => null)));
      if (gen !== st.gen) return;
      for (const r of results) if (r && r.status === 200) mergeJob(r.body);
    }
  }

  // ---- Settings form. ----

  function readSettings() {
    const token = el.token.value.trim();
    if (token && !/^[A-Za-z0-9._~+/=-]+$/.test(token)) {
      throw new Error("The token has characters a cookie cannot carry; paste the JWT itself.");
    }
    let since = el.since.value.trim();
    if (since === "now") since = "";
    if (since && !/^(0|\d{1,20}-\d{1,20})$/.test(since)) {
      throw new Error("Start from: leave empty for live, 0 for the oldest kept event, or an id such as 1764194400123-0.");
    }
    return { token, since, topics: splitList(el.topics.value), types: splitList(el.types.value) };
  }

  function saveSettings() {
    sessionStorage.setItem(SETTINGS_KEY, JSON.stringify({
      transport: st.transport, topics: el.topics.value, types: el.types.value, since: el.since.value,
    }));
  }

  function loadSettings() {
    let s = {};
    try { s = JSON.parse(sessionStorage.getItem(SETTINGS_KEY) || "{}") || {}; } catch (_) { /* defaults */ }
    if (s.transport === "ws" || s.transport === "sse") st.transport = s.transport;
    el.topics.value = s.topics || "";
    el.types.value = s.types || "";
    el.since.value = s.since || "";
    for (const r of el.transports) r.checked = r.value === st.transport;
    el.token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  }

  // connectFromForm applies the form and connects. A new start position starts a fresh view;
  // otherwise the page resumes from its last event id.
  function connectFromForm() {
    let s;
    try {
      s = readSettings();
    } catch (err) {
      showFormError(err.message);
      return;
    }
    showFormError("");
    if (s.since !== st.since) {
      setLastId("");
      el.events.replaceChildren();
      el.eventsEmpty.hidden = false;
    }
    Object.assign(st, { since: s.since, topics: s.topics, types: s.types });
    setToken(s.token);
    saveSettings();
    start();
  }

  function init() {
    for (const id of ["conn", "settings", "token", "topics", "types", "since", "disconnect", "forget",
      "clear", "events", "count", "queue", "jobs", "form-error", "events-empty", "jobs-empty"]) {
      el[id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = document.getElementById(id);
    }
    el.lastId = document.getElementById("last-id");
    el.typeNames = document.getElementById("type-names");
    el.typeList = document.getElementById("type-list");
    el.typesEmpty = document.getElementById("types-empty");
    el.jobsBody = el.jobs.tBodies[0];
    el.transports = [...document.querySelectorAll('input[name="transport"]')];
    loadSettings();

    el.settings.addEventListener("submit", (e) => {
      e.preventDefault();
      connectFromForm();
    });
    for (const r of el.transports) {
      r.addEventListener("change", () => {
        if (!r.checked) return;
        st.transport = r.value;
        saveSettings();
        if (st.active) start(); // resumes from the last id on the other transport
        else el.conn.dataset.transport = st.transport;
      });
    }
    el.disconnect.addEventListener("click", () => {
      stop();
      setState("idle", "disconnected");
    });
    el.forget.addEventListener("click", () => {
      el.token.value = "";
      setToken("");
      if (st.active) start();
    });
    el.clear.addEventListener("click", () => {
      el.events.replaceChildren();
      el.eventsEmpty.hidden = false;
    });
    window.addEventListener("online", () => {
      if (st.active && st.timer) open(); // the network is back: do not wait out the backoff
    });
    connectFromForm();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

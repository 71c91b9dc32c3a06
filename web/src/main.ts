// The Verse web UI: a dashboard of envs, and for each env its desktop (noVNC),
// terminal (xterm.js) and logs. Connections stay open while you switch between
// envs ("warm"), so a switch only shows what is already there.
import RFB from "@novnc/novnc";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import "./style.css";

interface Label { color: string; name: string }
interface DesktopInfo { size: string; wm: string; clipboard?: string }
interface Env {
  name: string;
  state: string;
  backend: string;
  image: string;
  cpu: number | null;
  memory: number | null;
  uptime_secs: number | null;
  cpu_usage_ns: number | null;
  memory_bytes: number | null;
  error: string | null;
  desktop?: DesktopInfo | null;
  label?: Label | null;
  health?: string | null;
  note?: string | null;
  network?: string | null;
  network_detail?: string | null;
  downloads?: { hold_ms: number; release_to: string | null } | null;
}
interface EventInfo { id: number; time_ms: number; env: string; kind: string; state: string | null; cause: string }
interface Snapshot { id: string; env: string; label: string | null; size: number; files: number; new_bytes: number; created_at: number; origin: string; frozen_ms: number }
interface Finding { check: string; message: string }
interface QItem {
  id: string; env: string; name: string; received_at: number; hold_until: number;
  state: "held" | "released" | "rejected";
  report: { size: number; blake3: string; content_type: string | null; findings: Finding[] };
  released_to: string | null; forced: boolean; target?: string | null;
}
type View = "desktop" | "terminal" | "logs" | "snapshots" | "quarantine";

// Measurements the benchmark and the tests read (bench/web/).
interface Metrics {
  /** Events received from the daemon's stream, and full list fetches made. */
  events: number;
  listFetches: number;
  switches: { env: string; ms: number }[];
  /** Cut text that reached the page from each env's desktop. */
  clipboard: Record<string, string[]>;
  firstFrame: { env: string; ms: number; at: number }[];
  frames: Record<string, number>;
  bytes: Record<string, number>;
}
const metrics: Metrics = { events: 0, listFetches: 0, switches: [], firstFrame: [], frames: {}, bytes: {}, clipboard: {} };
// `paste` sends cut text whatever the env's policy says: the daemon is what
// enforces it, and the tests check that it does.
(window as unknown as { __verse: unknown }).__verse = {
  metrics,
  paste: (name: string, text: string) => desktops.get(name)?.rfb?.clipboardPasteFrom(text),
};

const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;
const wsBase = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;

let envs: Env[] = [];
const lastCpu = new Map<string, { ns: number; at: number; pct: number }>();
let current: string | null = null;
const views = new Map<string, View>();

// ---- data ---------------------------------------------------------------

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, credentials: "same-origin" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "content-type": "application/json" };
  }
  const res = await fetch(path, init);
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try {
      const body = JSON.parse(text);
      message = body.error + (body.hint ? ` (${body.hint})` : "");
    } catch { /* plain text */ }
    throw new Error(message || `${res.status}`);
  }
  return (text ? JSON.parse(text) : null) as T;
}

async function refresh() {
  try {
    envs = await api<Env[]>("GET", "/v1/envs");
    metrics.listFetches++;
    if (!streamDown) $("#conn").textContent = "";
  } catch (e) {
    $("#conn").textContent = `daemon unreachable: ${(e as Error).message}`;
    return;
  }
  const now = performance.now();
  for (const env of envs) sampleCpu(env, now);
  render();
}

/** Fetches one env after an event named it (gone: drops it from the list). */
async function refreshEnv(name: string) {
  let env: Env | null = null;
  const res = await fetch(`/v1/envs/${name}`, { credentials: "same-origin" }).catch(() => null);
  if (res?.ok) {
    env = (await res.json()) as Env;
  } else if (res?.status !== 404) {
    // Not an answer about the env (daemon restarting, network): keep what is shown.
    return;
  }
  const i = envs.findIndex((e) => e.name === name);
  if (env) {
    sampleCpu(env, performance.now());
    if (i >= 0) envs[i] = env;
    else envs = [...envs, env].sort((a, b) => a.name.localeCompare(b.name));
  } else if (i >= 0) {
    envs.splice(i, 1);
    dropSessions(name);
  }
  render();
}

function sampleCpu(env: Env, now: number) {
  {
    const prev = lastCpu.get(env.name);
    if (env.cpu_usage_ns != null) {
      let pct = prev?.pct ?? 0;
      if (prev && now > prev.at) pct = ((env.cpu_usage_ns - prev.ns) / 1e6 / (now - prev.at)) * 100;
      lastCpu.set(env.name, { ns: env.cpu_usage_ns, at: now, pct: Math.max(0, pct) });
    } else {
      lastCpu.delete(env.name);
    }
  }
}

// ---- live updates -------------------------------------------------------
//
// The daemon's event stream (GET /v1/events?follow=true, JSON lines over a
// chunked response) says when an env changes state, whoever caused it; the UI
// applies the new state at once and then fetches that env alone. Figures that
// change without an event (cpu, memory, uptime) are re-read every 5 s while
// the tab is visible.

let lastEvent = 0;
let streamDown = false;
const pendingEnv = new Map<string, number>();

function onEvent(event: EventInfo) {
  metrics.events++;
  lastEvent = Math.max(lastEvent, event.id);
  const env = envOf(event.env);
  if (env && event.state) {
    env.state = event.state;
    render();
  }
  // Coalesce bursts (a restart is several events) into one fetch per env.
  if (!pendingEnv.has(event.env)) {
    pendingEnv.set(event.env, window.setTimeout(() => {
      pendingEnv.delete(event.env);
      void refreshEnv(event.env);
    }, 50));
  }
  if (event.kind.startsWith("snapshot") || event.kind === "restored") {
    if (current === event.env && views.get(current) === "snapshots") void loadSnapshots(event.env);
  }
}

async function watchEvents() {
  for (;;) {
    try {
      // limit=0: no past events the first time; after a reconnect, those missed.
      const query = lastEvent ? `after=${lastEvent}` : "limit=0";
      const res = await fetch(`/v1/events?follow=true&${query}`, { credentials: "same-origin" });
      if (!res.ok || !res.body) throw new Error(`${res.status}`);
      if (streamDown) { streamDown = false; $("#conn").textContent = ""; await refresh(); }
      document.body.dataset.live = "1";
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffered = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const text = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (!text) continue;
          const msg = JSON.parse(text);
          if ("lagged" in msg) { await refresh(); continue; }
          onEvent(msg as EventInfo);
        }
      }
      throw new Error("the stream ended");
    } catch (e) {
      delete document.body.dataset.live;
      streamDown = true;
      $("#conn").textContent = `live updates lost (${(e as Error).message}); reconnecting…`;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

// ---- rendering ----------------------------------------------------------

function fmtBytes(n: number | null | undefined): string {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
function fmtUptime(s: number | null): string {
  if (s == null) return "–";
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}
function labelColor(env: Env | undefined): string {
  return env?.label?.color ?? "#555";
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...kids: (Node | string)[]) {
  const node = Object.assign(document.createElement(tag), props);
  for (const k of kids) node.append(k);
  return node;
}

function render() {
  // tabs
  const tabs = $("#tabs");
  tabs.replaceChildren(...envs.map((env, i) => {
    const tab = el("button", { className: "tab" + (env.name === current ? " active" : ""), title: `${env.name} (Alt+${i + 1})` });
    tab.dataset.env = env.name;
    tab.style.setProperty("--label", labelColor(env));
    tab.append(el("span", { className: "dot " + env.state }), env.label?.name ? `${env.name} · ${env.label.name}` : env.name);
    tab.onclick = () => open(env.name);
    return tab;
  }));
  // dashboard
  const body = $("#envs tbody");
  body.replaceChildren(...envs.map((env) => {
    const row = el("tr");
    row.dataset.env = env.name;
    const name = el("td", {}, el("a", { href: `#/env/${env.name}`, textContent: env.name }));
    if (env.label) {
      const chip = el("span", { className: "chip", textContent: env.label.name });
      chip.style.setProperty("--label", env.label.color);
      name.append(" ", chip);
    }
    const cpu = lastCpu.get(env.name);
    const cpuText = env.state === "running" && cpu ? `${cpu.pct.toFixed(1)}%` : "–";
    const mem = env.state === "running" ? fmtBytes(env.memory_bytes) + (env.memory ? ` / ${fmtBytes(env.memory)}` : "") : "–";
    const state = el("td", { className: `state ${env.state}`, textContent: env.state, title: env.error ?? env.note ?? "" });
    state.dataset.role = "state";
    const health = el("td", { className: `health ${env.health ?? ""}`, textContent: env.health ?? "–" });
    health.dataset.role = "health";
    const net = el("td", { textContent: env.network ?? "–", title: env.network_detail ?? "" });
    net.dataset.role = "network";
    const actions = el("td", { className: "actions" });
    const up = env.state === "running" || env.state === "paused";
    actions.append(actionButton(env.name, up ? "down" : "up"));
    if (env.state === "running") actions.append(" ", actionButton(env.name, "pause"));
    if (env.state === "paused") actions.append(" ", actionButton(env.name, "unpause"));
    actions.append(" ", el("button", { textContent: "Open", onclick: () => open(env.name) }));
    row.append(name, state, health, el("td", { textContent: env.backend }), el("td", { textContent: env.image }), net,
      el("td", { textContent: cpuText }), el("td", { textContent: mem }), el("td", { textContent: fmtUptime(env.uptime_secs) }), actions);
    return row;
  }));
  $("#empty").hidden = envs.length > 0;
  if (current) renderEnvHead();
}

type Verb = "up" | "down" | "pause" | "unpause" | "hibernate" | "resume" | "snapshot";
const verbs: Record<Verb, [string, string]> = {
  up: ["Start", "Starting…"],
  down: ["Stop", "Stopping…"],
  pause: ["Pause", "Pausing…"],
  unpause: ["Unpause", "Unpausing…"],
  hibernate: ["Hibernate", "Hibernating…"],
  resume: ["Resume", "Resuming…"],
  snapshot: ["Snapshot", "Taking a snapshot…"],
};

function actionButton(name: string, verb: Verb): HTMLButtonElement {
  const b = el("button", { textContent: verbs[verb][0] });
  b.dataset.action = verb === "up" ? "start" : verb === "down" ? "stop" : verb;
  b.onclick = () => lifecycle(name, verb, b);
  return b;
}

/** A line under the bar saying what went wrong (or right), until dismissed or replaced. */
function say(text: string, kind: "error" | "info" = "info") {
  const msg = $("#msg");
  msg.hidden = !text;
  msg.className = kind;
  $("#msg-text").textContent = text;
}

async function lifecycle(name: string, verb: Verb, button?: HTMLButtonElement) {
  if (button) { button.disabled = true; button.textContent = verbs[verb][1]; }
  try {
    if (verb === "snapshot") {
      const snap = await api<Snapshot>("POST", `/v1/envs/${name}/snapshots`, { label: null });
      say(`${name}: snapshot ${snap.id} taken, ${fmtBytes(snap.new_bytes)} new`);
      if (current === name && views.get(name) === "snapshots") await loadSnapshots(name);
    } else {
      await api("POST", `/v1/envs/${name}/${verb}`);
      say("");
    }
  } catch (e) {
    say(`${name}: ${verbs[verb][0].toLowerCase()} refused: ${(e as Error).message}`, "error");
  }
  if (button) { button.disabled = false; button.textContent = verbs[verb][0]; }
  if (verb === "down") dropSessions(name);
  // The event stream updates the list; this makes the answer visible at once.
  await refreshEnv(name);
  if (verb === "up" && current === name) showView(name, views.get(name) ?? defaultView(name));
}

// ---- env page -----------------------------------------------------------

interface DesktopSession { pane: HTMLElement; rfb: RFB | null; notice: HTMLElement; connected: boolean }
interface TermSession { pane: HTMLElement; term: Terminal; fit: FitAddon; ws: WebSocket | null }
const desktops = new Map<string, DesktopSession>();
const terminals = new Map<string, TermSession>();
const logPanes = new Map<string, { pane: HTMLElement; abort: AbortController }>();

function envOf(name: string) { return envs.find((e) => e.name === name); }
function defaultView(name: string): View { return envOf(name)?.desktop ? "desktop" : "terminal"; }

function renderEnvHead() {
  const env = envOf(current!);
  if (!env) return;
  $("#envname").textContent = env.name;
  const chip = $("#envlabel");
  chip.textContent = env.label?.name ?? "";
  chip.style.setProperty("--label", labelColor(env));
  const state = $("#envstate");
  state.textContent = env.state + (env.error ? `: ${env.error}` : "");
  state.className = `state ${env.state}`;
  const up = env.state === "running" || env.state === "paused";
  ($("#btn-start") as HTMLButtonElement).hidden = up || env.state === "hibernated";
  ($("#btn-stop") as HTMLButtonElement).hidden = !up;
  ($("#btn-pause") as HTMLButtonElement).hidden = env.state !== "running";
  ($("#btn-unpause") as HTMLButtonElement).hidden = env.state !== "paused";
  ($("#btn-snapshot") as HTMLButtonElement).hidden = env.state === "hibernated";
  ($("#btn-hibernate") as HTMLButtonElement).hidden = env.state !== "running";
  ($("#btn-resume") as HTMLButtonElement).hidden = env.state !== "hibernated";
  $("#envnet").textContent = `network: ${env.network ?? "–"}${env.network_detail ? ` (${env.network_detail})` : ""}`
    + (env.health ? ` · health: ${env.health}` : "");
  for (const b of document.querySelectorAll<HTMLButtonElement>("#envhead .views button")) {
    b.hidden = (b.dataset.view === "desktop" && !env.desktop) || (b.dataset.view === "quarantine" && !env.downloads);
    b.classList.toggle("active", b.dataset.view === views.get(env.name));
  }
}

function newPane(name: string, kind: View): HTMLElement {
  const pane = el("div", { className: `pane ${kind}` });
  pane.dataset.env = name;
  pane.dataset.view = kind;
  const env = envOf(name);
  pane.style.setProperty("--label", labelColor(env));
  if (env?.label?.name) pane.append(el("span", { className: "label-name", textContent: env.label.name }));
  $("#stage").append(pane);
  return pane;
}

function desktopSession(name: string): DesktopSession {
  let s = desktops.get(name);
  if (s && (s.rfb || !s.connected)) {
    if (!s.rfb) connectDesktop(name, s);
    return s;
  }
  const pane = newPane(name, "desktop");
  const notice = el("div", { className: "notice", textContent: "connecting…" });
  pane.append(notice, clipBar(name));
  s = { pane, rfb: null, notice, connected: false };
  desktops.set(name, s);
  connectDesktop(name, s);
  return s;
}

function connectDesktop(name: string, s: DesktopSession) {
  const started = performance.now();
  const ws = new WebSocket(`${wsBase}/ws/envs/${name}/desktop`, ["binary"]);
  ws.binaryType = "arraybuffer";
  metrics.bytes[name] ??= 0;
  metrics.frames[name] ??= 0;
  ws.addEventListener("message", (e) => { metrics.bytes[name] += (e.data as ArrayBuffer).byteLength ?? 0; });
  const rfb = new RFB(s.pane, ws, { shared: true });
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.background = "#000";
  s.rfb = rfb;
  // Count painted frames (for the benchmark) and note the first one.
  const display = (rfb as unknown as { _display?: { flip: (q?: boolean) => void } })._display;
  if (display) {
    const flip = display.flip.bind(display);
    let first = true;
    display.flip = (q?: boolean) => {
      flip(q);
      metrics.frames[name]++;
      if (first) { first = false; metrics.firstFrame.push({ env: name, ms: performance.now() - started, at: performance.now() }); s.pane.dataset.painted = "1"; }
    };
  }
  rfb.addEventListener("clipboard", (e) => {
    const text = (e as CustomEvent<{ text: string }>).detail.text;
    (metrics.clipboard[name] ??= []).push(text);
    const out = s.pane.querySelector<HTMLTextAreaElement>(".clip-out");
    if (out) out.value = text;
    navigator.clipboard?.writeText(text).catch(() => { /* needs focus and permission; the box has it */ });
  });
  rfb.addEventListener("connect", () => { s.connected = true; s.notice.hidden = true; s.pane.dataset.connected = "1"; });
  rfb.addEventListener("disconnect", () => {
    s.rfb = null;
    s.connected = false;
    delete s.pane.dataset.connected;
    s.notice.hidden = false;
    s.notice.textContent = closeReason.get(ws) ?? "the desktop closed";
    s.pane.querySelectorAll("canvas").forEach((c) => c.parentElement?.remove());
  });
  ws.addEventListener("close", (e) => { closeReason.set(ws, e.reason || `disconnected (${e.code})`); });
}
const closeReason = new WeakMap<WebSocket, string>();

/** The desktop's clipboard, as far as the env's `clipboard` policy lets it cross. */
function clipBar(name: string): HTMLElement {
  const policy = envOf(name)?.desktop?.clipboard ?? "none";
  const bar = el("div", { className: "clipbar" });
  bar.dataset.policy = policy;
  if (policy === "none") {
    bar.append(el("span", { className: "muted", textContent: "clipboard: off", title: `clipboard = "none": nothing is copied to or from ${name}` }));
    return bar;
  }
  if (policy === "in" || policy === "both") {
    const text = document.createElement("input");
    text.className = "clip-in";
    text.placeholder = `text to paste into ${name}`;
    const send = el("button", { textContent: "Send to env", title: `puts the text on ${name}'s clipboard` });
    send.dataset.action = "clip-send";
    send.onclick = () => {
      desktops.get(name)?.rfb?.clipboardPasteFrom(text.value);
      say(`${name}: ${text.value.length} characters put on its clipboard`);
    };
    bar.append(text, send);
  }
  if (policy === "out" || policy === "both") {
    const out = document.createElement("textarea");
    out.className = "clip-out";
    out.readOnly = true;
    out.rows = 1;
    out.placeholder = `text copied in ${name} shows here`;
    bar.append(out);
  }
  return bar;
}

function terminalSession(name: string): TermSession {
  let s = terminals.get(name);
  if (!s) {
    const pane = newPane(name, "terminal");
    const term = new Terminal({ cursorBlink: true, fontSize: 14, theme: { background: "#000000" } });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(pane);
    s = { pane, term, fit, ws: null };
    terminals.set(name, s);
    const session = s;
    term.onData((data) => { if (session.ws?.readyState === WebSocket.OPEN) session.ws.send(new TextEncoder().encode(data)); });
    term.onResize(({ rows, cols }) => { if (session.ws?.readyState === WebSocket.OPEN) session.ws.send(JSON.stringify({ resize: [rows, cols] })); });
    new ResizeObserver(() => { if (!pane.hidden) fit.fit(); }).observe(pane);
  }
  if (!s.ws || s.ws.readyState > WebSocket.OPEN) connectTerminal(name, s);
  return s;
}

function connectTerminal(name: string, s: TermSession) {
  try { s.fit.fit(); } catch { /* not laid out yet */ }
  const ws = new WebSocket(`${wsBase}/ws/envs/${name}/terminal?rows=${s.term.rows}&cols=${s.term.cols}`);
  ws.binaryType = "arraybuffer";
  s.ws = ws;
  ws.onopen = () => { s.pane.dataset.connected = "1"; };
  ws.onmessage = (e) => {
    if (typeof e.data === "string") {
      const msg = JSON.parse(e.data);
      if ("exit" in msg) s.term.write(`\r\n[the shell exited with ${msg.exit}]\r\n`);
      if ("error" in msg) s.term.write(`\r\n[error: ${msg.error}]\r\n`);
    } else {
      s.term.write(new Uint8Array(e.data));
    }
  };
  ws.onclose = (e) => {
    delete s.pane.dataset.connected;
    if (e.code !== 1000) s.term.write(`\r\n[${e.reason || `disconnected (${e.code})`}]\r\n`);
    s.ws = null;
  };
}

function logsSession(name: string) {
  let s = logPanes.get(name);
  if (s) return s;
  const pane = newPane(name, "logs");
  const abort = new AbortController();
  s = { pane, abort };
  logPanes.set(name, s);
  const text = el("div");
  pane.append(text);
  (async () => {
    try {
      const res = await fetch(`/v1/envs/${name}/logs?follow=true`, { signal: abort.signal });
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text.append(decoder.decode(value, { stream: true }));
        pane.scrollTop = pane.scrollHeight;
      }
      text.append("\n[end of log]");
    } catch { /* aborted */ }
    logPanes.delete(name);
  })();
  return s;
}

function dropSessions(name: string) {
  const d = desktops.get(name);
  if (d) { d.rfb?.disconnect(); d.pane.remove(); desktops.delete(name); }
  const t = terminals.get(name);
  if (t) { t.ws?.close(); t.term.dispose(); t.pane.remove(); terminals.delete(name); }
  const l = logPanes.get(name);
  if (l) { l.abort.abort(); l.pane.remove(); logPanes.delete(name); }
}

function showView(name: string, view: View) {
  const env = envOf(name);
  if (view === "desktop" && env && !env.desktop) view = "terminal";
  views.set(name, view);
  let pane: HTMLElement;
  if (view === "snapshots") {
    pane = snapshotsPane(name);
    void loadSnapshots(name);
  } else if (view === "quarantine") {
    pane = quarantinePane(name);
    void loadQuarantine(name);
  } else if (env?.state !== "running" && view !== "logs") {
    pane = stoppedPane(name);
  } else if (view === "desktop") {
    pane = desktopSession(name).pane;
  } else if (view === "terminal") {
    pane = terminalSession(name).pane;
  } else {
    pane = logsSession(name).pane;
  }
  for (const p of document.querySelectorAll<HTMLElement>("#stage .pane")) p.hidden = p !== pane;
  if (view === "terminal") {
    const t = terminals.get(name);
    if (t) { try { t.fit.fit(); } catch { /* hidden */ } t.term.focus(); }
  }
  if (view === "desktop") desktops.get(name)?.rfb?.focus();
  renderEnvHead();
  return pane;
}

function snapshotsPane(name: string): HTMLElement {
  let pane = document.querySelector<HTMLElement>(`#stage .pane.snapshots[data-env="${name}"]`);
  if (!pane) {
    pane = newPane(name, "snapshots");
    const label: HTMLInputElement = document.createElement("input");
    label.placeholder = "label (optional)";
    label.className = "snap-label";
    const take: HTMLButtonElement = document.createElement("button");
    take.textContent = "Take a snapshot";
    take.dataset.action = "take-snapshot";
    take.onclick = async () => {
      take.disabled = true;
      try {
        const snap = await api<Snapshot>("POST", `/v1/envs/${name}/snapshots`, { label: label.value.trim() || null });
        label.value = "";
        say(`${name}: snapshot ${snap.id} taken, ${fmtBytes(snap.new_bytes)} new`);
      } catch (e) {
        say(`${name}: snapshot refused: ${(e as Error).message}`, "error");
      }
      take.disabled = false;
      await loadSnapshots(name);
    };
    const table = el("table", { className: "snaplist" });
    table.append(el("thead", {}, el("tr", {}, ...["id", "label", "taken", "size", "new", "frozen", "by", ""].map((h) => el("th", { textContent: h })))), el("tbody"));
    const bar = document.createElement("div");
    bar.className = "snapbar";
    bar.append(label, " ", take);
    const empty = document.createElement("p");
    empty.className = "muted empty";
    empty.textContent = "No snapshots yet.";
    pane.append(bar, table, empty);
  }
  return pane;
}

async function loadSnapshots(name: string) {
  const pane = snapshotsPane(name);
  let snaps: Snapshot[];
  try {
    snaps = await api<Snapshot[]>("GET", `/v1/envs/${name}/snapshots`);
  } catch (e) {
    say(`${name}: listing snapshots: ${(e as Error).message}`, "error");
    return;
  }
  (pane.querySelector(".empty") as HTMLElement).hidden = snaps.length > 0;
  pane.querySelector(".snaplist tbody")!.replaceChildren(...snaps.map((s) => {
    const row = el("tr");
    row.dataset.snapshot = s.id;
    const restore = el("button", { textContent: "Restore", title: `put ${name}'s files back as they were in ${s.id} (restarts it if running)` });
    restore.onclick = async () => {
      if (!confirm(`Restore ${name} to ${s.id}? Its current files are replaced.`)) return;
      try { await api("POST", `/v1/envs/${name}/restore`, { snapshot: s.id }); say(`${name}: restored ${s.id}`); }
      catch (e) { say(`${name}: restore refused: ${(e as Error).message}`, "error"); }
    };
    const remove = el("button", { textContent: "Delete" });
    remove.onclick = async () => {
      try { await api("DELETE", `/v1/envs/${name}/snapshots/${s.id}`); }
      catch (e) { say(`${name}: ${(e as Error).message}`, "error"); }
      await loadSnapshots(name);
    };
    row.append(el("td", { textContent: s.id }), el("td", { textContent: s.label ?? "" }),
      el("td", { textContent: new Date(s.created_at * 1000).toLocaleString() }), el("td", { textContent: fmtBytes(s.size) }),
      el("td", { textContent: fmtBytes(s.new_bytes) }), el("td", { textContent: `${s.frozen_ms} ms` }),
      el("td", { textContent: s.origin }), el("td", {}, restore, " ", remove));
    return row;
  }));
}

// ---- quarantine inbox -----------------------------------------------------

function quarantinePane(name: string): HTMLElement {
  let pane = document.querySelector<HTMLElement>(`#stage .pane.quarantine[data-env="${name}"]`);
  if (!pane) {
    pane = newPane(name, "quarantine");
    const to = envOf(name)?.downloads?.release_to;
    const refresh = el("button", { textContent: "Refresh" });
    refresh.dataset.action = "q-refresh";
    refresh.onclick = () => void loadQuarantine(name);
    const bar = el("div", { className: "qbar" },
      el("span", { className: "muted", textContent: `Files written to ${name}'s /downloads, held and scanned. ` + (to
        ? `Clean files go to ${to} once held long enough; flagged ones wait for you.`
        : "Nothing is released without you (no release_to).") }), " ", refresh);
    const table = el("table", { className: "qlist" });
    table.append(el("thead", {}, el("tr", {}, ...["file", "state", "size", "type", "scan", "received", "release to", ""].map((h) => el("th", { textContent: h })))), el("tbody"));
    const empty = el("p", { className: "muted empty", textContent: "Nothing in quarantine." });
    pane.append(bar, table, empty);
  }
  return pane;
}

let quarantineTimer = 0;
/** Why the daemon refused the last release or reject of an item, until one succeeds. */
const refusals = new Map<string, string>();
/** Where a person chose to send an item, kept across re-reads of the list. */
const chosen = new Map<string, string>();
async function loadQuarantine(name: string) {
  window.clearTimeout(quarantineTimer);
  const pane = quarantinePane(name);
  let items: QItem[];
  try {
    items = (await api<QItem[]>("GET", "/v1/quarantine")).filter((i) => i.env === name);
  } catch (e) {
    say(`${name}: listing its quarantine: ${(e as Error).message}`, "error");
    return;
  }
  // Held files first, newest first.
  items.sort((a, b) => Number(b.state === "held") - Number(a.state === "held") || b.received_at - a.received_at);
  (pane.querySelector(".empty") as HTMLElement).hidden = items.length > 0;
  const others = envs.map((e) => e.name).filter((n) => n !== name);
  const defaultTo = envOf(name)?.downloads?.release_to ?? null;
  pane.querySelector(".qlist tbody")!.replaceChildren(...items.map((item) => quarantineRow(name, item, others, defaultTo)));
  // Files arrive and holds pass without an event: re-read while the inbox is shown.
  quarantineTimer = window.setTimeout(() => {
    if (current === name && views.get(name) === "quarantine" && !document.hidden) void loadQuarantine(name);
  }, 3000);
}

function quarantineRow(name: string, item: QItem, others: string[], defaultTo: string | null): HTMLElement {
  const row = el("tr", { className: `q-${item.state}` });
  row.dataset.item = item.id;
  row.dataset.name = item.name;
  row.dataset.state = item.state;
  const flagged = item.report.findings.length > 0;
  const scan = flagged
    ? el("span", { className: "flagged", textContent: item.report.findings.map((f) => `${f.check}: ${f.message}`).join("; ") })
    : el("span", { className: "clean", textContent: "clean" });
  const where = el("td");
  const actions = el("td");
  if (item.state === "held") {
    const choose = document.createElement("select");
    choose.className = "q-to";
    const targets = [...new Set([item.target ?? defaultTo, ...others].filter((t): t is string => !!t))];
    for (const t of targets) choose.append(el("option", { value: t, textContent: t }));
    if (chosen.has(item.id)) choose.value = chosen.get(item.id)!;
    choose.onchange = () => chosen.set(item.id, choose.value);
    where.append(choose);
    const release = el("button", { textContent: "Release" });
    release.dataset.action = "q-release";
    const reject = el("button", { textContent: "Reject" });
    reject.dataset.action = "q-reject";
    const act = async (what: string, path: string, body?: unknown) => {
      release.disabled = reject.disabled = true;
      try {
        const done = await api<QItem>("POST", path, body);
        refusals.delete(item.id);
        say(`${name}: ${item.name} ${done.state}${done.released_to ? ` to ${done.released_to}` : ""}${done.forced ? " (forced past findings)" : ""}`);
      } catch (e) {
        refusals.set(item.id, `${what} refused: ${(e as Error).message}`);
        say(`${name}: ${what} ${item.name} refused: ${(e as Error).message}`, "error");
      }
      await loadQuarantine(name);
    };
    const refusal = refusals.get(item.id);
    if (refusal) {
      row.dataset.refused = refusal;
      actions.append(el("div", { className: "q-refusal", textContent: refusal }));
      if (flagged) {
        const force = el("button", { textContent: "Release anyway", title: "release despite the scan's findings (audited as forced)" });
        force.dataset.action = "q-force";
        force.onclick = () => {
          if (confirm(`Release ${item.name} despite: ${item.report.findings.map((f) => f.message).join("; ")}?`)) {
            void act("release", `/v1/quarantine/${item.id}/release`, { to: choose.value, force: true });
          }
        };
        actions.append(force, " ");
      }
    }
    release.disabled = targets.length === 0;
    release.onclick = () => void act("release", `/v1/quarantine/${item.id}/release`, { to: choose.value, force: false });
    reject.onclick = () => void act("reject", `/v1/quarantine/${item.id}/reject`);
    actions.append(release, " ", reject);
  } else {
    where.textContent = item.released_to ?? "";
  }
  const held = item.state === "held" && item.hold_until * 1000 > Date.now() ? ` (held until ${new Date(item.hold_until * 1000).toLocaleTimeString()})` : "";
  row.append(el("td", { textContent: item.name }), el("td", { textContent: item.state + (item.forced ? " (forced)" : "") + held }),
    el("td", { textContent: fmtBytes(item.report.size) }), el("td", { textContent: item.report.content_type ?? "–" }),
    el("td", {}, scan), el("td", { textContent: new Date(item.received_at * 1000).toLocaleString() }), where, actions);
  return row;
}

function stoppedPane(name: string): HTMLElement {
  let pane = document.querySelector<HTMLElement>(`#stage .pane.stopped[data-env="${name}"]`);
  if (!pane) {
    pane = newPane(name, "logs");
    pane.classList.add("stopped");
    pane.append(el("div", { className: "notice", textContent: `${name} is not running: Start it to see its desktop or terminal.` }));
  }
  return pane;
}

// ---- navigation ---------------------------------------------------------

function open(name: string) {
  if (location.hash !== `#/env/${name}`) location.hash = `#/env/${name}`;
  else route();
}

function route() {
  const match = location.hash.match(/^#\/env\/([a-z0-9-]+)/);
  const switchStart = performance.now();
  if (match && envOf(match[1])) {
    const name = match[1];
    const previous = current;
    current = name;
    $("#dashboard").hidden = true;
    $("#envpage").hidden = false;
    $("#envpage").style.setProperty("--label", labelColor(envOf(name)));
    showView(name, views.get(name) ?? defaultView(name));
    render();
    if (previous !== name) {
      // The switch is done when the browser has painted the new env's pane.
      requestAnimationFrame(() => requestAnimationFrame(() => {
        metrics.switches.push({ env: name, ms: performance.now() - switchStart });
      }));
    }
  } else {
    current = null;
    $("#dashboard").hidden = false;
    $("#envpage").hidden = true;
    render();
  }
}

window.addEventListener("hashchange", route);
// Shortcuts are caught before noVNC or xterm.js see the keys.
window.addEventListener("keydown", (e) => {
  if (!e.altKey || e.ctrlKey || e.metaKey) return;
  let target: string | null | undefined;
  if (e.key >= "1" && e.key <= "9") target = envs[Number(e.key) - 1]?.name;
  else if (e.key === "0") target = null;
  else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
    const i = envs.findIndex((x) => x.name === current);
    const step = e.key === "ArrowRight" ? 1 : -1;
    target = envs[(i + step + envs.length) % envs.length]?.name;
  } else return;
  e.preventDefault();
  e.stopPropagation();
  if (target === null) location.hash = "#/";
  else if (target) open(target);
}, true);

for (const [id, verb] of [["start", "up"], ["stop", "down"], ["pause", "pause"], ["unpause", "unpause"],
  ["snapshot", "snapshot"], ["hibernate", "hibernate"], ["resume", "resume"]] as [string, Verb][]) {
  $(`#btn-${id}`).onclick = (e) => lifecycle(current!, verb, e.currentTarget as HTMLButtonElement);
}
$("#msg-close").onclick = () => say("");
for (const b of document.querySelectorAll<HTMLButtonElement>("#envhead .views button")) {
  b.onclick = () => current && showView(current, b.dataset.view as View);
}

// On-screen keyboard (phones): a hidden input whose keystrokes go to the
// terminal or the desktop.
const kbd = $("#kbd") as HTMLInputElement;
$("#btn-keyboard").onclick = () => kbd.focus();
kbd.addEventListener("input", () => {
  const text = kbd.value;
  kbd.value = "";
  if (!current || !text) return;
  if (views.get(current) === "terminal") {
    terminals.get(current)?.ws?.send(new TextEncoder().encode(text));
  } else {
    const rfb = desktops.get(current)?.rfb;
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      const keysym = cp < 0x100 ? cp : 0x01000000 + cp;
      rfb?.sendKey(keysym, null);
    }
  }
});
kbd.addEventListener("keydown", (e) => {
  if (!current) return;
  const special: Record<string, [number, string]> = { Backspace: [0xff08, "\x7f"], Enter: [0xff0d, "\r"] };
  const k = special[e.key];
  if (!k) return;
  e.preventDefault();
  if (views.get(current) === "terminal") terminals.get(current)?.ws?.send(new TextEncoder().encode(k[1]));
  else desktops.get(current)?.rfb?.sendKey(k[0], null);
});

// ---- compose ------------------------------------------------------------
//
// Words in, a checked spec fragment and its explanation out (POST /v1/compose).
// Adding goes through POST /v1/compose/add, which merges the fragment's new envs
// into the active generation's spec and never touches an env already declared:
// "Preview" shows the diff first (dry run), "Add" applies it as a new generation.

interface ComposeNote { kind: string; text: string }
interface ComposeAnswer { toml: string; notes: ComposeNote[]; pending: { path: string; instead: string }[]; unknown: { word: string; suggestions: string[] }[]; source: string }
interface FieldChange { field: string; old: unknown; new: unknown; applies: string }
interface EnvDiff { env: string; action: string; applies: string; changes: FieldChange[] }
interface AddReport { base_generation: number | null; generation: number | null; added: string[]; diff: { envs: EnvDiff[] }; report: { failures: { env: string; detail: string }[] } | null }

const composeToml = $("#compose-toml") as HTMLTextAreaElement;
const composeAdd = $("#compose-add") as HTMLButtonElement;
let previewed: string | null = null;

$("#compose-form").onsubmit = async (e) => {
  e.preventDefault();
  const prompt = ($("#compose-prompt") as HTMLInputElement).value.trim();
  if (!prompt) return;
  const go = $("#compose-go") as HTMLButtonElement;
  go.disabled = true;
  try {
    const answer = await api<ComposeAnswer>("POST", "/v1/compose", { prompt });
    composeToml.value = answer.toml;
    const notes = [
      ...answer.notes.map((n) => [n.kind, n.text]),
      ...answer.pending.map((p) => ["pending", `${p.path} is not accepted by this Verse yet; meanwhile ${p.instead}`]),
    ];
    $("#compose-notes").replaceChildren(...notes.map(([kind, text]) => {
      const li = el("li", { className: `kind-${kind}` });
      li.append(el("b", { textContent: kind }), text);
      return li;
    }));
    $("#compose-out").hidden = false;
    $("#compose-diff").hidden = true;
    say("");
  } catch (err) {
    say(`compose: ${(err as Error).message}`, "error");
  }
  go.disabled = false;
  previewed = null;
  composeAdd.disabled = true;
};
composeToml.oninput = () => { previewed = null; composeAdd.disabled = true; };
$("#compose-copy").onclick = async () => {
  try { await navigator.clipboard.writeText(composeToml.value); say("the fragment is on the clipboard"); }
  catch { composeToml.select(); say("select-all done: copy with Ctrl+C"); }
};

function showDiff(report: AddReport) {
  const table = el("table");
  table.append(el("thead", {}, el("tr", {}, el("th", { textContent: "env" }), el("th", { textContent: "change" }), el("th", { textContent: "details" }))));
  const body = el("tbody");
  for (const d of report.diff.envs) {
    const mine = report.added.includes(d.env);
    const what = mine ? d.action : `${d.action === "unchanged" ? "unchanged" : `left as it is (${d.action} skipped)`}`;
    const row = el("tr", { className: `act-${mine ? d.action : "keep"}` });
    row.dataset.env = d.env;
    row.append(el("td", { textContent: d.env }), el("td", { textContent: what }),
      el("td", { textContent: d.changes.map((c) => `${c.field}: ${JSON.stringify(c.old)} → ${JSON.stringify(c.new)}`).join("; ") }));
    body.append(row);
  }
  table.append(body);
  const base = report.base_generation == null ? "an empty host (no spec applied yet)" : `generation ${report.base_generation}`;
  const head = el("p", { className: "muted", textContent: `Adding ${report.added.join(", ")} to ${base}:` });
  $("#compose-diff").replaceChildren(head, table);
  $("#compose-diff").hidden = false;
}

$("#compose-preview").onclick = async () => {
  const toml = composeToml.value;
  try {
    const report = await api<AddReport>("POST", "/v1/compose/add", { toml, dry_run: true });
    showDiff(report);
    previewed = toml;
    composeAdd.disabled = false;
    say("");
  } catch (err) {
    previewed = null;
    composeAdd.disabled = true;
    $("#compose-diff").hidden = true;
    say(`adding to the spec refused: ${(err as Error).message}`, "error");
  }
};
composeAdd.onclick = async () => {
  if (previewed === null) return;
  composeAdd.disabled = true;
  composeAdd.textContent = "Adding…";
  try {
    const report = await api<AddReport>("POST", "/v1/compose/add", { toml: previewed, dry_run: false });
    const failures = report.report?.failures ?? [];
    if (failures.length) say(`generation ${report.generation}: ${failures.map((f) => `${f.env}: ${f.detail}`).join("; ")}`, "error");
    else say(`added ${report.added.join(", ")}: generation ${report.generation} is active (verse rollback undoes it)`);
    previewed = null;
  } catch (err) {
    say(`adding to the spec refused: ${(err as Error).message}`, "error");
    composeAdd.disabled = false;
  }
  composeAdd.textContent = "Add to the spec";
  await refresh();
};

// Live state: the event stream for changes, a slow re-read for usage figures.
await refresh();
route();
void watchEvents();
setInterval(() => { if (document.visibilityState === "visible") void refresh(); }, 5000);

// The Verse web UI: a dashboard of envs, and for each env its desktop (noVNC),
// terminal (xterm.js) and logs. Connections stay open while you switch between
// envs ("warm"), so a switch only shows what is already there.
import RFB from "@novnc/novnc";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import "./style.css";

interface Label { color: string; name: string }
interface DesktopInfo { size: string; wm: string }
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
}
type View = "desktop" | "terminal" | "logs";

// Measurements the benchmark and the tests read (bench/web/).
interface Metrics {
  switches: { env: string; ms: number }[];
  firstFrame: { env: string; ms: number; at: number }[];
  frames: Record<string, number>;
  bytes: Record<string, number>;
}
const metrics: Metrics = { switches: [], firstFrame: [], frames: {}, bytes: {} };
(window as unknown as { __verse: unknown }).__verse = { metrics };

const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;
const wsBase = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;

let envs: Env[] = [];
const lastCpu = new Map<string, { ns: number; at: number; pct: number }>();
let current: string | null = null;
const views = new Map<string, View>();

// ---- data ---------------------------------------------------------------

async function api<T>(method: string, path: string): Promise<T> {
  const res = await fetch(path, { method, credentials: "same-origin" });
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
    $("#conn").textContent = "";
  } catch (e) {
    $("#conn").textContent = `daemon unreachable: ${(e as Error).message}`;
    return;
  }
  const now = performance.now();
  for (const env of envs) {
    const prev = lastCpu.get(env.name);
    if (env.cpu_usage_ns != null) {
      let pct = prev?.pct ?? 0;
      if (prev && now > prev.at) pct = ((env.cpu_usage_ns - prev.ns) / 1e6 / (now - prev.at)) * 100;
      lastCpu.set(env.name, { ns: env.cpu_usage_ns, at: now, pct: Math.max(0, pct) });
    } else {
      lastCpu.delete(env.name);
    }
  }
  render();
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
    const state = el("td", { className: `state ${env.state}`, textContent: env.state, title: env.error ?? "" });
    state.dataset.role = "state";
    const actions = el("td");
    const running = env.state === "running";
    const act = el("button", { textContent: running ? "Stop" : "Start" });
    act.dataset.action = running ? "stop" : "start";
    act.onclick = () => lifecycle(env.name, running ? "down" : "up", act);
    actions.append(act, " ", el("button", { textContent: "Open", onclick: () => open(env.name) }));
    row.append(name, state, el("td", { textContent: env.backend }), el("td", { textContent: env.image }),
      el("td", { textContent: cpuText }), el("td", { textContent: mem }), el("td", { textContent: fmtUptime(env.uptime_secs) }), actions);
    return row;
  }));
  $("#empty").hidden = envs.length > 0;
  if (current) renderEnvHead();
}

async function lifecycle(name: string, verb: "up" | "down", button?: HTMLButtonElement) {
  if (button) { button.disabled = true; button.textContent = verb === "up" ? "Starting…" : "Stopping…"; }
  try {
    await api("POST", `/v1/envs/${name}/${verb}`);
  } catch (e) {
    alert(`${name}: ${(e as Error).message}`);
  }
  if (verb === "down") dropSessions(name);
  await refresh();
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
  ($("#btn-start") as HTMLButtonElement).hidden = env.state === "running";
  ($("#btn-stop") as HTMLButtonElement).hidden = env.state !== "running";
  for (const b of document.querySelectorAll<HTMLButtonElement>("#envhead .views button")) {
    b.hidden = b.dataset.view === "desktop" && !env.desktop;
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
  pane.append(notice);
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
  if (env?.state !== "running" && view !== "logs") {
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

$("#btn-start").onclick = (e) => lifecycle(current!, "up", e.currentTarget as HTMLButtonElement);
$("#btn-stop").onclick = (e) => lifecycle(current!, "down", e.currentTarget as HTMLButtonElement);
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

// Live state: poll the daemon every second (an event stream replaces this
// when the daemon has one).
await refresh();
route();
setInterval(refresh, 1000);

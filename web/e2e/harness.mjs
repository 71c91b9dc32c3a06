// Starts a real Verse daemon on a temporary root, and a headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core: no browser download).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "../..");
export const verseBin = process.env.VERSE_BIN ?? join(repo, "target/debug/verse");
export const artefacts = join(repo, "target/web-e2e");
mkdirSync(artefacts, { recursive: true });

/** Skips (or, under CI=true, fails) when this machine cannot run the tests. */
export function requirements(t, { desktop = false } = {}) {
  const missing = [];
  if (process.getuid?.() !== 0) missing.push("root");
  if (!existsSync("/usr/bin/chromium")) missing.push("/usr/bin/chromium (apt-get install chromium)");
  if (!existsSync(verseBin)) missing.push(`${verseBin} (cargo build -p verse-cli)`);
  if (desktop && !existsSync(join(repo, ".cache/desktop-rootfs.stamp"))) missing.push("the desktop image (scripts/desktop-rootfs.sh)");
  if (missing.length === 0) return true;
  const why = `needs ${missing.join(", ")}`;
  if (process.env.CI === "true") throw new Error(`cannot run under CI: ${why}`);
  console.error(`SKIPPED: ${why}`);
  t.skip(why);
  return false;
}

export class Verse {
  constructor() {
    this.root = mkdtempSync(join(tmpdir(), "verse-web-"));
    this.env = { ...process.env, VERSE_ROOT: this.root, VERSE_WEB: "127.0.0.1:0" };
  }
  run(...args) {
    return execFileSync(verseBin, args, { env: this.env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  }
  async start() {
    this.log = join(this.root, "daemon.log");
    const out = (await import("node:fs")).openSync(this.log, "a");
    this.daemon = spawn(verseBin, ["daemon"], { env: this.env, stdio: ["ignore", out, out] });
    for (let i = 0; i < 200; i++) {
      try { this.url = this.run("web"); break; } catch { await sleep(25); }
    }
    if (!this.url) throw new Error(`the daemon did not come up: ${readFileSync(this.log, "utf8")}`);
    this.origin = new URL(this.url).origin;
    return this;
  }
  importImage(name, scriptName) {
    const dir = execFileSync(join(repo, "scripts", scriptName), { encoding: "utf8" }).trim();
    this.run("image", "import", name, dir);
  }
  apply(toml) {
    const file = join(this.root, "verse.toml");
    writeFileSync(file, toml);
    return this.run("apply", file);
  }
  async stop() {
    try {
      for (const line of this.run("ls", "--json") ? JSON.parse(this.run("ls", "--json")) : []) {
        try { this.run("rm", line.name); } catch { /* already gone */ }
      }
    } catch { /* daemon gone */ }
    this.daemon?.kill("SIGTERM");
    await sleep(100);
    rmSync(this.root, { recursive: true, force: true });
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function browser() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

export async function shot(page, name) {
  await page.screenshot({ path: join(artefacts, `${name}.png`) });
}

/** Waits until `fn` returns a truthy value, polling. */
export async function until(what, fn, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

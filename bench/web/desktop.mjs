// Web UI benchmark: tab click → first frame (cold), switch time between two
// warm desktops, a change made with the CLI → the dashboard showing it (event
// stream), and frames/s and bandwidth while a window redraws without pause.
//
//   cargo build --release -p verse-cli && scripts/web-build.sh
//   VERSE_BIN=target/release/verse node bench/web/desktop.mjs
//
// Run from the repository root, as root. Prints medians as Markdown.
import { spawn } from "node:child_process";
const harness = await import(new URL("../../web/e2e/harness.mjs", import.meta.url));
const { Verse, browser, until, verseBin, sleep } = harness;

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const verse = await new Verse().start();
verse.importImage("desktop", "desktop-rootfs.sh");
verse.apply(`
[env.d1]
image = "desktop"
desktop = { size = "1280x720" }
[env.d2]
image = "desktop"
desktop = { size = "1280x720" }
`);
const chrome = await browser();
const children = [];
try {
  await until("desktops up", async () => JSON.parse(verse.run("ls", "--json")).every((e) => e.state === "running"), 30000);
  await sleep(1000);

  // 1. Click → first frame, each time in a fresh page (no warm connection).
  const firstFrames = [];
  for (let i = 0; i < 7; i++) {
    const page = await chrome.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(verse.url);
    await page.waitForSelector('.tab[data-env="d1"]');
    const t0 = await page.evaluate(() => performance.now());
    await page.click('.tab[data-env="d1"]');
    await page.waitForSelector('.pane.desktop[data-env="d1"][data-painted="1"]');
    const ms = await page.evaluate((start) => window.__verse.metrics.firstFrame.find((x) => x.env === "d1").at - start, t0);
    firstFrames.push({ ms });
    await page.close();
  }

  // 2. Switch between two warm desktops (Alt+1 / Alt+2), to the next paint.
  const page = await chrome.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(verse.url);
  await page.click('.tab[data-env="d1"]');
  await page.waitForSelector('.pane.desktop[data-env="d1"][data-painted="1"]');
  await page.keyboard.press("Alt+2");
  await page.waitForSelector('.pane.desktop[data-env="d2"][data-painted="1"]');
  await page.evaluate(() => { window.__verse.metrics.switches.length = 0; });
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press(i % 2 ? "Alt+2" : "Alt+1");
    await sleep(60);
  }
  const switches = (await page.evaluate(() => window.__verse.metrics.switches)).map((s) => s.ms);

  // 4. A state change made elsewhere (the CLI) → the dashboard row showing it.
  const dash = await chrome.newPage({ viewport: { width: 1400, height: 900 } });
  await dash.goto(verse.url);
  await dash.waitForFunction(() => document.body.dataset.live === "1");
  const live = [], cli = [];
  for (let i = 0; i < 10; i++) {
    const want = i % 2 ? "running" : "paused";
    await dash.evaluate((want) => {
      window.__seen = null;
      const look = () => {
        const cell = document.querySelector('#envs tr[data-env="d2"] [data-role="state"]');
        if (!window.__seen && cell?.textContent === want) window.__seen = Date.now();
      };
      new MutationObserver(look).observe(document.querySelector("#envs tbody"), { childList: true, subtree: true, characterData: true });
    }, want);
    const t0 = Date.now();
    verse.run(want === "paused" ? "pause" : "unpause", "d2");
    cli.push(Date.now() - t0);
    const seen = await until("the row changed", () => dash.evaluate(() => window.__seen), 5000);
    live.push(seen - t0);
    await sleep(200);
  }
  await dash.close();

  // 3. A window redrawing without pause: an xterm listing files forever.
  await page.keyboard.press("Alt+1");
  const child = spawn(verseBin, ["exec", "d1", "--", "xterm", "-geometry", "120x40+0+0", "-e", "sh", "-c", "while :; do ls -lR /usr; done"],
    { env: verse.env, stdio: "ignore" });
  children.push(child);
  await sleep(2000);
  const seconds = 10;
  const before = await page.evaluate(() => ({ f: window.__verse.metrics.frames.d1, b: window.__verse.metrics.bytes.d1, t: performance.now() }));
  await sleep(seconds * 1000);
  const after = await page.evaluate(() => ({ f: window.__verse.metrics.frames.d1, b: window.__verse.metrics.bytes.d1, t: performance.now() }));
  const secs = (after.t - before.t) / 1000;
  const fps = (after.f - before.f) / secs;
  const mbps = ((after.b - before.b) * 8) / secs / 1e6;

  console.log(`| measure | median | runs |`);
  console.log(`|---|---|---|`);
  console.log(`| tab click → first desktop frame (new connection) | ${median(firstFrames.map((f) => f.ms)).toFixed(1)} ms | ${firstFrames.length} |`);
  console.log(`| switch between two warm desktops (Alt+1/Alt+2 → next paint) | ${median(switches).toFixed(1)} ms (max ${Math.max(...switches).toFixed(1)}) | ${switches.length} |`);
  console.log(`| \`verse pause/unpause\` (CLI) → dashboard row shows it, via the event stream | ${median(live).toFixed(1)} ms (the command alone: ${median(cli).toFixed(1)} ms) | ${live.length} |`);
  console.log(`| frames/s while an xterm scrolls without pause (1280x720) | ${fps.toFixed(1)} | ${secs.toFixed(0)} s |`);
  console.log(`| bandwidth while it scrolls | ${mbps.toFixed(2)} Mbit/s | ${secs.toFixed(0)} s |`);
} finally {
  for (const c of children) c.kill("SIGTERM");
  await chrome.close();
  await verse.stop();
}

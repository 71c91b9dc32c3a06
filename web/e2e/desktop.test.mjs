// Desktops in the browser: pixels arrive and change when a program draws,
// switching between two warm desktops, labels, and a phone-sized viewport.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { Verse, browser, shot, until, requirements, verseBin } from "./harness.mjs";

let verse, chrome, ok = true;
const children = [];

before(async (t) => {
  ok = requirements(t, { desktop: true });
  if (!ok) return;
  verse = await new Verse().start();
  verse.importImage("desktop", "desktop-rootfs.sh");
  verse.apply(`
[env.d1]
image = "desktop"
desktop = { size = "1024x768" }
label = { color = "#E02020", name = "banking" }

[env.d2]
image = "desktop"
desktop = { size = "800x600" }
autostart = ["xterm -geometry 60x10+20+20"]
label = { color = "#2060E0", name = "work" }
`);
  chrome = await browser();
});

after(async () => {
  for (const c of children) c.kill("SIGTERM");
  await chrome?.close();
  await verse?.stop();
});

/** A program inside the env that draws until the test ends. */
function draw(env, ...argv) {
  const child = spawn(verseBin, ["exec", env, "--", ...argv], { env: verse.env, stdio: "ignore" });
  children.push(child);
  return child;
}

/** Sum and count of non-black pixels of the env's desktop canvas. */
async function canvasStats(page, env) {
  return page.evaluate((name) => {
    const canvas = document.querySelector(`.pane.desktop[data-env="${name}"] canvas`);
    if (!canvas || canvas.width === 0) return null;
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let lit = 0, sum = 0;
    for (let i = 0; i < data.length; i += 4) {
      const v = data[i] + data[i + 1] + data[i + 2];
      if (v > 0) lit++;
      sum = (sum + v * (i + 1)) % 1000000007;
    }
    return { lit, sum, w: canvas.width, h: canvas.height };
  }, env);
}

test("a desktop's pixels arrive in the canvas and change when a program draws", async (t) => {
  if (!ok) return t.skip();
  const page = await chrome.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(verse.url);
  await until("both desktops running", async () => {
    const ls = JSON.parse(verse.run("ls", "--json"));
    return ls.every((e) => e.state === "running");
  });
  await page.click('.tab[data-env="d1"]');
  await until("d1 connected", async () => (await page.getAttribute('.pane.desktop[data-env="d1"]', "data-connected")) === "1");
  const before = await until("d1 first frame", () => canvasStats(page, "d1"));
  assert.equal(before.w, 1024, "the canvas has the declared size");
  draw("d1", "xlogo", "-geometry", "500x500+200+100");
  const after = await until("d1 canvas changed", async () => {
    const s = await canvasStats(page, "d1");
    return s && s.sum !== before.sum && s.lit > 100000 ? s : null;
  });
  assert.ok(after.lit > before.lit, `more pixels lit after xlogo drew (${before.lit} -> ${after.lit})`);
  // The label's colour frames the desktop and marks its tab.
  const border = await page.$eval('.pane.desktop[data-env="d1"]', (el) => getComputedStyle(el).borderTopColor);
  assert.equal(border, "rgb(224, 32, 32)");
  assert.match(await page.textContent('.tab[data-env="d1"]'), /banking/);
  await shot(page, "desktop-d1");
  await page.close();
});

test("switching between two desktops keeps both connections warm", async (t) => {
  if (!ok) return t.skip();
  const page = await chrome.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(verse.url);
  await page.click('.tab[data-env="d1"]');
  await until("d1 connected", async () => (await page.getAttribute('.pane.desktop[data-env="d1"]', "data-connected")) === "1");
  await page.keyboard.press("Alt+2");
  await until("d2 connected", async () => (await page.getAttribute('.pane.desktop[data-env="d2"]', "data-connected")) === "1");
  await until("d2's xterm is drawn", async () => ((await canvasStats(page, "d2"))?.lit ?? 0) > 1000);
  assert.equal(await page.isVisible('.pane.desktop[data-env="d2"]'), true);
  assert.equal(await page.isVisible('.pane.desktop[data-env="d1"]'), false);
  await shot(page, "desktop-d2");
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press(i % 2 ? "Alt+2" : "Alt+1");
    await page.waitForTimeout(50);
  }
  assert.deepEqual(sockets, [], "no new connection was opened while switching");
  for (const env of ["d1", "d2"]) {
    assert.equal(await page.getAttribute(`.pane.desktop[data-env="${env}"]`, "data-connected"), "1", `${env} stayed connected`);
  }
  const switches = await page.evaluate(() => window.__verse.metrics.switches);
  assert.ok(switches.length >= 6, "every switch was measured");
  await page.close();
});

test("on a phone-sized viewport the desktop fits and the keyboard button shows", async (t) => {
  if (!ok) return t.skip();
  const context = await chrome.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
  const page = await context.newPage();
  await page.goto(verse.url);
  await page.click('.tab[data-env="d2"]');
  await until("d2 connected", async () => (await page.getAttribute('.pane.desktop[data-env="d2"]', "data-connected")) === "1");
  assert.equal(await page.isVisible("#btn-keyboard"), true);
  const width = await page.$eval('.pane.desktop[data-env="d2"] canvas', (c) => c.getBoundingClientRect().width);
  assert.ok(width <= 390, `the desktop is scaled to the screen (${width}px wide)`);
  await shot(page, "phone-desktop");
  await context.close();
});

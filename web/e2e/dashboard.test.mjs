// The dashboard, the terminal and the guard, in headless Chromium against a real daemon.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { spawn } from "node:child_process";
import { Verse, browser, shot, until, requirements, verseBin } from "./harness.mjs";

let verse, chrome, ok = true;

before(async (t) => {
  ok = requirements(t);
  if (!ok) return;
  verse = await new Verse().start();
  verse.importImage("busybox", "busybox-rootfs.sh");
  verse.apply(`
[env.alpha]
image = "busybox"
health = { command = "true", interval = "1s" }
[env.beta]
image = "busybox"
network = "none"
`);
  verse.run("down", "beta");
  chrome = await browser();
});

after(async () => {
  await chrome?.close();
  await verse?.stop();
});

test("dashboard lists the envs and starting one from the UI changes its state without a reload", async (t) => {
  if (!ok) return t.skip();
  const page = await chrome.newPage();
  await page.goto(verse.url);
  const alpha = page.locator('#envs tr[data-env="alpha"] [data-role="state"]');
  const beta = page.locator('#envs tr[data-env="beta"] [data-role="state"]');
  await until("alpha running", async () => (await alpha.textContent()) === "running");
  assert.equal(await beta.textContent(), "stopped");
  await shot(page, "dashboard-before-start");
  let navigations = 0;
  page.on("framenavigated", () => navigations++);
  await page.click('#envs tr[data-env="beta"] button[data-action="start"]');
  await until("beta running in the table", async () => (await beta.textContent()) === "running");
  assert.equal(navigations, 0, "the page did not reload");
  // The daemon agrees.
  const ls = JSON.parse(verse.run("ls", "--json"));
  assert.equal(ls.find((e) => e.name === "beta").state, "running");
  // A change made elsewhere (the CLI) shows up too.
  verse.run("down", "alpha");
  await until("alpha stopped in the table", async () => (await alpha.textContent()) === "stopped");
  await shot(page, "dashboard-after-start");
  verse.run("up", "alpha");
  await page.close();
});

test("the dashboard shows health and network mode, and pausing from the UI changes the state without a reload", async (t) => {
  if (!ok) return t.skip();
  const page = await chrome.newPage();
  await page.goto(verse.url);
  const row = (env) => page.locator(`#envs tr[data-env="${env}"]`);
  const state = (env) => row(env).locator('[data-role="state"]');
  await until("alpha running", async () => (await state("alpha").textContent()) === "running");
  await until("alpha healthy", async () => (await row("alpha").locator('[data-role="health"]').textContent()) === "healthy");
  assert.equal(await row("alpha").locator('[data-role="network"]').textContent(), "none");
  assert.equal(await row("beta").locator('[data-role="health"]').textContent(), "–", "beta declares no health check");
  await until("the event stream is connected", async () => page.evaluate(() => document.body.dataset.live === "1"));
  let navigations = 0;
  page.on("framenavigated", () => navigations++);
  await row("alpha").locator('button[data-action="pause"]').click();
  await until("alpha paused in the table", async () => (await state("alpha").textContent()) === "paused");
  assert.equal(JSON.parse(verse.run("ls", "--json")).find((e) => e.name === "alpha").state, "paused", "the daemon agrees");
  await shot(page, "dashboard-paused");
  await row("alpha").locator('button[data-action="unpause"]').click();
  await until("alpha running again", async () => (await state("alpha").textContent()) === "running");
  // A change made elsewhere arrives through the event stream, not a reload or a poll.
  const before = await page.evaluate(() => window.__verse.metrics.events);
  verse.run("pause", "alpha");
  await until("alpha paused by the CLI", async () => (await state("alpha").textContent()) === "paused", 4000);
  assert.ok(await page.evaluate((n) => window.__verse.metrics.events > n, before), "the change came as an event");
  verse.run("unpause", "alpha");
  await until("alpha unpaused by the CLI", async () => (await state("alpha").textContent()) === "running", 4000);
  assert.equal(navigations, 0, "the page did not reload");
  await page.close();
});

test("an env's page takes and lists snapshots, and shows why hibernate is refused", async (t) => {
  if (!ok) return t.skip();
  const page = await chrome.newPage();
  await page.goto(verse.url);
  await page.goto(`${verse.origin}/#/env/alpha`);
  await until("alpha's page", async () => (await page.textContent("#envname")) === "alpha");
  await until("alpha running", async () => (await page.textContent("#envstate")).startsWith("running"));
  await page.click('#envhead .views button[data-view="snapshots"]');
  const pane = page.locator('.pane.snapshots[data-env="alpha"]');
  await until("the snapshot list", async () => pane.isVisible());
  assert.equal(await pane.locator(".empty").isVisible(), true, "no snapshots yet");
  await pane.locator(".snap-label").fill("before-upgrade");
  await pane.locator('button[data-action="take-snapshot"]').click();
  await until("the snapshot is listed", async () => (await pane.locator("tbody tr").count()) === 1);
  assert.match(await pane.locator("tbody tr").textContent(), /s1.*before-upgrade/);
  // One taken elsewhere shows up too (a snapshot event).
  verse.run("snapshot", "alpha", "from-cli");
  await until("the CLI's snapshot is listed", async () => (await pane.locator("tbody tr").count()) === 2);
  const listed = JSON.parse(verse.run("snapshots", "alpha", "--json"));
  assert.deepEqual(listed.map((s) => s.label), ["before-upgrade", "from-cli"]);
  await shot(page, "env-snapshots");
  // Hibernate is refused while a `verse exec` session is open (docs/lifecycle.md): the UI
  // says why, and the env keeps running.
  const session = spawn(verseBin, ["exec", "alpha", "--", "sleep", "60"], { env: verse.env, stdio: "ignore" });
  await until("the exec session", async () => {
    try { verse.run("exec", "alpha", "--", "sh", "-c", "ps | grep -v grep | grep -q 'sleep 60'"); return true; } catch { return false; }
  });
  await page.click("#btn-hibernate");
  await until("the refusal is shown", async () => page.isVisible("#msg.error"));
  const message = await page.textContent("#msg-text");
  session.kill();
  assert.match(message, /alpha: hibernate refused: .*exec/, `the reason is given: ${message}`);
  assert.equal(JSON.parse(verse.run("ls", "--json")).find((e) => e.name === "alpha").state, "running");
  await shot(page, "env-hibernate-refused");
  await page.close();
});

test("the compose box shows a fragment and its reasons, previews the diff, and adds only the new env", async (t) => {
  if (!ok) return t.skip();
  const page = await chrome.newPage();
  await page.goto(verse.url);
  await page.fill("#compose-prompt", "a throwaway terminal box with 1 core for testing");
  await page.click("#compose-go");
  await until("the fragment", async () => (await page.inputValue("#compose-toml")).includes("[env.testing]"));
  const toml = await page.inputValue("#compose-toml");
  assert.match(toml, /ephemeral = true/);
  assert.match(toml, /network = "none"/);
  const notes = await page.textContent("#compose-notes");
  assert.match(notes, /"throwaway": ephemeral = true/, "the explanation says how the words were read");
  assert.match(notes, /network = none: the words did not ask/);
  // The composed image would be built with debootstrap; the test uses the busybox image instead.
  const edited = toml.replace(/\[image\.testing\][^[]*/, "").replace('image = "testing"', 'image = "busybox"');
  await page.fill("#compose-toml", edited);
  assert.equal(await page.isDisabled("#compose-add"), true, "adding needs a preview first");
  const alphaPid = JSON.parse(verse.run("ls", "--json")).find((e) => e.name === "alpha").pid;
  verse.run("down", "beta"); // stopped by hand: adding must not start it
  await page.click("#compose-preview");
  await until("the diff", async () => page.isVisible("#compose-diff"));
  assert.match(await page.textContent('#compose-diff tr[data-env="testing"]'), /create/);
  assert.match(await page.textContent('#compose-diff tr[data-env="beta"]'), /left as it is/);
  await shot(page, "compose-preview");
  await page.click("#compose-add");
  const state = page.locator('#envs tr[data-env="testing"] [data-role="state"]');
  await until("the new env running in the table", async () => (await state.count()) === 1 && (await state.textContent()) === "running");
  // The table follows the event stream, which may beat the add request's own answer.
  await until("the add's answer", async () => /added testing: generation \d+ is active/.test(await page.textContent("#msg-text")));
  const ls = JSON.parse(verse.run("ls", "--json"));
  assert.equal(ls.find((e) => e.name === "beta").state, "stopped", "beta stayed stopped");
  assert.equal(ls.find((e) => e.name === "alpha").pid, alphaPid, "alpha was not restarted");
  assert.equal(ls.find((e) => e.name === "testing").ephemeral, true);
  assert.match(verse.run("generations"), /compose \(\+testing on generation 1\)/);
  // The same again is refused: adding never changes an existing env.
  await page.click("#compose-preview");
  await until("the refusal", async () => page.isVisible("#msg.error"));
  assert.match(await page.textContent("#msg-text"), /already has an env named `testing`/);
  await shot(page, "compose-added");
  verse.run("up", "beta");
  await page.close();
});

test("typing into the terminal runs commands in the env and shows their output", async (t) => {
  if (!ok) return t.skip();
  const page = await chrome.newPage();
  await page.goto(verse.url);
  await until("alpha running", async () => (await page.locator('#envs tr[data-env="alpha"] [data-role="state"]').textContent()) === "running");
  await page.goto(`${verse.origin}/#/env/alpha`);
  const pane = page.locator('.pane.terminal[data-env="alpha"]');
  await until("terminal connected", async () => (await pane.getAttribute("data-connected")) === "1");
  await page.locator('.pane.terminal[data-env="alpha"] .xterm').click();
  await page.keyboard.type("echo out-$((6*7)) && hostname\n");
  const rows = pane.locator(".xterm-rows");
  await until("the command's output", async () => (await rows.textContent()).includes("out-42"));
  assert.match(await rows.textContent(), /alpha/, "the env's hostname is printed");
  await shot(page, "terminal");
  await page.close();
});

test("requests without the secret, or from a foreign origin or host, are refused", async (t) => {
  if (!ok) return t.skip();
  const origin = verse.origin;
  const secret = new URL(verse.url).searchParams.get("token");
  // No secret at all.
  let res = await fetch(`${origin}/v1/envs`);
  assert.equal(res.status, 401);
  assert.match(await res.text(), /verse web/);
  // The secret, but sent by a page elsewhere.
  res = await fetch(`${origin}/v1/envs?token=${secret}`, { headers: { Origin: "http://evil.example" } });
  assert.equal(res.status, 403);
  // DNS rebinding: the secret, but a foreign Host name.
  // (fetch may not set Host; node:http can.)
  const status = await new Promise((resolve, reject) => {
    http.get(`${origin}/v1/envs?token=${secret}`, { headers: { Host: "evil.example" } }, (r) => { r.resume(); resolve(r.statusCode); }).on("error", reject);
  });
  assert.equal(status, 403);
  res = await fetch(`${origin}/v1/envs?token=${secret}`);
  assert.equal(res.status, 200);
  // In the browser: a page on another origin cannot open the terminal socket,
  // and a tab without the secret sees the refusal.
  const page = await chrome.newPage();
  const resp = await page.goto(`${origin}/`);
  assert.equal(resp.status(), 401);
  await shot(page, "refused-without-secret");
  const context = await chrome.newContext();
  const foreign = await context.newPage();
  await foreign.goto("about:blank");
  const outcome = await foreign.evaluate(async (url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => resolve("open");
    ws.onerror = () => resolve("refused");
  }), `${origin.replace("http", "ws")}/ws/envs/alpha/terminal?token=${secret}`);
  assert.equal(outcome, "refused");
  await context.close();
  await page.close();
});

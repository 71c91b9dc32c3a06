// An env's quarantine inbox in the web UI: held and flagged files with their
// scan summary, release (to release_to or a chosen env), the daemon's
// refusal of a flagged file shown and then forced, and reject.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Verse, browser, shot, until, requirements } from "./harness.mjs";

// The EICAR test file: flagged by the YARA scanner when there is one, and
// flagged as unscanned when there is not, so every file here waits for a person.
const EICAR = String.raw`X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`;

let verse, chrome, ok = true;

before(async (t) => {
  ok = requirements(t);
  if (!ok) return;
  verse = await new Verse().start();
  verse.importImage("busybox", "busybox-rootfs.sh");
  verse.apply(`
[env.inbox]
image = "busybox"
downloads = "quarantine"
hold = "1s"
release_to = "home:/inbox"

[env.home]
image = "busybox"

[env.vault]
image = "busybox"
`);
  await until("envs running", async () => JSON.parse(verse.run("ls", "--json")).every((e) => e.state === "running"));
  for (const name of ["a.com", "b.com", "c.com"]) {
    verse.run("exec", "inbox", "--", "sh", "-c", `printf '%s' '${EICAR}' > /downloads/${name}`);
  }
  chrome = await browser();
});

after(async () => {
  await chrome?.close();
  await verse?.stop();
});

const row = (name) => `.pane.quarantine[data-env="inbox"] tr[data-name="${name}"]`;

test("the inbox lists held files with their scan, shows the daemon's refusals, and rejects", async (t) => {
  if (!ok) return t.skip();
  const page = await chrome.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("dialog", (d) => d.accept());
  await page.goto(verse.url + "#/env/home");
  await until("home's page", async () => (await page.textContent("#envname")) === "home");
  assert.equal(await page.isVisible('#envhead .views button[data-view="quarantine"]'), false, "no inbox for an env without downloads");
  await page.goto(verse.url + "#/env/inbox");
  await page.click('#envhead .views button[data-view="quarantine"]');
  await until("three held files listed", async () => {
    for (const name of ["a.com", "b.com", "c.com"]) {
      if ((await page.getAttribute(row(name), "data-state").catch(() => null)) !== "held") return false;
    }
    return true;
  });
  assert.match(await page.textContent(row("a.com")), /held/);
  assert.ok(await page.isVisible(`${row("a.com")} .flagged`), "the scan's findings are shown");
  assert.equal(await page.inputValue(`${row("a.com")} select.q-to`), "home:/inbox", "release_to is the default");
  await shot(page, "quarantine-held");

  // A flagged file: the daemon refuses a plain release, and the page says why.
  await page.click(`${row("a.com")} [data-action="q-release"]`);
  await until("the refusal shows", async () => /needs --force/.test(await page.textContent(`${row("a.com")} .q-refusal`).catch(() => "")));
  assert.equal(await page.getAttribute(row("a.com"), "data-state"), "held", "nothing was released");
  assert.ok(await page.isVisible(`${row("a.com")} [data-action="q-force"]`), "a flagged file offers Release anyway");
  await shot(page, "quarantine-refused");
  // Reject.
  await page.click(`${row("c.com")} [data-action="q-reject"]`);
  await until("c.com rejected", async () => (await page.getAttribute(row("c.com"), "data-state")) === "rejected");
  assert.equal(await page.isVisible(`${row("c.com")} [data-action="q-release"]`), false, "a rejected file cannot be released from the page");
  const items = JSON.parse(verse.run("quarantine", "ls", "--json"));
  assert.equal(items.find((i) => i.name === "c.com").state, "rejected");
  await shot(page, "quarantine-done");
  await page.close();
});

test("releasing a flagged file anyway, to release_to and to a chosen env", async (t) => {
  if (!ok) return t.skip();
  const page = await chrome.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("dialog", (d) => d.accept());
  await page.goto(verse.url + "#/env/inbox");
  await page.click('#envhead .views button[data-view="quarantine"]');
  await page.click(`${row("a.com")} [data-action="q-release"]`);
  await until("a.com's refusal", async () => page.isVisible(`${row("a.com")} [data-action="q-force"]`));
  await page.click(`${row("a.com")} [data-action="q-force"]`);
  await until("a.com released", async () => (await page.getAttribute(row("a.com"), "data-state")) === "released");
  assert.equal(verse.run("exec", "home", "--", "cat", "/inbox/a.com"), EICAR);

  // To another env, chosen in the row.
  await page.selectOption(`${row("b.com")} select.q-to`, "vault");
  await page.click(`${row("b.com")} [data-action="q-release"]`);
  await until("b.com's refusal", async () => page.isVisible(`${row("b.com")} [data-action="q-force"]`));
  await page.click(`${row("b.com")} [data-action="q-force"]`);
  await until("b.com released", async () => (await page.getAttribute(row("b.com"), "data-state")) === "released");
  const where = (await page.textContent(`${row("b.com")} td:nth-child(7)`)).trim();
  assert.match(where, /^vault:\//, `released into vault (${where})`);
  const path = where.slice("vault:".length);
  assert.equal(verse.run("exec", "vault", "--", "cat", path), EICAR);
  assert.throws(() => verse.run("exec", "home", "--", "cat", "/inbox/b.com"), "b.com did not go to release_to");

  await page.close();
});

/**
 * The chat demo (examples/chat) in a real browser: headless Chromium (the one FDWS_CHROMIUM
 * names, which `deno task test` sets: the machine's, else the one from the npm package
 * @sparticuz/chromium; see tests/deps/), driven by playwright-core from npm.
 *
 * For each poller that runs on Linux (epoll and select), the demo is started as a
 * subprocess exactly as `deno task demo` runs it (plus `--port 0 --quiet --poller P`), and
 * the test waits for its "listening" line. Two pages (two browser contexts) join one room
 * with two names and a third page joins another room; the test then checks what a person
 * would see: both names in the online list, each message on the sender's and the other
 * page (shown as text, never as markup), nothing of it in the other room, the "left" line
 * and the shorter online list once a page is closed, and "disconnected (1001" on the
 * pages that stay open when the demo is stopped with SIGTERM, which must exit with code 0.
 * A screenshot of one page is saved to tests/artifacts/chat-demo.png.
 *
 * Chromium runs headless with a fresh temporary profile (Playwright makes one with mkdtemp;
 * the test finds it on Chromium's command line and checks it is removed after); no child
 * process and no descriptor may outlive a step.
 * Without a Chromium the test fails (tests/prepare.ts gets one first): it does not skip.
 */

import assert from "node:assert/strict";
// A browser driver pinned inline, on purpose (not a dependency of the library). Only its
// types are imported here; the module itself is loaded by loadPlaywright().
// deno-lint-ignore no-import-prefix
import type { Browser, BrowserContext, BrowserType, Page } from "npm:playwright-core@1";
import {
  Child,
  delay,
  LINUX_POLLERS,
  type LinuxPoller,
  openFds,
  within,
} from "../fixtures/harness.ts";
import { CHROMIUM, requireTool } from "../deps/tools.ts";
import { makeTestPki } from "../fixtures/tls.ts";

const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/** Longest wait of any one thing in this file. */
const STEP_MS = 15_000;
const REPO = new URL("../../", import.meta.url).pathname;
const ARTIFACTS = new URL("../artifacts/", import.meta.url).pathname;
const SCREENSHOT = `${ARTIFACTS}chat-demo.png`;

const ROOM = "fdws-room";
const OTHER_ROOM = "elsewhere";
const ALICE = "Alice";
const BOB = "Bøb";
const CAROL = "Carol";
const FROM_ALICE = "héllo from Alice — ÆØÅ ñ ✓ Ωμέγα";
/** Markup that the page must show as text. */
const FROM_BOB = 'hi <i>Alice</i> & "friends" ♫';
/** Not in the screenshot: the machine may lack a font for emoji (4-byte UTF-8). */
const FROM_CAROL = "anyone here? 🎉 𝄞";

// ---------------------------------------------------------------------------- helpers

/**
 * Reads `read()` every 50 ms until `ok` holds for its value; fails after STEP_MS with the
 * last value seen.
 */
async function until<T>(
  what: string,
  read: () => Promise<T>,
  ok: (value: T) => boolean,
): Promise<T> {
  const deadline = performance.now() + STEP_MS;
  let last: T = await read();
  while (!ok(last)) {
    if (performance.now() >= deadline) {
      throw new Error(`timed out after ${STEP_MS} ms: ${what}; last seen ${JSON.stringify(last)}`);
    }
    await delay(50);
    last = await read();
  }
  return last;
}

/** The pids whose parent is this process (from /proc/PID/stat). */
function childPids(): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[1]) === Deno.pid) out.push(Number(entry.name));
  }
  return out;
}

function cmdline(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter((s) => s !== "");
  } catch {
    return [];
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Loads playwright-core inside the test, so that a failure to load it (it needs
 * --allow-all: its bundled `is-wsl` probes /proc/sys when evaluated) fails this test with
 * its message rather than the whole module.
 */
async function loadPlaywright(): Promise<BrowserType> {
  // deno-lint-ignore no-import-prefix
  const playwright = await import("npm:playwright-core@1");
  return playwright.chromium;
}

/** The argv of `deno task demo` from deno.json, so that the test runs what people run. */
function demoCommand(): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${REPO}deno.json`)) as {
    tasks?: Record<string, string>;
  };
  const task = config.tasks?.demo;
  assert.ok(task !== undefined, "deno.json has no `demo` task");
  const argv = task.trim().split(/\s+/);
  assert.equal(argv[0], "deno", `the demo task should start with "deno": ${task}`);
  return argv.slice(1);
}

/** A running demo process and its base URL. */
interface Demo {
  child: Child;
  base: string;
  /** All it printed so far. */
  output: () => string;
}

async function startDemo(poller: LinuxPoller, extra: string[] = []): Promise<Demo> {
  const child = new Child(
    Deno.execPath(),
    [...demoCommand(), "--port", "0", "--quiet", "--poller", poller, ...extra],
    { cwd: REPO, env: { NO_COLOR: "1" } },
  );
  let base: string;
  try {
    const listening = /listening on (https?:\/\/\S+?)\/?(?:\s|$)/;
    base = (await child.stdout.match(listening, STEP_MS, `the demo's "listening" line`))[1];
  } catch (e) {
    const stderr = await child.stop();
    throw new Error(`${(e as Error).message}\nstderr:\n${stderr}`);
  }
  let stderr = "";
  child.stderr.then((text) => stderr = text, () => {});
  const output = (): string => child.stdout.text + stderr;
  const port = Number(new URL(base).port);
  assert.ok(port > 0, `the demo should print the port it bound, got ${base}`);
  assert.match(output(), new RegExp(`\\(${poller}\\)`), `the demo should run on ${poller}`);
  return { child, base, output };
}

async function stopDemo(demo: Demo): Promise<Deno.CommandStatus> {
  demo.child.process.kill("SIGTERM");
  const status = await within(demo.child.status, STEP_MS, "the demo to exit after SIGTERM");
  await demo.child.stop();
  return status;
}

/** A browser page with the chat loaded, and the errors its scripts threw. */
interface ChatPage {
  context: BrowserContext;
  page: Page;
  errors: string[];
}

async function openChat(browser: Browser, base: string): Promise<ChatPage> {
  // The https variant uses a test CA that Chromium does not know.
  const context = await browser.newContext({
    viewport: { width: 900, height: 560 },
    ignoreHTTPSErrors: base.startsWith("https:"),
  });
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e: Error) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${m.text()} (${m.location().url})`);
  });
  const response = await page.goto(`${base}/`);
  assert.ok(response !== null, "no response for the page");
  assert.equal(response.status(), 200);
  assert.match(response.headers()["content-type"] ?? "", /^text\/html/);
  assert.equal(await page.title(), "fdws chat");
  return { context, page, errors };
}

async function join(chat: ChatPage, name: string, room: string): Promise<void> {
  const { page } = chat;
  await page.fill("#name", name);
  await page.fill("#room", room);
  await page.click("#joinBtn");
  // The join form goes away and the chat appears once the WebSocket is open.
  await page.locator("#log").waitFor({ state: "visible" });
  await page.locator("#join").waitFor({ state: "hidden" });
  assert.equal(await page.locator("#roomName").textContent(), room);
}

async function say(chat: ChatPage, text: string): Promise<void> {
  await chat.page.fill("#text", text);
  await chat.page.press("#text", "Enter");
}

function online(chat: ChatPage): Promise<string[]> {
  return chat.page.locator("#who li").allTextContents();
}

function logLines(chat: ChatPage): Promise<string[]> {
  return chat.page.locator("#log p").allTextContents();
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join("\n") === [...b].sort().join("\n");
}

async function waitOnline(chat: ChatPage, who: string, names: readonly string[]): Promise<void> {
  await until(`${who}'s online list to be ${JSON.stringify(names)}`, () => online(chat), (l) => {
    return sameSet(l, names);
  });
}

async function waitLine(chat: ChatPage, who: string, line: string): Promise<string[]> {
  return await until(
    `${who}'s page to show ${JSON.stringify(line)}`,
    () => logLines(chat),
    (lines) => lines.includes(line),
  );
}

// ---------------------------------------------------------------------------- the test

Deno.test({
  name: "chat demo in Chromium: join, presence, messages, rooms, leave, SIGTERM",
  ignore: Deno.build.os !== "linux",
  async fn(t) {
    const executablePath = await requireTool(CHROMIUM);
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const chromium = await loadPlaywright();

    let warm = false;
    for (const poller of LINUX_POLLERS) {
      await t.step(`${poller} poller`, async () => {
        const fdsBefore = openFds();
        const childrenBefore = childPids();
        const demo = await startDemo(poller);
        let browser: Browser | undefined;
        let profile = "";
        let stopped = false;
        try {
          browser = await within(
            chromium.launch({
              executablePath,
              headless: true,
              args: [...CHROMIUM_ARGS],
              timeout: STEP_MS,
            }),
            STEP_MS + 1_000,
            "Chromium to start",
          );

          // The profile is a fresh temporary directory: find it on Chromium's command line.
          const browserPid = childPids().find((pid) =>
            !childrenBefore.includes(pid) && pid !== demo.child.process.pid
          );
          assert.ok(browserPid !== undefined, "no Chromium child process found");
          const dirArg = cmdline(browserPid).find((a) => a.startsWith("--user-data-dir="));
          assert.ok(dirArg !== undefined, "Chromium was started without --user-data-dir");
          profile = dirArg.slice("--user-data-dir=".length);
          assert.match(profile, /playwright[^/]*profile-[^/]+$/, `not a temporary profile`);

          const alice = await openChat(browser, demo.base);
          const bob = await openChat(browser, demo.base);
          const carol = await openChat(browser, demo.base);

          // Join: each page of the room lists both names.
          await join(alice, ALICE, ROOM);
          await waitLine(alice, ALICE, `${ALICE} joined`);
          await waitOnline(alice, ALICE, [ALICE]);
          await join(bob, BOB, ROOM);
          await waitOnline(alice, ALICE, [ALICE, BOB]);
          await waitOnline(bob, BOB, [ALICE, BOB]);
          await waitLine(alice, ALICE, `${BOB} joined`);
          await join(carol, CAROL, OTHER_ROOM);
          await waitOnline(carol, CAROL, [CAROL]);

          // Messages reach the other page and the sender's own.
          await say(alice, FROM_ALICE);
          await waitLine(bob, BOB, `${ALICE}: ${FROM_ALICE}`);
          await waitLine(alice, ALICE, `${ALICE}: ${FROM_ALICE}`);
          await say(bob, FROM_BOB);
          await waitLine(alice, ALICE, `${BOB}: ${FROM_BOB}`);
          const bobLines = await waitLine(bob, BOB, `${BOB}: ${FROM_BOB}`);
          assert.equal(await bob.page.inputValue("#text"), "", "the input is cleared on send");
          // In order, once each.
          const said = bobLines.filter((l) => l.includes(": "));
          assert.deepEqual(said, [`${ALICE}: ${FROM_ALICE}`, `${BOB}: ${FROM_BOB}`]);
          // Markup in a message is shown as text: no <i> element made it into the page.
          assert.equal(await alice.page.locator("#log p i").count(), 0);
          assert.equal(await bob.page.locator("#log p i").count(), 0);
          // The sender's own lines are marked as such.
          assert.deepEqual(await alice.page.locator("#log p.me").allTextContents(), [
            `${ALICE}: ${FROM_ALICE}`,
          ]);

          // The other room saw none of it. Its own message is published after the room's
          // two (they were already shown), so once it is back, the room's would be too.
          await say(carol, FROM_CAROL);
          await waitLine(carol, CAROL, `${CAROL}: ${FROM_CAROL}`);
          assert.deepEqual(await logLines(carol), [`${CAROL} joined`, `${CAROL}: ${FROM_CAROL}`]);
          assert.deepEqual(await online(carol), [CAROL]);
          assert.ok(!(await logLines(alice)).some((l) => l.includes(FROM_CAROL)));
          assert.ok(!(await logLines(bob)).some((l) => l.includes(FROM_CAROL)));

          await alice.page.screenshot({ path: SCREENSHOT });
          assert.ok(Deno.statSync(SCREENSHOT).size > 1_000, "the screenshot is empty");

          // Bob closes his page: Alice sees him leave, and the list shrinks.
          await bob.context.close();
          await waitLine(alice, ALICE, `${BOB} left`);
          await waitOnline(alice, ALICE, [ALICE]);
          assert.deepEqual(await online(carol), [CAROL]);

          // SIGTERM: the pages still open are told 1001 (going away), and the demo exits 0.
          const status = await stopDemo(demo);
          stopped = true;
          assert.equal(status.code, 0, `the demo exited with ${status.code}:\n${demo.output()}`);
          for (const [who, chat] of [[ALICE, alice], [CAROL, carol]] as const) {
            await until(`${who}'s page to show it was disconnected with 1001`, () => {
              return logLines(chat);
            }, (lines) => lines.some((l) => l.startsWith("disconnected (1001")));
          }
          assert.deepEqual(alice.errors, [], "script errors on Alice's page");
          assert.deepEqual(bob.errors, [], "script errors on Bob's page");
          assert.deepEqual(carol.errors, [], "script errors on Carol's page");
        } finally {
          try {
            if (browser !== undefined) {
              await within(browser.close(), STEP_MS, "Chromium to close");
            }
          } finally {
            if (!stopped) await demo.child.stop();
          }
        }

        // Nothing outlives the step: no child process, no profile, no descriptor.
        await until("Chromium's processes to be gone", () => Promise.resolve(childPids()), (p) => {
          return p.every((pid) => childrenBefore.includes(pid));
        });
        assert.ok(profile !== "" && !exists(profile), `the profile ${profile} was left behind`);
        // The first step opens what Deno opens once, lazily (npm, subprocess plumbing): it is
        // the warm-up; every later step must end with the descriptors it started with.
        const allowed = warm ? fdsBefore : fdsBefore + 8;
        await until("descriptors to be released", () => Promise.resolve(openFds()), (n) => {
          return n <= allowed;
        });
        warm = true;
      });
    }
  },
});

Deno.test({
  name: "chat demo in Chromium over https and wss, with permessage-deflate",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const executablePath = await requireTool(CHROMIUM);
    const chromium = await loadPlaywright();
    const pki = makeTestPki();
    const demo = await startDemo("epoll", ["--cert", pki.cert, "--key", pki.key, "--deflate"]);
    let browser: Browser | undefined;
    try {
      assert.match(demo.base, /^https:\/\/127\.0\.0\.1:\d+$/);
      browser = await within(
        chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_ARGS] }),
        STEP_MS + 1_000,
        "Chromium to start",
      );
      const alice = await openChat(browser, demo.base);
      const bob = await openChat(browser, demo.base);
      await join(alice, ALICE, ROOM);
      await join(bob, BOB, ROOM);
      await waitOnline(alice, ALICE, [ALICE, BOB]);
      await say(alice, FROM_ALICE);
      await waitLine(bob, BOB, `${ALICE}: ${FROM_ALICE}`);
      // Chromium's own offer, answered by the server: what the page's WebSocket reports.
      const extensions = await alice.page.evaluate(async (base: string) => {
        const ws = new WebSocket(`${base.replace(/^http/, "ws")}/ws?name=probe&room=probe`);
        await new Promise((resolve, reject) => {
          ws.onopen = resolve;
          ws.onerror = reject;
        });
        const value = ws.extensions;
        ws.close();
        return value;
      }, demo.base);
      assert.match(extensions, /^permessage-deflate/);
      assert.deepEqual(alice.errors, []);
      assert.deepEqual(bob.errors, []);
      const status = await stopDemo(demo);
      assert.equal(status.code, 0, demo.output());
    } finally {
      if (browser !== undefined) await within(browser.close(), STEP_MS, "Chromium to close");
      await demo.child.stop();
      pki.remove();
    }
  },
});

/**
 * Host name resolution: literals and localhost without the resolver, names of /etc/hosts
 * through libc getaddrinfo on a worker thread, and typed errors for names that do not
 * resolve. No network: only names the local files answer, and a `.invalid` name (RFC 6761)
 * that nothing may answer.
 */

import assert from "node:assert/strict";
import { eaiCode, ResolveError, resolveHost, resolveLiteral } from "../../net/resolve.ts";
import { FdwsError } from "../../errors.ts";
import { assertNoFdLeak, openFds } from "../fixtures/harness.ts";

/** Address → names of the lines of /etc/hosts (empty when there is no such file). */
function hostsEntries(): Map<string, string[]> {
  const byName = new Map<string, string[]>();
  let textContent = "";
  try {
    textContent = Deno.readTextFileSync("/etc/hosts");
  } catch {
    return byName;
  }
  for (const line of textContent.split("\n")) {
    const [ip, ...names] = line.replace(/#.*/, "").trim().split(/\s+/);
    if (ip === undefined || ip === "" || resolveLiteral(ip) === null) continue;
    for (const name of names) {
      if (name === "" || name.toLowerCase().startsWith("localhost")) continue;
      const list = byName.get(name) ?? [];
      list.push(resolveLiteral(ip)![0].address);
      byName.set(name, list);
    }
  }
  return byName;
}

async function rejection(p: Promise<unknown>): Promise<ResolveError> {
  const err = await p.then(() => new Error("resolved; a rejection was expected"), (e) => e);
  assert.ok(err instanceof ResolveError, `expected a ResolveError, got ${err}`);
  assert.ok(err instanceof FdwsError);
  return err;
}

/** One lookup of each kind first: glibc opens files (and NSS modules) lazily. */
async function warmUp(): Promise<void> {
  await resolveHost("nonexistent.invalid").catch(() => {});
  for (const name of hostsEntries().keys()) await resolveHost(name).catch(() => {});
}

Deno.test("resolveHost: literals and localhost without the resolver", async () => {
  assert.deepEqual(await resolveHost("127.0.0.1"), [{ family: 4, address: "127.0.0.1" }]);
  assert.deepEqual(await resolveHost("::1"), [{ family: 6, address: "::1" }]);
  assert.deepEqual(await resolveHost("[::1]"), [{ family: 6, address: "::1" }]);
  assert.deepEqual(await resolveHost("0:0:0:0:0:0:0:1"), [{ family: 6, address: "::1" }]);
  assert.deepEqual(await resolveHost("::ffff:10.0.0.1"), [{
    family: 6,
    address: "::ffff:10.0.0.1",
  }]);
  assert.deepEqual(await resolveHost("fe80::1%2"), [{ family: 6, address: "fe80::1%2" }]);
  const loopbacks = [{ family: 4, address: "127.0.0.1" }, { family: 6, address: "::1" }];
  assert.deepEqual(await resolveHost("localhost"), loopbacks);
  assert.deepEqual(await resolveHost("LocalHost"), loopbacks);
  assert.deepEqual(await resolveHost("localhost."), loopbacks);
  assert.equal(resolveLiteral("example.test"), null);
  // Octal-looking IPv4 is not a literal (inet_aton would read it as octal).
  assert.equal(resolveLiteral("010.0.0.1"), null);
});

Deno.test("resolveHost: names of /etc/hosts through getaddrinfo", async () => {
  await warmUp();
  const before = openFds();
  const entries = hostsEntries();
  for (const [name, addresses] of entries) {
    const got = await resolveHost(name);
    assert.ok(got.length >= 1, name);
    for (const a of got) {
      assert.ok(a.family === 4 || a.family === 6);
      assert.deepEqual(resolveLiteral(a.address)?.[0].family, a.family);
    }
    const texts = got.map((a) => a.address);
    assert.equal(new Set(texts).size, texts.length, `duplicates for ${name}: ${texts}`);
    // Every /etc/hosts address of the name is among the answers.
    for (const address of addresses) assert.ok(texts.includes(address), `${name}: ${texts}`);
  }
  // Many lookups at once: each has its own buffers on its own worker-thread call.
  const names = [...entries.keys()];
  if (names.length > 0) {
    const all = await Promise.all(
      Array.from({ length: 32 }, (_, i) => resolveHost(names[i % names.length])),
    );
    for (const r of all) assert.ok(r.length >= 1);
  }
  await assertNoFdLeak(before, 0);
});

Deno.test("resolveHost: a name that does not resolve is a typed error, quickly", async () => {
  await warmUp();
  const before = openFds();
  for (const name of ["nonexistent.invalid", "no-such-host-fdws.invalid"]) {
    const t0 = performance.now();
    const err = await rejection(resolveHost(name));
    const took = performance.now() - t0;
    // ENOTFOUND where the resolver answers "no such name"; EAI_AGAIN/EAI_FAIL where no DNS
    // server is reachable at all.
    assert.ok(["ENOTFOUND", "EAI_AGAIN", "EAI_FAIL"].includes(err.code), err.code);
    assert.equal(err.hostname, name);
    assert.match(err.message, new RegExp(name.replace(/\./g, "\\.")));
    assert.ok(took < 10_000, `took ${took} ms`);
  }
  await assertNoFdLeak(before, 0);
});

Deno.test("resolveHost: invalid host names", async () => {
  assert.equal((await rejection(resolveHost(""))).code, "INVALID_HOSTNAME");
  assert.equal((await rejection(resolveHost("a\0b"))).code, "INVALID_HOSTNAME");
});

Deno.test("eaiCode: getaddrinfo results per platform", () => {
  assert.equal(eaiCode(-2, "linux"), "ENOTFOUND");
  assert.equal(eaiCode(-5, "linux"), "ENOTFOUND");
  assert.equal(eaiCode(-9, "linux"), "ENOTFOUND");
  assert.equal(eaiCode(-3, "linux"), "EAI_AGAIN");
  assert.equal(eaiCode(-4, "linux"), "EAI_FAIL");
  assert.equal(eaiCode(-11, "linux"), "EAI_SYSTEM");
  assert.equal(eaiCode(-99, "linux"), "EAI_-99");
  assert.equal(eaiCode(8, "darwin"), "ENOTFOUND");
  assert.equal(eaiCode(7, "darwin"), "ENOTFOUND");
  assert.equal(eaiCode(2, "freebsd"), "EAI_AGAIN");
  assert.equal(eaiCode(4, "freebsd"), "EAI_FAIL");
});

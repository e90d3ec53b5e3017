/**
 * serve({ workers }): real Deno Workers, real sockets, npm:ws clients.
 *
 * - 2 workers behind SO_REUSEPORT (every poller): clients spread over both; a publish on
 *   either reaches every client of both in order, and one from the main thread too;
 *   stats per worker and summed; shutdown closes every client with 1001 in every worker.
 * - The main thread as acceptor (`workerAccept: "main"`): least loaded first.
 * - Port 0: the port the main thread reserved is the one every worker serves.
 * - The postMessage transport gives the same results.
 * - A worker kept busy while the ring fills: the others are not held, the busy one is
 *   skipped ahead, and the loss is counted and reported.
 * - A worker that throws: its clients get 1011, it is restarted, the group goes on.
 * - A worker module that cannot start: `ready` rejects, nothing stays open.
 * - SIGTERM to a program serving with workers (signals: true): clients get 1001, exit 0.
 * - Workers and a real Redis across two processes: every client of every worker of both
 *   gets each message once, in each sender's order.
 *
 * Descriptors: a Deno Worker leaves a few descriptors of the runtime behind the first time
 * one is used in a process, so each test warms that up before it counts.
 */

import assert from "node:assert/strict";
import { ClusterError, type ServerStats, SyscallError } from "../../mod.ts";
import { serve, type Server } from "../../server/serve.ts";
import type { ClusterStats } from "../../server/cluster/stats.ts";
import {
  assertNoFdLeak,
  Child,
  delay,
  openFds,
  POLLERS,
  waitFor,
  within,
} from "../fixtures/harness.ts";
import { Client } from "../fixtures/manager/helpers.ts";
import { RedisServer } from "../fixtures/redis.ts";
import { makeTestPki } from "../fixtures/tls.ts";
import { connect } from "../../client/connect.ts";
import { ConnectError } from "../../client/errors.ts";
import { type AppConfig, appOptions } from "../fixtures/server/workers_app.ts";

const APP = new URL("../fixtures/server/workers_app.ts", import.meta.url);
const BAD = new URL("../fixtures/server/workers_bad.ts", import.meta.url);

/** A Worker once, so that the runtime's own lazily opened descriptors exist before counting. */
async function warmUp(): Promise<void> {
  const src = "self.postMessage(0)";
  const url = `data:application/javascript,${encodeURIComponent(src)}`;
  const w = new Worker(url, { type: "module" });
  await new Promise((resolve) => (w.onmessage = resolve));
  w.terminate();
  await delay(50);
}

interface App {
  server: Server<{ n: number }>;
  errors: unknown[];
}

/** Starts the app with `config` in this thread (the workers read it from the environment). */
async function startApp(config: AppConfig): Promise<App> {
  Deno.env.set("FDWS_WORKERS_APP", JSON.stringify(config));
  const errors: unknown[] = [];
  const options = appOptions(config);
  options.websocket!.error = (_ws, err) => void errors.push(err);
  const server = serve(options);
  await within(server.workers!.ready, 20_000, "every worker listening");
  return { server, errors };
}

/** Opens `n` clients; returns them with the worker each landed on. */
async function clients(port: number, n: number): Promise<{ c: Client; worker: number }[]> {
  const out: { c: Client; worker: number }[] = [];
  for (let i = 0; i < n; i++) {
    const c = await Client.open(port);
    const hello = await c.nextText();
    assert.match(hello, /^hello \d$/);
    out.push({ c, worker: Number(hello.slice(6)) });
  }
  return out;
}

async function texts(c: Client, n: number): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < n; i++) got.push(await c.nextText(10_000));
  return got;
}

function sum(stats: ClusterStats<ServerStats>): number {
  return stats.workers.reduce((n, w) => n + (w.stats?.manager.opened ?? 0), 0);
}

for (const poller of POLLERS) {
  Deno.test(`workers (${poller}): clients spread over 2 workers, publishes reach all of them in order`, async () => {
    await warmUp();
    const before = openFds();
    const { server, errors } = await startApp({ workers: 2, poller });
    try {
      assert.equal(server.workers!.role, "main");
      assert.equal(server.workers!.count, 2);
      assert.equal(server.manager.size, 0, "the main thread serves no client");
      const all = await clients(server.port, 16);
      const on0 = all.filter((x) => x.worker === 0);
      const on1 = all.filter((x) => x.worker === 1);
      // SO_REUSEPORT hashes the connections: 16 on one listener happens with p = 2^-15.
      assert.ok(on0.length > 0 && on1.length > 0, `spread ${on0.length}/${on1.length}`);
      const N = 200;
      for (let i = 0; i < N; i++) {
        void on0[0].c.send(`pub a${i}`);
        void on1[0].c.send(`pub b${i}`);
      }
      server.manager.publish("room", "from main");
      for (const { c } of all) {
        const got = await texts(c, 2 * N + 1);
        assert.deepEqual(
          got.filter((t) => t[0] === "a"),
          Array.from({ length: N }, (_, i) => `a${i}`),
        );
        assert.deepEqual(
          got.filter((t) => t[0] === "b"),
          Array.from({ length: N }, (_, i) => `b${i}`),
        );
        assert.ok(got.includes("from main"));
      }
      await delay(50);
      for (const { c } of all) assert.equal(c.messages.length, 2 * N + 2, "nothing twice");
      const stats = await server.workers!.stats();
      assert.deepEqual(stats.workers.map((w) => w.state), ["running", "running"]);
      assert.deepEqual(stats.workers.map((w) => w.stats?.connections), [on0.length, on1.length]);
      assert.equal(stats.total.connections, 16);
      assert.equal(stats.total.server.upgraded, 16);
      assert.equal(sum(stats), 16);
      assert.equal(stats.total.manager.messagesOut, 16 * (2 * N + 2));
      assert.equal(stats.total.backplane!.gaps, 0);
      assert.equal(stats.main.backplane!.published, 1);
      // Shutdown: every client of every worker is closed with 1001.
      await server.shutdown();
      for (const { c } of all) assert.equal((await c.closed).code, 1001);
      assert.deepEqual(errors, []);
    } finally {
      await server.shutdown();
    }
    await assertNoFdLeak(before);
  });
}

Deno.test("workers: metricsPath answers for the whole group, whichever worker the scrape reaches", async () => {
  const { server, errors } = await startApp({ workers: 2, metricsPath: "/metrics" });
  try {
    const all = await clients(server.port, 6);
    const perWorker = [0, 1].map((w) => all.filter((x) => x.worker === w).length);
    const value = (text: string, series: string): number => {
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      assert.ok(line !== undefined, `${series} in\n${text}`);
      return Number(line.slice(series.length + 1));
    };
    // The kernel spreads the scrapes over both workers; every answer covers both.
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      assert.equal(value(text, "fdws_workers"), 2);
      for (const w of [0, 1]) {
        assert.equal(value(text, `fdws_worker_up{worker="${w}"}`), 1);
        assert.equal(value(text, `fdws_connections{worker="${w}"}`), perWorker[w]);
        assert.equal(value(text, `fdws_upgraded_total{worker="${w}"}`), perWorker[w]);
        assert.equal(value(text, `fdws_worker_restarts_total{worker="${w}"}`), 0);
        assert.ok(value(text, `fdws_loop_tick_seconds_count{worker="${w}"}`) > 0);
      }
      // Each family is announced once, with the samples of both workers under it.
      assert.equal(text.split("# TYPE fdws_connections gauge").length, 2);
    }
    for (const { c } of all) c.close();
    assert.deepEqual(errors, []);
  } finally {
    await server.shutdown();
  }
});

Deno.test("workers: the main thread accepts and hands connections to the least loaded worker", async () => {
  await warmUp();
  const before = openFds();
  const { server } = await startApp({ workers: 2, workerAccept: "main" });
  try {
    const all = await clients(server.port, 10);
    const counts = [0, 1].map((w) => all.filter((x) => x.worker === w).length);
    assert.ok(Math.abs(counts[0] - counts[1]) <= 2, `balanced: ${counts}`);
    await all[0].c.send("pub one");
    for (const { c } of all) assert.equal(await c.nextText(), "one");
    const stats = await server.workers!.stats();
    assert.equal(stats.total.server.accepted, 10);
    await server.shutdown();
    for (const { c } of all) assert.equal((await c.closed).code, 1001);
  } finally {
    await server.shutdown();
  }
  await assertNoFdLeak(before);
});

Deno.test("workers: port 0 is reserved by the main thread and served by every worker", async () => {
  await warmUp();
  const before = openFds();
  const { server } = await startApp({ workers: 2, port: 0 });
  try {
    assert.ok(server.port > 0);
    // The reservation is released once the workers listen: only they hold the port.
    const all = await clients(server.port, 12);
    assert.equal(new Set(all.map((x) => x.worker)).size, 2);
    for (const { c } of all) await c.close();
  } finally {
    await server.shutdown();
  }
  await assertNoFdLeak(before);
});

Deno.test("workers: the postMessage transport carries the same messages, in order", async () => {
  await warmUp();
  const before = openFds();
  const { server } = await startApp({ workers: 2, transport: "messages" });
  try {
    const all = await clients(server.port, 8);
    const N = 100;
    for (let i = 0; i < N; i++) void all[i % 8].c.send(`pub ${i % 8}:${i}`);
    for (const { c } of all) {
      const got = await texts(c, N);
      for (let k = 0; k < 8; k++) {
        const mine = got.filter((t) => t.startsWith(`${k}:`)).map((t) => Number(t.slice(2)));
        assert.deepEqual(mine, [...mine].sort((x, y) => x - y), "per sender order");
      }
      assert.equal(new Set(got).size, N);
    }
  } finally {
    await server.shutdown();
  }
  await assertNoFdLeak(before);
});

Deno.test("workers: a worker that reads nothing while the ring fills is skipped ahead, counted and reported", async () => {
  await warmUp();
  const before = openFds();
  const { server } = await startApp({ workers: 2, ringBytes: 65_536, stallTimeout: 200 });
  try {
    const all = await clients(server.port, 12);
    const busy = all.find((x) => x.worker === 1)!;
    const fine = all.filter((x) => x.worker === 0);
    const flooder = fine[0];
    for (const { c } of all) await c.send("join flood");
    await delay(100);
    // A first message on the topic, that everyone gets: later losses show as a gap.
    await flooder.c.send("flood 1 10");
    for (const { c } of all) assert.match(await c.nextText(), /^0 x+$/);
    // Worker 1 reads nothing for 1.5 s while worker 0 publishes ~1 MB (16 rings).
    void busy.c.send("block 1500");
    await delay(100);
    await flooder.c.send("flood 1000 1000");
    // Worker 0's own clients get all of it without waiting for worker 1.
    for (const { c } of fine) {
      const got = await texts(c, 1000);
      assert.equal(got[999].split(" ")[0], "999");
    }
    await delay(1_600);
    await flooder.c.send("flood 1 10");
    const seen: string[] = [];
    while (seen.at(-1) !== "0 xxxxxxxxxx") seen.push(await busy.c.nextText(10_000));
    assert.ok(seen.length < 1001, `the busy worker lost what it skipped (${seen.length - 1} got)`);
    const stats = await server.workers!.stats();
    const w1 = stats.workers[1].stats!.backplane!;
    assert.ok(w1.errors >= 1, "LAGGED reported");
    assert.match(w1.lastError ?? "", /skipped ahead/);
    assert.ok(w1.gaps >= 1 && w1.missed > 0, `gap counted: ${JSON.stringify(w1)}`);
    assert.equal(stats.workers[0].stats!.backplane!.dropped, 0);
  } finally {
    await server.shutdown();
  }
  await assertNoFdLeak(before);
});

Deno.test("workers: a worker that throws closes its clients with 1011 and is restarted", async () => {
  await warmUp();
  const before = openFds();
  const { server, errors } = await startApp({ workers: 2 });
  try {
    const all = await clients(server.port, 12);
    const victim = all.find((x) => x.worker === 1)!;
    const onVictim = all.filter((x) => x.worker === 1);
    await victim.c.send("throw");
    for (const { c } of onVictim) assert.equal((await c.closed).code, 1011);
    await waitFor(() => server.workers!.restarts === 1, 10_000, "restart");
    for (let i = 0; i < 200; i++) {
      if ((await server.workers!.stats()).workers[1].state === "running") break;
      await delay(50);
    }
    assert.equal((errors[0] as ClusterError).code, "WORKER_CRASHED");
    await waitFor(
      () => errors.length > 0,
      1_000,
      "the crash reported to the main thread's error handler",
    );
    // The group serves on: new clients reach the restarted worker too.
    let fresh: { c: Client; worker: number }[] = [];
    for (let i = 0; i < 20 && !fresh.some((x) => x.worker === 1); i++) {
      fresh = [...fresh, ...await clients(server.port, 1)];
    }
    assert.ok(fresh.some((x) => x.worker === 1), "the restarted worker serves");
    await fresh[fresh.length - 1].c.send("pub again");
    const survivors = [...all.filter((x) => x.worker === 0), ...fresh];
    for (const { c } of survivors) {
      assert.equal(c.messages.at(-1)?.data === "again" || await c.nextText() === "again", true);
    }
    const stats = await server.workers!.stats();
    assert.equal(stats.restarts, 1);
    assert.equal(stats.workers[1].restarts, 1);
  } finally {
    await server.shutdown();
  }
  await assertNoFdLeak(before);
});

// Deno prints the module's exception itself (it happens before any handler exists).
Deno.test("workers: a worker module that cannot start stops the group", async () => {
  await warmUp();
  const before = openFds();
  const errors: unknown[] = [];
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    workers: 2,
    workerModule: BAD,
    websocket: { error: (_ws, err) => void errors.push(err) },
  });
  await assert.rejects(
    within(server.workers!.ready, 20_000, "ready to settle"),
    (err: unknown) => err instanceof ClusterError && err.code === "WORKER_START_FAILED",
  );
  await within(server.finished, 10_000, "the group to stop");
  assert.ok(errors.length >= 1);
  await assertNoFdLeak(before);
});

Deno.test("workers: bad options and a taken port fail serve() at once, leaving nothing open", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const before = openFds();
  for (const workerAccept of ["reuseport", "main"] as const) {
    assert.throws(
      () =>
        serve({
          hostname: "127.0.0.1",
          port: (taken.addr as Deno.NetAddr).port,
          workers: 2,
          workerAccept,
          workerModule: APP,
        }),
      (err: unknown) => err instanceof SyscallError && err.code === "EADDRINUSE",
    );
  }
  taken.close();
  assert.throws(() => serve({ workers: -1 }), ClusterError);
  assert.throws(() => serve({ workers: 1.5 }), ClusterError);
  assert.throws(
    () => serve({ workers: 2, workerAccept: "kernel" as "main" }),
    (err: unknown) => err instanceof ClusterError && err.code === "INVALID_OPTION",
  );
  await assertNoFdLeak(before - 1, 0);
});

Deno.test("workers: SIGTERM drains every worker (1001) and the program exits 0", async () => {
  const child = new Child(Deno.execPath(), ["run", "-A", APP.pathname], {
    env: { FDWS_WORKERS_APP: JSON.stringify({ workers: 2, signals: true }) },
  });
  try {
    const line = await child.waitFor((l) => l.startsWith("{"), 20_000, "listening");
    const port = JSON.parse(line).port as number;
    const all = await clients(port, 8);
    assert.equal(new Set(all.map((x) => x.worker)).size, 2);
    child.kill("SIGTERM");
    for (const { c } of all) assert.equal((await c.closed).code, 1001);
    const status = await within(child.status, 10_000, "exit after SIGTERM");
    assert.equal(status.code, 0);
  } finally {
    await child.stop();
  }
});

Deno.test("workers + Redis: two processes of 2 workers each; every client gets each message once, in order", async () => {
  await warmUp();
  const before = openFds();
  const redis = await RedisServer.start();
  const config: AppConfig = { workers: 2, redis: redis.url() };
  const other = new Child(Deno.execPath(), ["run", "-A", APP.pathname], {
    env: { FDWS_WORKERS_APP: JSON.stringify(config) },
  });
  let app: App | null = null;
  try {
    const line = await other.waitFor((l) => l.startsWith("{"), 20_000, "listening");
    const otherPort = JSON.parse(line).port as number;
    app = await startApp(config);
    const here = await clients(app.server.port, 8);
    const there = await clients(otherPort, 8);
    const everyone = [...here, ...there];
    // One sender on each worker of each process.
    const senders = [0, 1].flatMap((w) =>
      [here, there].map((side) => side.find((x) => x.worker === w)!)
    );
    assert.equal(senders.every((s) => s !== undefined), true, "both workers of both sides");
    // Let every worker's SUBSCRIBE reach Redis.
    await delay(300);
    const N = 50;
    for (let i = 0; i < N; i++) {
      for (let k = 0; k < senders.length; k++) void senders[k].c.send(`pub s${k}:${i}`);
    }
    for (const { c } of everyone) {
      const got = await texts(c, N * senders.length);
      for (let k = 0; k < senders.length; k++) {
        assert.deepEqual(
          got.filter((t) => t.startsWith(`s${k}:`)),
          Array.from({ length: N }, (_, i) => `s${k}:${i}`),
          "each sender's messages, in order",
        );
      }
    }
    await delay(200);
    for (const { c } of everyone) {
      assert.equal(c.messages.length, 1 + N * senders.length, "each message once");
    }
    const stats = await app.server.workers!.stats();
    assert.equal(stats.total.backplane!.gaps, 0);
    assert.equal(stats.total.backplane!.connected, true);
  } finally {
    await app?.server.shutdown();
    other.kill("SIGTERM");
    await other.stop();
    await redis.stop();
  }
  await assertNoFdLeak(before);
});

Deno.test("workers: wss://, and reloadTls() in the main thread reaches every worker", async () => {
  await warmUp();
  const pki = makeTestPki();
  const { server } = await startApp({ workers: 2, tls: { cert: pki.cert, key: pki.key } });
  try {
    const url = `wss://localhost:${server.port}/`;
    const opened = async (): Promise<boolean> => {
      try {
        const ws = await connect(url, { ca: pki.ca, timeout: 5_000 });
        ws.terminate();
        return true;
      } catch (err) {
        assert.ok(err instanceof ConnectError && err.code === "HANDSHAKE_FAILED", String(err));
        return false;
      }
    };
    for (let i = 0; i < 6; i++) assert.equal(await opened(), true);
    // A certificate for wrong.test: every worker serves it, so no connection to localhost
    // verifies any more, whichever worker takes it.
    server.reloadTls({ cert: pki.wrongHostCert, key: pki.wrongHostKey });
    await waitForAsync(
      async () => {
        for (let i = 0; i < 6; i++) if (await opened()) return false;
        return true;
      },
      10_000,
      "every worker reloaded",
    );
    server.reloadTls({ cert: pki.cert, key: pki.key });
    await waitForAsync(
      async () => {
        for (let i = 0; i < 6; i++) if (!await opened()) return false;
        return true;
      },
      10_000,
      "every worker reloaded back",
    );
  } finally {
    await server.shutdown();
    pki.remove();
  }
});

/** Polls an async condition until it holds or `ms` passed. */
async function waitForAsync(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!await cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await delay(50);
  }
}

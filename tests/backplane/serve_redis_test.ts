/**
 * Topics across servers through a real redis-server, end to end: `serve({ backplane:
 * redisBackplane(...) })` on two servers (two nodes), clients on both, publishes from
 * either side reaching every subscriber in order; Redis killed and restarted mid-stream
 * (gap reported in pub/sub mode, nothing lost in streams mode); Redis down (local delivery
 * goes on, the error is visible); shutdown closes the Redis connections; no descriptor leak.
 */

import assert from "node:assert/strict";
import {
  type BackplaneGap,
  redisBackplane,
  type RedisBackplaneMode,
  serve,
  type Server,
} from "../../mod.ts";
import { assertNoFdLeak, delay, openFds, waitFor } from "../fixtures/harness.ts";
import { Client } from "../fixtures/manager/helpers.ts";
import { RedisServer } from "../fixtures/redis.ts";

interface Node {
  server: Server;
  gaps: BackplaneGap[];
  errors: Error[];
}

function node(url: string, mode: RedisBackplaneMode): Node {
  const gaps: BackplaneGap[] = [];
  const errors: Error[] = [];
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    pingInterval: 0,
    idleTimeout: 0,
    backplane: redisBackplane({ url, mode, reconnectMin: 50, reconnectMax: 200 }),
    onBackplaneGap: (gap) => void gaps.push(gap),
    onBackplaneError: (err) => void errors.push(err),
    websocket: {
      open: (ws) => ws.subscribe("room"),
      // Every message a client sends is published to the room (the sender included).
      message: (ws, data) => void ws.manager!.publish("room", data as string | Uint8Array),
    },
  });
  return { server, gaps, errors };
}

async function connected(n: Node): Promise<void> {
  await waitFor(() => n.server.manager.backplane?.stats.connected === true, 5_000, "connected");
}

/** The value of an unlabelled series in a server's Prometheus text. */
function metric(n: Node, name: string): number {
  const line = n.server.metrics().split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line !== undefined, `${name} is missing`);
  return Number(line.slice(name.length + 1));
}

async function drain(c: Client, count: number): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < count; i++) got.push(await c.nextText(5_000));
  return got;
}

for (const mode of ["pubsub", "sharded", "streams"] as const) {
  Deno.test(`redis ${mode}: a publish on one server reaches the subscribers of both, in order`, async () => {
    const before = openFds();
    const redis = await RedisServer.start();
    const a = node(redis.url(), mode);
    const b = node(redis.url(), mode);
    try {
      await connected(a);
      await connected(b);
      const onA = await Client.open(a.server.port);
      const onB = await Client.open(b.server.port);
      await waitFor(() => a.server.manager.subscriberCount("room") === 1, 2_000, "subscribed");
      await waitFor(() => b.server.manager.subscriberCount("room") === 1, 2_000, "subscribed");
      // Let the SUBSCRIBE reach Redis before publishing.
      await delay(100);
      const N = 300;
      for (let i = 0; i < N; i++) await onA.send(`a${i}`);
      const expected = Array.from({ length: N }, (_, i) => `a${i}`);
      assert.deepEqual(await drain(onA, N), expected);
      assert.deepEqual(await drain(onB, N), expected);
      // The other way, and never twice to the publisher's own node.
      await onB.send("from b");
      assert.equal(await onA.nextText(), "from b");
      assert.equal(await onB.nextText(), "from b");
      await delay(100);
      assert.equal(onA.messages.length, N + 1);
      assert.equal(onB.messages.length, N + 1);
      assert.deepEqual(a.gaps, []);
      assert.deepEqual(b.gaps, []);
      assert.equal(metric(a, "fdws_backplane_published_total"), N);
      assert.equal(metric(b, "fdws_backplane_received_total"), N);
      await onA.close();
      await onB.close();
    } finally {
      await a.server.shutdown({ timeout: 1_000 });
      await b.server.shutdown({ timeout: 1_000 });
      await redis.stop();
    }
    await assertNoFdLeak(before);
  });
}

Deno.test("redis pubsub: a restart mid-stream is reported as a gap; local delivery never stops", async () => {
  const before = openFds();
  const redis = await RedisServer.start();
  const a = node(redis.url(), "pubsub");
  const b = node(redis.url(), "pubsub");
  try {
    await connected(a);
    await connected(b);
    const onA = await Client.open(a.server.port);
    const onB = await Client.open(b.server.port);
    await delay(100);
    await onA.send("before");
    assert.equal(await onB.nextText(), "before");
    assert.equal(await onA.nextText(), "before");
    await redis.kill9();
    // Redis is down: the local subscriber still gets everything; B cannot.
    for (let i = 0; i < 5; i++) await onA.send(`down${i}`);
    assert.deepEqual(await drain(onA, 5), ["down0", "down1", "down2", "down3", "down4"]);
    await waitFor(
      () => a.errors.length > 0 || !a.server.manager.backplane!.stats.connected,
      5_000,
      "outage seen",
    );
    assert.equal(a.server.manager.backplane!.stats.connected, false);
    assert.equal(metric(a, "fdws_backplane_up"), 0);
    await redis.restart();
    await connected(a);
    await connected(b);
    assert.equal(metric(a, "fdws_backplane_up"), 1);
    assert.ok(metric(a, "fdws_backplane_reconnects_total") >= 1);
    assert.ok(metric(a, "fdws_backplane_errors_total") >= 1);
    await delay(200);
    await onA.send("after");
    // What was held during the outage is sent again after the reconnect (acknowledged
    // retention); either way B sees no duplicate and reports what it could not get.
    await waitFor(() => onB.messages.some((m) => m.data === "after"), 5_000, "after reaches b");
    const texts = onB.messages.map((m) => m.data as string);
    assert.equal(new Set(texts).size, texts.length, `duplicates: ${texts}`);
    assert.deepEqual(texts.filter((t) => t === "before" || t === "after"), ["before", "after"]);
    const lost = 5 - texts.filter((t) => t.startsWith("down")).length;
    if (lost > 0) {
      assert.ok(b.gaps.length > 0, "a loss must be reported as a gap");
      assert.equal(b.server.manager.backplane!.stats.gaps, b.gaps.length);
      assert.equal(metric(b, "fdws_backplane_gaps_total"), b.gaps.length);
    }
    await onA.close();
    await onB.close();
  } finally {
    await a.server.shutdown({ timeout: 1_000 });
    await b.server.shutdown({ timeout: 1_000 });
    await redis.stop();
  }
  await assertNoFdLeak(before);
});

Deno.test("redis pubsub: messages a node missed while its subscription was cut are reported as a gap", async () => {
  const before = openFds();
  const redis = await RedisServer.start();
  const a = node(redis.url(), "pubsub");
  const b = node(redis.url(), "pubsub");
  try {
    await connected(a);
    await connected(b);
    const onA = await Client.open(a.server.port);
    const onB = await Client.open(b.server.port);
    await delay(100);
    await onA.send("m0");
    assert.equal(await onB.nextText(), "m0");
    // Cut B's subscriber connection (as the client-output-buffer-limit does) and publish
    // while it reconnects: pub/sub is at-most-once, so B misses some and must say so.
    const bId = b.server.manager.backplane!.nodeId;
    assert.equal(await redis.killClients(`${bId}:sub`), 1);
    for (let i = 1; i <= 20; i++) await onA.send(`m${i}`);
    await connected(b);
    await waitFor(() => b.server.manager.backplane!.stats.reconnects > 0, 5_000, "b reconnected");
    await delay(300);
    await onA.send("last");
    await waitFor(() => onB.messages.some((m) => m.data === "last"), 5_000, "last reaches b");
    const missed = 21 - onB.messages.length;
    assert.ok(missed > 0, "the cut must have cost some messages");
    assert.ok(b.gaps.length > 0, "the loss is reported");
    assert.equal(b.gaps[0].topic, "room");
    assert.equal(b.server.manager.backplane!.stats.gaps, b.gaps.length);
    // A's own subscribers got everything.
    assert.equal((await drain(onA, 22)).length, 22);
    await onA.close();
    await onB.close();
  } finally {
    await a.server.shutdown({ timeout: 1_000 });
    await b.server.shutdown({ timeout: 1_000 });
    await redis.stop();
  }
  await assertNoFdLeak(before);
});

Deno.test("redis streams: a node that missed messages while Redis restarted catches up", async () => {
  const before = openFds();
  const redis = await RedisServer.start({ persistent: true });
  const a = node(redis.url(), "streams");
  const b = node(redis.url(), "streams");
  try {
    await connected(a);
    await connected(b);
    const onA = await Client.open(a.server.port);
    const onB = await Client.open(b.server.port);
    await delay(200);
    await onA.send("s0");
    assert.equal(await onB.nextText(), "s0");
    await redis.kill9();
    for (let i = 1; i <= 5; i++) await onA.send(`s${i}`);
    await redis.restart();
    await onA.send("s6");
    const got = await drain(onB, 6);
    assert.deepEqual(got, ["s1", "s2", "s3", "s4", "s5", "s6"]);
    assert.deepEqual(b.gaps, []);
    await onA.close();
    await onB.close();
  } finally {
    await a.server.shutdown({ timeout: 1_000 });
    await b.server.shutdown({ timeout: 1_000 });
    await redis.stop();
  }
  await assertNoFdLeak(before);
});

Deno.test("redis: shutdown closes the Redis connections", async () => {
  const redis = await RedisServer.start();
  try {
    const a = node(redis.url(), "pubsub");
    await connected(a);
    const c = await Client.open(a.server.port);
    for (let i = 0; (await redis.clients()).length < 3 && i < 100; i++) await delay(20);
    // The backplane's publisher and subscriber, and redis-cli asking.
    assert.equal((await redis.clients()).length, 3);
    await c.close();
    await a.server.shutdown({ timeout: 1_000 });
    // Only redis-cli's own connection remains.
    const clients = await redis.clients();
    assert.equal(clients.length, 1, JSON.stringify(clients));
  } finally {
    await redis.stop();
  }
});

Deno.test("a backplane that refuses its options fails serve() and leaves nothing open", async () => {
  const before = openFds();
  for (let i = 0; i < 3; i++) {
    assert.throws(() =>
      serve({
        hostname: "127.0.0.1",
        port: 0,
        backplane: redisBackplane({ url: "redis://127.0.0.1:1", bufferLimit: 1 }),
      })
    );
  }
  // With workers: the group's reserved port and shared structures are released too (no
  // worker is started), and a later serve({ workers }) may run.
  assert.throws(() =>
    serve({
      hostname: "127.0.0.1",
      port: 0,
      workers: 2,
      backplane: redisBackplane({ url: "redis://127.0.0.1:1", bufferLimit: 1 }),
    })
  );
  await assertNoFdLeak(before);
});

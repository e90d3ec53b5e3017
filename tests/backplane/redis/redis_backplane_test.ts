// The Redis backplane against a real redis-server started by each test on a free port:
// two nodes (two backplanes on two loops) in every mode and under every poller, order,
// own messages, Redis killed and restarted (gap in pub/sub mode, no loss in streams
// mode), Redis down (publishing goes on, errors visible, reconnection and resubscription),
// the pub/sub output-buffer-limit disconnect, CLIENT KILL, a frozen server, AUTH and
// database selection, the buffer limit, and no descriptor or connection left by close().
import assert from "node:assert/strict";
import type { BackplaneGap } from "../../../core/backplane.ts";
import {
  RedisBackplane,
  type RedisBackplaneMode,
  type RedisBackplaneOptions,
} from "../../../backplane/redis/redis_backplane.ts";
import { RedisBackplaneError } from "../../../backplane/redis/errors.ts";
import { assertNoFdLeak, delay, openFds, POLLERS, waitFor } from "../../fixtures/harness.ts";
import { TestLoop } from "../../fixtures/io_loop.ts";
import { RedisServer } from "../../fixtures/redis.ts";
import type { PollerKind } from "../../../poller/poller.ts";

const MODES: readonly RedisBackplaneMode[] = ["pubsub", "sharded", "streams"];
const WAIT_MS = 15_000;
const text = new TextEncoder();
const untext = new TextDecoder();

interface Received {
  topic: string;
  payload: Uint8Array;
  binary: boolean;
  origin: string;
}

/** One node: a loop, a backplane, and what it received. */
class Node {
  readonly loop: TestLoop;
  readonly bp: RedisBackplane;
  readonly received: Received[] = [];
  readonly gaps: BackplaneGap[] = [];
  readonly errors: Error[] = [];

  constructor(url: string, options: RedisBackplaneOptions = {}, poller?: PollerKind) {
    this.loop = new TestLoop(poller).start();
    this.bp = new RedisBackplane(this.loop, {
      message: (topic, payload, binary, origin) => {
        this.received.push({ topic, payload: payload.slice(), binary, origin });
      },
      gap: (gap) => this.gaps.push(gap),
      error: (error) => this.errors.push(error),
    }, { url, reconnectMin: 20, reconnectMax: 200, ...options });
  }

  /** The payloads received on `topic`, as text. */
  texts(topic?: string): string[] {
    return this.received.filter((r) => topic === undefined || r.topic === topic).map((r) =>
      untext.decode(r.payload)
    );
  }

  publishText(topic: string, msg: string): void {
    this.bp.publish(topic, text.encode(msg), false);
  }

  async stop(): Promise<void> {
    await this.bp.close();
    await this.loop.stop();
    assert.deepEqual(this.loop.errors, [], "errors reported to the loop");
  }
}

/** Runs `fn` with a fresh server, stopped (and descriptors checked) whatever happens. */
async function withRedis(
  options: Parameters<typeof RedisServer.start>[0],
  fn: (redis: RedisServer) => Promise<void>,
): Promise<void> {
  const before = openFds();
  const redis = await RedisServer.start(options);
  try {
    await fn(redis);
  } finally {
    await redis.stop();
  }
  await assertNoFdLeak(before);
}

/** Both nodes connected and subscribed (a publish now reaches the other). */
async function ready(...nodes: Node[]): Promise<void> {
  await waitFor(() => nodes.every((n) => n.bp.stats.connected), WAIT_MS, "nodes connected");
  // The subscribe commands go out with the handshake; a round trip on the receiving
  // connection has passed once a probe from each node arrives at every other.
  const probe = `probe-${Math.random()}`;
  for (const n of nodes) n.publishText("__probe__", probe);
  await waitFor(
    () =>
      nodes.every((n) =>
        n.texts("__probe__").filter((t) => t === probe).length === nodes.length - 1
      ),
    WAIT_MS,
    "probes delivered",
  );
}

function range(n: number, from = 0): string[] {
  return Array.from({ length: n }, (_, i) => `m${from + i}`);
}

Deno.test("redis backplane: two nodes exchange messages in order", async (t) => {
  await withRedis({}, async (redis) => {
    for (const poller of POLLERS) {
      for (const mode of MODES) {
        await t.step(`${mode} (${poller})`, async () => {
          const a = new Node(redis.url(), { mode }, poller);
          const b = new Node(redis.url(), { mode }, poller);
          try {
            for (const n of [a, b]) {
              n.bp.subscribe("__probe__");
              n.bp.subscribe("room");
            }
            await ready(a, b);
            // 1000 from each side, interleaved, in batches of one tick each.
            for (let i = 0; i < 1000; i += 50) {
              for (let j = i; j < i + 50; j++) {
                a.publishText("room", `a${j}`);
                b.publishText("room", `b${j}`);
              }
              await delay(0);
            }
            const binary = Uint8Array.from({ length: 256 }, (_, i) => i);
            a.bp.publish("room", binary, true);
            a.bp.publish("room", new Uint8Array(0), false);
            await waitFor(
              () => b.texts("room").length === 1002 && a.texts("room").length === 1000,
              WAIT_MS,
              "all delivered",
            );
            assert.deepEqual(
              b.texts("room").slice(0, 1000),
              range(1000).map((m) => `a${m.slice(1)}`),
            );
            assert.deepEqual(a.texts("room"), range(1000).map((m) => `b${m.slice(1)}`));
            const [bin, empty] = b.received.filter((r) => r.topic === "room").slice(1000);
            assert.deepEqual(bin.payload, binary);
            assert.equal(bin.binary, true);
            assert.equal(empty.payload.length, 0);
            assert.equal(empty.binary, false);
            // Own messages never come back; origins name the publisher.
            assert.ok(a.received.every((r) => r.origin === b.bp.nodeId));
            assert.ok(b.received.every((r) => r.origin === a.bp.nodeId));
            for (const n of [a, b]) {
              assert.deepEqual(n.gaps, []);
              assert.equal(n.bp.stats.duplicates, 0);
              assert.equal(n.bp.stats.dropped, 0);
              assert.deepEqual(n.errors, []);
            }
            // Unsubscribed: nothing more arrives for that topic; others still do.
            b.bp.unsubscribe("room");
            b.bp.subscribe("other");
            await delay(100);
            a.publishText("room", "late");
            a.publishText("other", "x");
            await waitFor(() => b.texts("other").length === 1, WAIT_MS, "other topic");
            await delay(100);
            assert.equal(b.texts("room").length, 1002);
            assert.deepEqual(b.bp.topics.sort(), ["__probe__", "other"]);
          } finally {
            await a.stop();
            await b.stop();
          }
          assert.equal(
            (await redis.clients()).filter((c) => c.name?.startsWith("fdws:")).length,
            0,
            "close() closed every connection",
          );
        });
      }
    }
  });
});

Deno.test("redis backplane: kill -9 and restart mid-stream", async (t) => {
  await t.step("pub/sub: the lost messages are reported as a gap; delivery resumes", async () => {
    await withRedis({}, async (redis) => {
      const a = new Node(redis.url());
      const b = new Node(redis.url());
      try {
        b.bp.subscribe("__probe__");
        b.bp.subscribe("room");
        a.bp.subscribe("__probe__");
        await ready(a, b);
        for (const m of range(10)) a.publishText("room", m);
        await waitFor(() => b.texts("room").length === 10, WAIT_MS, "first ten");
        await redis.kill9();
        // Published while Redis is down: accepted, kept, never thrown.
        for (const m of range(10, 10)) a.publishText("room", m);
        await waitFor(() => !a.bp.stats.connected && !b.bp.stats.connected, WAIT_MS, "both down");
        await redis.restart();
        await waitFor(
          () => a.bp.stats.connected && b.bp.stats.connected,
          WAIT_MS,
          "both reconnected",
        );
        await ready(a, b);
        for (const m of range(10, 20)) a.publishText("room", m);
        await waitFor(() => b.texts("room").at(-1) === "m29", WAIT_MS, "later messages");
        const got = b.texts("room");
        // In order, nothing twice; whatever went missing is exactly what the gaps say.
        const numbers = got.map((m) => Number(m.slice(1)));
        assert.deepEqual(numbers, [...numbers].sort((x, y) => x - y));
        assert.equal(new Set(numbers).size, numbers.length);
        const missing = 30 - got.length;
        const reported = b.gaps.reduce((n, g) => n + g.received - g.expected, 0);
        assert.equal(reported, missing);
        assert.equal(b.bp.stats.missed, missing);
        for (const g of b.gaps) {
          assert.equal(g.kind, "sequence");
          assert.equal(g.origin, a.bp.nodeId);
          assert.equal(g.topic, "room");
        }
        assert.ok(a.bp.stats.reconnects >= 1 && b.bp.stats.reconnects >= 1);
        assert.ok(a.errors.some((e) => e instanceof RedisBackplaneError));
      } finally {
        await a.stop();
        await b.stop();
      }
    });
  });

  await t.step("streams (persistent Redis): nothing lost, no gap", async () => {
    await withRedis({ persistent: true }, async (redis) => {
      const a = new Node(redis.url(), { mode: "streams" });
      const b = new Node(redis.url(), { mode: "streams" });
      try {
        b.bp.subscribe("__probe__");
        b.bp.subscribe("room");
        a.bp.subscribe("__probe__");
        await ready(a, b);
        let sent = 0;
        const pump = async (n: number): Promise<void> => {
          for (let i = 0; i < n; i++) {
            a.publishText("room", `m${sent++}`);
            if (i % 20 === 19) await delay(1);
          }
        };
        await pump(200);
        await redis.kill9(); // mid-stream: some XADDs unanswered, some not yet received
        await pump(100);
        await redis.restart();
        await pump(100);
        await waitFor(() => b.texts("room").length === sent, WAIT_MS, "every message");
        assert.deepEqual(b.texts("room"), range(sent));
        assert.deepEqual(b.gaps, []);
        assert.equal(b.bp.stats.missed, 0);
        assert.ok(b.bp.stats.reconnects >= 1);
      } finally {
        await a.stop();
        await b.stop();
      }
    });
  });

  await t.step("streams without persistence: the lost stream is reported", async () => {
    await withRedis({}, async (redis) => {
      const b = new Node(redis.url(), { mode: "streams" });
      const a = new Node(redis.url(), { mode: "streams" });
      try {
        b.bp.subscribe("__probe__");
        b.bp.subscribe("room");
        a.bp.subscribe("__probe__");
        await ready(a, b);
        for (const m of range(5)) a.publishText("room", m);
        await waitFor(() => b.texts("room").length === 5, WAIT_MS, "first five");
        await redis.kill9();
        await redis.restart();
        await waitFor(
          () => b.gaps.some((g) => g.kind === "window" && g.topic === "room"),
          WAIT_MS,
          "window gap",
        );
        a.publishText("room", "after");
        await waitFor(() => b.texts("room").at(-1) === "after", WAIT_MS, "delivery resumes");
      } finally {
        await a.stop();
        await b.stop();
      }
    });
  });
});

Deno.test("redis backplane: Redis down", async (t) => {
  for (const mode of ["pubsub", "streams"] as const) {
    await t.step(
      `${mode}: publish never throws, errors visible, reconnect and resubscribe`,
      async () => {
        await withRedis({ persistent: mode === "streams" }, async (redis) => {
          await redis.kill9();
          const a = new Node(redis.url(), { mode });
          const b = new Node(redis.url(), { mode });
          try {
            b.bp.subscribe("room");
            b.bp.subscribe("__probe__");
            a.bp.subscribe("__probe__");
            const t0 = performance.now();
            for (const m of range(100)) a.publishText("room", m);
            assert.ok(performance.now() - t0 < 1000, "publishing does not wait for Redis");
            await waitFor(() => a.errors.length >= 2 && b.errors.length >= 2, WAIT_MS, "errors");
            assert.equal(a.errors[0].constructor, RedisBackplaneError);
            assert.equal((a.errors[0] as RedisBackplaneError).code, "CONNECT_FAILED");
            assert.ok(a.bp.stats.errors >= 2);
            assert.match(a.bp.stats.lastError ?? "", /ECONNREFUSED|refused/i);
            assert.equal(a.bp.stats.connected, false);
            assert.equal(a.bp.stats.published, 100);
            assert.ok(a.bp.stats.buffered > 0, "kept for when Redis returns");
            await redis.restart();
            await ready(a, b);
            a.publishText("room", "after");
            await waitFor(() => b.texts("room").at(-1) === "after", WAIT_MS, "resubscribed");
            if (mode === "streams") {
              // Kept while Redis was down and read from the stream once it was back.
              assert.deepEqual(b.texts("room"), [...range(100), "after"]);
            }
            assert.equal(a.bp.stats.buffered, 0);
          } finally {
            await a.stop();
            await b.stop();
          }
        });
      },
    );
  }

  await t.step(
    "past bufferLimit new messages are dropped, counted, and seen as a gap",
    async () => {
      await withRedis({ persistent: true }, async (redis) => {
        const b = new Node(redis.url(), { mode: "streams" });
        const a = new Node(redis.url(), {
          mode: "streams",
          bufferLimit: 64 * 1024,
          maxMessageSize: 4096,
        });
        try {
          b.bp.subscribe("room");
          b.bp.subscribe("__probe__");
          a.bp.subscribe("__probe__");
          await ready(a, b);
          await redis.kill9();
          await waitFor(() => !a.bp.stats.connected, WAIT_MS, "a down");
          const filler = "x".repeat(1000);
          for (let i = 0; i < 100; i++) a.publishText("room", `${i} ${filler}`);
          const dropped = a.bp.stats.dropped;
          assert.ok(dropped > 0 && dropped < 100, `dropped ${dropped}`);
          assert.ok(a.bp.stats.buffered <= 64 * 1024);
          a.bp.publish("room", new Uint8Array(5000), true);
          assert.equal(a.bp.stats.dropped, dropped + 1, "over maxMessageSize");
          assert.equal((a.errors.at(-1) as RedisBackplaneError).code, "MESSAGE_TOO_LARGE");
          await redis.restart();
          await ready(a, b);
          a.publishText("room", "last");
          await waitFor(() => b.texts("room").at(-1) === "last", WAIT_MS, "last");
          const kept = 100 - dropped;
          assert.equal(b.texts("room").length, kept + 1);
          assert.equal(b.bp.stats.missed, dropped + 1);
          assert.deepEqual(
            b.gaps.map((g) => [g.kind, g.expected, g.received]),
            [["sequence", kept + 1, 102]],
          );
        } finally {
          await a.stop();
          await b.stop();
        }
      });
    },
  );
});

Deno.test("redis backplane: subscriber disconnected by Redis", async (t) => {
  await t.step("client-output-buffer-limit pubsub: reconnects, gap reported, resumes", async () => {
    await withRedis({}, async (redis) => {
      await redis.cli("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1kb 1kb 1");
      const a = new Node(redis.url());
      const b = new Node(redis.url());
      try {
        b.bp.subscribe("room");
        b.bp.subscribe("__probe__");
        a.bp.subscribe("__probe__");
        await ready(a, b);
        // A gap is measured from the last message seen from a publisher on the topic.
        a.publishText("room", "first");
        await waitFor(() => b.texts("room").length === 1, WAIT_MS, "first");
        // b stops reading; a floods: Redis drops b's subscriber connection.
        b.loop.pause();
        const big = "y".repeat(16 * 1024);
        for (let i = 0; i < 200; i++) a.publishText("room", `${i} ${big}`);
        await waitFor(() => a.bp.stats.buffered === 0, WAIT_MS, "flood acknowledged");
        b.loop.resume();
        await waitFor(() => b.bp.stats.reconnects >= 1, WAIT_MS, "b reconnected");
        await ready(a, b);
        a.publishText("room", "after");
        await waitFor(() => b.texts("room").at(-1) === "after", WAIT_MS, "after");
        assert.ok(b.bp.stats.gaps >= 1, "gap reported");
        assert.ok(b.errors.some((e) => (e as RedisBackplaneError).code === "CONNECTION_LOST"));
        assert.equal(b.bp.stats.received - b.texts("__probe__").length, b.texts("room").length);
        assert.equal(b.texts("room").length + b.bp.stats.missed, 202);
      } finally {
        await a.stop();
        await b.stop();
      }
    });
  });

  await t.step("CLIENT KILL of the receiving connection: resubscribed", async () => {
    await withRedis({}, async (redis) => {
      for (const mode of ["pubsub", "streams"] as const) {
        const a = new Node(redis.url(), { mode });
        const b = new Node(redis.url(), { mode });
        try {
          b.bp.subscribe("room");
          b.bp.subscribe("__probe__");
          a.bp.subscribe("__probe__");
          await ready(a, b);
          const role = mode === "streams" ? "read" : "sub";
          assert.equal(await redis.killClients(`fdws:${b.bp.nodeId}:${role}`), 1);
          await waitFor(() => b.bp.stats.reconnects === 1, WAIT_MS, "reconnected");
          await ready(a, b);
          a.publishText("room", "after");
          await waitFor(() => b.texts("room").at(-1) === "after", WAIT_MS, `${mode}: after`);
        } finally {
          await a.stop();
          await b.stop();
        }
      }
    });
  });

  await t.step("a frozen server: health check fails the connection, recovery after", async () => {
    await withRedis({}, async (redis) => {
      const a = new Node(redis.url(), { healthInterval: 100, connectTimeout: 300 });
      try {
        await waitFor(() => a.bp.stats.connected, WAIT_MS, "connected");
        redis.freeze(true);
        try {
          await waitFor(
            () => a.errors.some((e) => (e as RedisBackplaneError).code === "HEALTH_TIMEOUT"),
            WAIT_MS,
            "health timeout",
          );
          // Reconnection attempts time out (the kernel accepts, nobody answers).
          await waitFor(
            () => a.errors.some((e) => (e as RedisBackplaneError).code === "CONNECT_TIMEOUT"),
            WAIT_MS,
            "connect timeout",
          );
        } finally {
          redis.freeze(false);
        }
        await waitFor(() => a.bp.stats.connected, WAIT_MS, "recovered");
      } finally {
        await a.stop();
      }
    });
  });
});

Deno.test("redis backplane: AUTH and database selection", async (t) => {
  await withRedis({ password: "s3cr:t@" }, async (redis) => {
    await t.step("password and /db from the URL", async () => {
      const a = new Node(redis.url(3), { mode: "streams" });
      const b = new Node(redis.url(3), { mode: "streams" });
      try {
        b.bp.subscribe("room");
        b.bp.subscribe("__probe__");
        a.bp.subscribe("__probe__");
        await ready(a, b);
        a.publishText("room", "hello");
        await waitFor(() => b.texts("room").length === 1, WAIT_MS, "delivered");
        assert.equal(await redis.cli("-n", "3", "XLEN", "fdws:room"), "1");
        assert.equal(await redis.cli("-n", "0", "EXISTS", "fdws:room"), "0");
      } finally {
        await a.stop();
        await b.stop();
      }
    });

    await t.step("a wrong password: AUTH_FAILED reported, retried, never thrown", async () => {
      const url = redis.url().replace(encodeURIComponent("s3cr:t@"), "wrong");
      const a = new Node(url);
      try {
        a.publishText("room", "x");
        await waitFor(() => a.errors.length >= 2, WAIT_MS, "errors");
        assert.equal((a.errors[0] as RedisBackplaneError).code, "AUTH_FAILED");
        assert.match(a.errors[0].message, /WRONGPASS|invalid/);
        assert.equal(a.bp.stats.connected, false);
      } finally {
        await a.stop();
      }
    });
  });
});

Deno.test("redis backplane: bad options are refused at construction", () => {
  const loop = new TestLoop();
  try {
    const make = (o: RedisBackplaneOptions): RedisBackplane =>
      new RedisBackplane(loop, { message() {} }, o);
    const refused = (o: RedisBackplaneOptions, code: string): void => {
      assert.throws(
        () => make(o),
        (e: unknown) => e instanceof RedisBackplaneError && e.code === code,
        JSON.stringify(o),
      );
    };
    refused({ url: "rediss://h" }, "TLS_UNSUPPORTED");
    refused({ url: "redis://h/x" }, "INVALID_URL");
    refused({ mode: "cluster" as RedisBackplaneMode }, "INVALID_OPTION");
    refused({ nodeId: 0 }, "INVALID_OPTION");
    refused({ nodeId: 2 ** 48 }, "INVALID_OPTION");
    refused({ epoch: 2 ** 32 }, "INVALID_OPTION");
    refused({ bufferLimit: 1000, maxMessageSize: 1000 }, "INVALID_OPTION");
    refused({ streamBlock: 0 }, "INVALID_OPTION");
  } finally {
    loop.poller.close();
  }
});

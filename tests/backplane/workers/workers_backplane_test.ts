/**
 * The cross-worker backplane between nodes on loops of one thread (the shared memory and
 * the doorbells work the same between threads; the server tests run real workers): order
 * across many ring wraps, the main thread's node, publishes no other node wants, a slow
 * node (held in order, nothing lost), a stalled node (skipped ahead: it reports the loss,
 * the others are not held), a full overflow queue (dropped, counted, reported, seen as a
 * gap), publishes before the join, both transports, every poller, no descriptor leak.
 */

import assert from "node:assert/strict";
import type { BackplaneGap } from "../../../core/backplane.ts";
import type { WorkersBackplaneError } from "../../../backplane/workers/errors.ts";
import {
  closeTopology,
  createTopology,
  type WorkersBackplaneOptions,
  type WorkersTopology,
} from "../../../backplane/workers/topology.ts";
import { WorkersBackplane } from "../../../backplane/workers/workers_backplane.ts";
import { TestLoop } from "../../fixtures/io_loop.ts";
import { delay, POLLERS, stepPerPoller, waitFor } from "../../fixtures/harness.ts";
import type { PollerKind } from "../../../poller/poller.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Node {
  loop: TestLoop;
  bp: WorkersBackplane;
  got: string[];
  gaps: BackplaneGap[];
  errors: Error[];
}

class Cluster {
  readonly topology: WorkersTopology;
  readonly nodes: Node[] = [];
  readonly #channels: MessageChannel[][] = [];

  constructor(readonly poller: PollerKind, count: number, options: WorkersBackplaneOptions = {}) {
    this.topology = createTopology(count, { ringBytes: 65_536, ...options });
    for (let i = 0; i < count; i++) {
      this.#channels.push([]);
      for (let j = 0; j < i; j++) this.#channels[i][j] = new MessageChannel();
    }
    for (let i = 0; i < count; i++) this.nodes.push(this.node(i, true));
  }

  /** Node i, joined unless `join` is false. */
  node(i: number, join: boolean): Node {
    const loop = new TestLoop(this.poller).start();
    const node: Node = { loop, bp: null!, got: [], gaps: [], errors: [] };
    node.bp = new WorkersBackplane(loop, {
      message: (topic, payload, binary) =>
        void node.got.push(`${topic}:${binary ? "b" : "t"}:${dec.decode(payload)}`),
      gap: (gap) => void node.gaps.push(gap),
      error: (err) => void node.errors.push(err),
    });
    if (join) this.join(node, i);
    return node;
  }

  join(node: Node, i: number): void {
    const ports = Array.from(
      { length: this.topology.nodes },
      (_, j) => j === i ? null : i < j ? this.#channels[j][i].port2 : this.#channels[i][j].port1,
    );
    node.bp.join({ topology: this.topology, node: i, consumer: i !== 0, ports });
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) {
      await n.bp.close();
      await n.loop.stop();
    }
    for (const row of this.#channels) {
      for (const ch of row) {
        ch?.port1.close();
        ch?.port2.close();
      }
    }
    closeTopology(this.topology);
  }
}

async function until(node: Node, count: number, what = "messages"): Promise<void> {
  await waitFor(
    () => node.got.length >= count,
    10_000,
    `${count} ${what} (got ${node.got.length})`,
  );
}

for (const transport of ["ring", "messages"] as const) {
  Deno.test(`workers backplane (${transport}): every message, in order, to every other worker`, async (t) => {
    await stepPerPoller(t, POLLERS, async (poller) => {
      const c = new Cluster(poller, 4, { transport });
      try {
        const [main, a, b, d] = c.nodes;
        for (const n of [a, b, d]) n.bp.subscribe("room");
        b.bp.subscribe("other");
        const N = 20_000;
        for (let i = 0; i < N; i++) {
          a.bp.publish("room", enc.encode(`a${i}`), false);
          if (i % 3 === 0) a.bp.publish("other", enc.encode(`o${i}`), true);
          if (i % 1000 === 999) await delay(1);
        }
        main.bp.publish("room", enc.encode("from main"), false);
        await until(b, N + Math.ceil(N / 3) + 1);
        await until(d, N + 1);
        // Per publisher order (two publishers' messages may interleave).
        const room = Array.from({ length: N }, (_, i) => `room:t:a${i}`);
        const fromA = (m: string): boolean => m.startsWith("room:t:a");
        assert.deepEqual(d.got.filter(fromA), room);
        assert.deepEqual(b.got.filter(fromA), room);
        assert.ok(d.got.includes("room:t:from main"));
        assert.ok(b.got.includes("room:t:from main"));
        assert.deepEqual(
          b.got.filter((m) => m.startsWith("other:")),
          Array.from({ length: Math.ceil(N / 3) }, (_, k) => `other:b:o${k * 3}`),
        );
        // Per publisher order across topics too.
        assert.equal(b.got.indexOf("other:b:o3") > b.got.indexOf("room:t:a3"), true);
        assert.deepEqual(
          a.got,
          ["room:t:from main"],
          "a publisher never gets its own message back",
        );
        assert.deepEqual(main.got, [], "the main thread's node does not receive");
        for (const n of c.nodes) assert.deepEqual([n.gaps, n.errors], [[], []]);
        assert.equal(a.bp.stats.published, N + Math.ceil(N / 3));
        assert.equal(d.bp.stats.received, N + 1);
      } finally {
        await c.stop();
      }
    });
  });

  Deno.test(`workers backplane (${transport}): a topic no other worker wants is not handed over`, async () => {
    const c = new Cluster(POLLERS[0], 3, { transport });
    try {
      const [, a, b] = c.nodes;
      a.bp.subscribe("mine");
      a.bp.publish("mine", enc.encode("x"), false);
      a.bp.publish("nobody", enc.encode("x"), false);
      assert.equal(a.bp.skipped, 2);
      assert.equal(a.bp.stats.published, 0);
      b.bp.subscribe("mine");
      a.bp.publish("mine", enc.encode("y"), false);
      await until(b, 1);
      assert.deepEqual(b.got, ["mine:t:y"]);
      b.bp.unsubscribe("mine");
      a.bp.publish("mine", enc.encode("z"), false);
      assert.equal(a.bp.skipped, 3);
    } finally {
      await c.stop();
    }
  });

  Deno.test(`workers backplane (${transport}): what is published before the join goes first, in order`, async () => {
    const c = new Cluster(POLLERS[0], 3, { transport });
    const late = c.node(1, false);
    try {
      const b = c.nodes[2];
      b.bp.subscribe("room");
      for (let i = 0; i < 100; i++) late.bp.publish("room", enc.encode(`early${i}`), false);
      assert.equal(late.bp.stats.connected, false);
      assert.ok(late.bp.stats.buffered > 0);
      c.join(late, 1);
      late.bp.publish("room", enc.encode("after"), false);
      await until(b, 101);
      assert.deepEqual(b.got, [
        ...Array.from({ length: 100 }, (_, i) => `room:t:early${i}`),
        "room:t:after",
      ]);
    } finally {
      await late.bp.close();
      await late.loop.stop();
      await c.stop();
    }
  });
}

Deno.test("workers backplane (ring): a slow worker is waited for, in order, within the overflow queue", async () => {
  const c = new Cluster(POLLERS[0], 3, { stallTimeout: 60_000 });
  try {
    const [, a, b] = c.nodes;
    b.bp.subscribe("room");
    b.loop.pause();
    const N = 2_000; // ~2 MB: far more than the 64 KiB ring
    const payload = "x".repeat(1000);
    for (let i = 0; i < N; i++) a.bp.publish("room", enc.encode(`${i} ${payload}`), false);
    assert.ok(a.bp.stats.buffered > 1_000_000, "held in the overflow queue");
    b.loop.resume();
    await until(b, N);
    assert.deepEqual(
      b.got.map((m) => Number(m.split(" ")[0].slice(7))),
      Array.from({ length: N }, (_, i) => i),
    );
    await waitFor(() => a.bp.stats.buffered === 0, 5_000, "overflow queue drained");
    assert.deepEqual([a.bp.stats.dropped, b.bp.stats.gaps, a.errors, b.errors], [0, 0, [], []]);
  } finally {
    await c.stop();
  }
});

Deno.test("workers backplane (ring): a stalled worker is skipped ahead; the others are not held", async () => {
  const c = new Cluster(POLLERS[0], 4, { stallTimeout: 100 });
  try {
    const [, a, stalled, fine] = c.nodes;
    stalled.bp.subscribe("room");
    fine.bp.subscribe("room");
    a.bp.publish("room", enc.encode("first"), false);
    await until(stalled, 1);
    stalled.loop.pause();
    const payload = "x".repeat(1000);
    for (let i = 0; i < 500; i++) a.bp.publish("room", enc.encode(`${i} ${payload}`), false);
    // The ring holds ~60 of them: the rest wait for the stalled node, then it is skipped.
    await until(fine, 501, "messages at the healthy node despite the stalled one");
    assert.equal(a.bp.stats.buffered, 0);
    stalled.loop.resume();
    const isLagged = (e: Error): boolean => (e as WorkersBackplaneError).code === "LAGGED";
    await waitFor(() => stalled.errors.some(isLagged), 5_000, "the skip reported");
    a.bp.publish("room", enc.encode("next"), false);
    await waitFor(() => stalled.got.includes("room:t:next"), 5_000, "the stalled node resumes");
    assert.ok(stalled.got.length < 502, "it lost what it skipped");
    assert.equal(stalled.errors.filter(isLagged).length, 1, "the skip is reported once");
    assert.equal(stalled.gaps.length, 1, "and seen as a gap on the topic");
    assert.equal(stalled.gaps[0].topic, "room");
    assert.equal(stalled.bp.stats.missed, 502 - stalled.got.length);
    assert.equal(fine.got.length, 502);
    assert.deepEqual([fine.gaps, fine.errors, a.bp.stats.dropped], [[], [], 0]);
  } finally {
    await c.stop();
  }
});

for (const transport of ["ring", "messages"] as const) {
  Deno.test(`workers backplane (${transport}): a full queue drops, counts, reports; receivers see a gap`, async () => {
    const c = new Cluster(POLLERS[0], 3, {
      transport,
      overflowBytes: 32 * 1024,
      stallTimeout: 60_000,
    });
    try {
      const [, a, b] = c.nodes;
      b.bp.subscribe("room");
      b.bp.subscribe("flood");
      // b's handler floods while b reads a's ring: b cannot be skipped ahead in the middle
      // of a read, so once the ring and the queue are full, a must drop.
      let flooded = false;
      const payload = enc.encode("y".repeat(1000));
      a.bp.publish("flood", enc.encode("first"), false);
      await until(b, 1);
      b.got.push = function (...items: string[]): number {
        if (!flooded && items[0] === "room:t:go") {
          flooded = true;
          for (let i = 0; i < 300; i++) a.bp.publish("flood", payload, false);
        }
        return Array.prototype.push.apply(this, items);
      };
      a.bp.publish("room", enc.encode("go"), false);
      await waitFor(() => flooded, 5_000, "flood");
      a.bp.publish("flood", enc.encode("last"), false);
      await waitFor(() => b.got.includes("flood:t:last"), 5_000, "last message");
      assert.ok(a.bp.stats.dropped > 0, "dropped");
      const overflow = a.errors.filter((e) => (e as WorkersBackplaneError).code === "OVERFLOW");
      assert.equal(overflow.length, 1, "reported once per episode");
      assert.ok(b.gaps.length > 0, "the receiver sees the hole");
      assert.equal(b.bp.stats.missed, a.bp.stats.dropped);
      assert.equal(b.got.length - 2, 301 - a.bp.stats.dropped);
    } finally {
      await c.stop();
    }
  });
}

Deno.test("workers backplane: a message too large for the ring is dropped and reported", async () => {
  const c = new Cluster(POLLERS[0], 3);
  try {
    const [, a, b] = c.nodes;
    b.bp.subscribe("room");
    a.bp.publish("room", new Uint8Array(1), true);
    await until(b, 1);
    a.bp.publish("room", new Uint8Array(20_000), true);
    assert.equal(a.bp.stats.dropped, 1);
    assert.equal((a.errors[0] as WorkersBackplaneError).code, "MESSAGE_TOO_LARGE");
    a.bp.publish("room", new Uint8Array(16_000), true);
    await until(b, 2);
    assert.equal(b.gaps.length, 1, "the dropped one is a hole in the numbering");
  } finally {
    await c.stop();
  }
});

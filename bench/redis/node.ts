/**
 * One node of the Redis backplane benchmark, in a process of its own, with either client:
 *
 *   deno run -A --no-lock bench/redis/node.ts CLIENT ROLE URL COUNT RATE SIZE
 *
 * CLIENT: "own" (RedisBackplane on the project's sockets) or "npm" (a thin pub/sub variant
 * on npm:ioredis with the same stamps, for the comparison only). ROLE: "recv" (prints
 * "ready", then one JSON line of figures once COUNT messages arrived or 20 s passed) or
 * "send" (publishes COUNT messages of SIZE bytes, RATE per second, 0 = as fast as the
 * client accepts them, then prints one JSON line). The payload starts with the send time
 * (performance.timeOrigin + now(), comparable across processes of one machine).
 *
 * @module
 */

import { RedisBackplane } from "../../backplane/redis/redis_backplane.ts";
import { OriginTracker, Verdict } from "../../backplane/sequence.ts";
import {
  newEpoch,
  newNodeId,
  readStamp,
  Stamp,
  STAMP_SIZE,
  writeStamp,
} from "../../backplane/stamp.ts";
import { TestLoop } from "../../tests/fixtures/io_loop.ts";

const [client, role, url, countText, rateText, sizeText] = Deno.args;
const COUNT = Number(countText);
const RATE = Number(rateText);
const SIZE = Math.max(8, Number(sizeText));
const TOPIC = "bench";

function cpuMs(): number {
  const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, clock ticks of 10 ms
}
const nowAbs = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Node {
  publish(payload: Uint8Array): void;
  /** Bytes or commands not yet acknowledged (flow control of the "as fast as" mode). */
  backlog(): number;
  subscribe(): Promise<void>;
  close(): Promise<void>;
}

const latencies: number[] = [];
let received = 0;
let firstAt = 0;
let lastAt = 0;
let cpuAtFirst = 0;
let gaps = 0;
const view = new DataView(new ArrayBuffer(8));
const viewBytes = new Uint8Array(view.buffer);
function onMessage(payload: Uint8Array): void {
  const t = nowAbs();
  for (let i = 0; i < 8; i++) viewBytes[i] = payload[i];
  latencies.push(t - view.getFloat64(0));
  if (received === 0) {
    firstAt = t;
    cpuAtFirst = cpuMs();
  }
  lastAt = t;
  received++;
}

async function ownNode(): Promise<Node> {
  const loop = new TestLoop().start();
  const bp = new RedisBackplane(loop, {
    message: (_t, payload) => onMessage(payload),
    gap: () => void gaps++,
  }, { url });
  while (!bp.stats.connected) await sleep(5);
  return {
    publish: (p) => bp.publish(TOPIC, p, true),
    backlog: () => bp.stats.buffered,
    subscribe: async () => {
      bp.subscribe(TOPIC);
      await sleep(200);
    },
    close: async () => {
      await bp.close();
      await loop.stop();
    },
  };
}

async function npmNode(): Promise<Node> {
  // The npm client is a measurement baseline only: it never enters the library.
  // deno-lint-ignore no-import-prefix
  const { Redis } = await import("npm:ioredis@5.4.2");
  const { Buffer } = await import("node:buffer");
  const pub = new Redis(url, { lazyConnect: false });
  const sub = new Redis(url, { lazyConnect: false });
  const node = newNodeId();
  const epoch = newEpoch();
  let seq = 0;
  const stamp = new Stamp();
  const tracker = new OriginTracker();
  const channel = Buffer.from(`fdws:${TOPIC}`);
  let inFlight = 0;
  sub.on("messageBuffer", (_ch: Uint8Array, message: Uint8Array) => {
    if (!readStamp(stamp, message, 0, message.length) || stamp.node === node) return;
    if (tracker.check(stamp.node, stamp.epoch, stamp.seq) === Verdict.GAP) gaps++;
    onMessage(message.subarray(STAMP_SIZE));
  });
  return {
    publish: (p) => {
      const buf = Buffer.allocUnsafe(STAMP_SIZE + p.length);
      writeStamp(buf, 0, node, epoch, ++seq, true);
      buf.set(p, STAMP_SIZE);
      inFlight++;
      pub.publish(channel, buf).then(() => inFlight--, () => inFlight--);
    },
    backlog: () => inFlight * (STAMP_SIZE + SIZE),
    subscribe: async () => {
      await sub.subscribe(`fdws:${TOPIC}`);
    },
    close: async () => {
      while (inFlight > 0) await sleep(5);
      pub.disconnect();
      sub.disconnect();
    },
  };
}

const n = client === "npm" ? await npmNode() : await ownNode();
if (role === "recv") {
  await n.subscribe();
  console.log("ready");
  const deadline = performance.now() + 20_000;
  while (received < COUNT && performance.now() < deadline) await sleep(20);
  const sorted = latencies.slice().sort((a, b) => a - b);
  const q = (p: number): number =>
    sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  const seconds = (lastAt - firstAt) / 1000;
  console.log(JSON.stringify({
    received,
    gaps,
    perSecond: Math.round((received - 1) / seconds),
    p50: q(0.5),
    p99: q(0.99),
    cpuMsPerKDeliveries: ((cpuMs() - cpuAtFirst) / received) * 1000,
    rssMiB: Deno.memoryUsage().rss / 2 ** 20,
  }));
} else {
  const payload = new Uint8Array(SIZE);
  const start = performance.now();
  const cpu0 = cpuMs();
  const step = RATE > 0 ? Math.max(1, Math.round(RATE / 1000)) : 256;
  for (let i = 0; i < COUNT; i += step) {
    for (let j = i; j < Math.min(COUNT, i + step); j++) {
      view.setFloat64(0, nowAbs());
      payload.set(viewBytes);
      n.publish(payload);
    }
    if (RATE > 0) await sleep(1);
    else {
      await sleep(0);
      while (n.backlog() > 4 * 1024 * 1024) await sleep(1);
    }
  }
  await n.close();
  const ms = performance.now() - start;
  console.log(JSON.stringify({
    sent: COUNT,
    perSecond: Math.round(COUNT / (ms / 1000)),
    cpuMsPerKMessages: ((cpuMs() - cpu0) / COUNT) * 1000,
    rssMiB: Deno.memoryUsage().rss / 2 ** 20,
  }));
  Deno.exit(0);
}
await n.close();
Deno.exit(0);

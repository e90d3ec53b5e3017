/**
 * Redis backplane benchmark: the own-socket client against a thin npm:ioredis variant,
 * two processes (publisher, receiver) through one local redis-server, pub/sub mode.
 *
 *   deno run -A --no-lock bench/redis/run.ts [--count 200000] [--size 64] [--rounds 3]
 *
 * Per client and round: a throughput run (COUNT messages as fast as the client takes
 * them: deliveries/s at the receiver, CPU per 1000 deliveries) and a latency run (5000
 * messages at 1000/s: publish -> receive p50/p99). RSS of both processes at the end.
 * Medians over rounds; clients take turns within a round.
 *
 * @module
 */

import { Child } from "../../tests/fixtures/harness.ts";
import { RedisServer } from "../../tests/fixtures/redis.ts";

const flag = (name: string, fallback: number): number => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
};
const COUNT = flag("count", 200_000);
const SIZE = flag("size", 64);
const ROUNDS = flag("rounds", 3);
const NODE = new URL("./node.ts", import.meta.url).pathname;

type Figures = Record<string, number>;

async function run(
  client: string,
  url: string,
  count: number,
  rate: number,
): Promise<[Figures, Figures]> {
  const args = (role: string): string[] => [
    "run",
    "-A",
    "--no-lock",
    NODE,
    client,
    role,
    url,
    String(count),
    String(rate),
    String(SIZE),
  ];
  const recv = new Child(Deno.execPath(), args("recv"), { stderr: "inherit" });
  let send: Child | null = null;
  try {
    await recv.waitFor((l) => l === "ready", 60_000, "receiver ready");
    send = new Child(Deno.execPath(), args("send"), { stderr: "inherit" });
    const s = JSON.parse(await send.waitFor((l) => l.startsWith("{"), 120_000, "sender done"));
    const r = JSON.parse(await recv.waitFor((l) => l.startsWith("{"), 60_000, "receiver done"));
    return [s, r];
  } finally {
    await recv.stop();
    await send?.stop();
  }
}

const median = (xs: number[]): number =>
  xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results: Record<string, Figures[]> = { own: [], npm: [] };
const redis = await RedisServer.start();
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const client of round % 2 === 0 ? ["own", "npm"] : ["npm", "own"]) {
      const [ts, tr] = await run(client, redis.url(), COUNT, 0);
      const [, lr] = await run(client, redis.url(), 5000, 1000);
      const row = {
        deliveriesPerSec: tr.perSecond,
        lost: COUNT - tr.received,
        recvCpuMsPerK: tr.cpuMsPerKDeliveries,
        sendCpuMsPerK: ts.cpuMsPerKMessages,
        p50: lr.p50,
        p99: lr.p99,
        recvRssMiB: tr.rssMiB,
        sendRssMiB: ts.rssMiB,
      };
      console.error(client, JSON.stringify(row));
      results[client].push(row);
    }
  }
} finally {
  await redis.stop();
}
console.log(`\n${COUNT} messages of ${SIZE} B, ${ROUNDS} rounds, medians:\n`);
console.log(
  "| client | deliveries/s | lost | recv CPU ms/1k | send CPU ms/1k | p50 ms | p99 ms | recv RSS MiB | send RSS MiB |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const [client, rows] of Object.entries(results)) {
  const m = (k: string): number => median(rows.map((r) => r[k]));
  console.log(
    `| ${client} | ${m("deliveriesPerSec")} | ${m("lost")} | ${m("recvCpuMsPerK").toFixed(1)} | ${
      m("sendCpuMsPerK").toFixed(1)
    } | ${m("p50").toFixed(3)} | ${m("p99").toFixed(3)} | ${m("recvRssMiB").toFixed(1)} | ${
      m("sendRssMiB").toFixed(1)
    } |`,
  );
}

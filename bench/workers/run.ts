/**
 * 1 worker vs 2 workers, side by side: deliveries/s and server CPU per delivery in the
 * broadcast scenario, through bench/server.ts (the benchmark contract) and bench/loadgen.c.
 *
 *   deno run -A bench/workers/run.ts [--rounds 3] [--duration 3] [--warmup 1]
 *                                    [--subscribers 1000,100] [--variants a,b,c,d]
 *
 * Variants (the server process is pinned to cpu0, all its threads; the loadgen to cpu1):
 *   single   one manager, no workers: the manager's broadcast (the baseline)
 *   w1       serve({ workers: 1 }): topic publish, nothing crosses workers
 *   w2-ring  serve({ workers: 2 }), shared-memory rings (the default transport)
 *   w2-msg   serve({ workers: 2 }), batches through postMessage (the other candidate)
 *   w2-redis serve({ workers: 2, backplane: redisBackplane() }): the ring plus Redis, as two
 *            hosts would run (a redis-server of its own is started; its CPU is not counted)
 *
 * One publisher keeps 32 messages of 64 B in flight; N subscribers; every message reaches
 * every connection (the publisher included), checked for loss and order by the loadgen.
 * "CPU/delivery" is the server's utime + stime over the measured window divided by the
 * deliveries in it: with 2 workers on one pinned core, deliveries/s cannot grow on this
 * 2-core machine; the CPU per delivery is what tells the cost of crossing workers.
 * A run is flagged DISTURBED when other processes used more than 10% of a pinned core.
 *
 * Results: a Markdown table on stdout, raw data in bench/workers/results/<timestamp>.json.
 *
 * @module
 */

import { parseFlags } from "../../examples/flags.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const LOADGEN = `${ROOT}bench/.build/loadgen`;
const RESULTS = `${ROOT}bench/workers/results`;

const flags = parseFlags(Deno.args, {
  rounds: "3",
  duration: "3",
  warmup: "1",
  subscribers: "1000,100",
  variants: "single,w1,w2-ring,w2-msg",
});

let redisUrl = "";

interface Variant {
  id: string;
  args: string[];
  redis?: boolean;
}

const VARIANTS: Variant[] = [
  { id: "single", args: [] },
  { id: "w1", args: ["--workers", "1"] },
  { id: "w2-ring", args: ["--workers", "2", "--worker-transport", "ring"] },
  { id: "w2-msg", args: ["--workers", "2", "--worker-transport", "messages"] },
  { id: "w2-redis", args: ["--workers", "2"], redis: true },
];

interface Run {
  variant: string;
  subscribers: number;
  round: number;
  ok: boolean;
  error?: string;
  deliveries_per_s?: number;
  cpu_ns_per_delivery?: number;
  server_cpu_frac?: number;
  lat_p50_us?: number;
  lat_p99_us?: number;
  losses?: number;
  other_load?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ensureLoadgen(): Promise<void> {
  try {
    Deno.statSync(LOADGEN);
  } catch {
    Deno.mkdirSync(`${ROOT}bench/.build`, { recursive: true });
    const out = await new Deno.Command("gcc", {
      args: ["-O2", "-Wall", "-Wextra", "-o", LOADGEN, `${ROOT}bench/loadgen.c`],
    }).output();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  }
}

function spawn(cpu: string, cmd: string[]): Deno.ChildProcess {
  const script =
    `ulimit -n 20000 2>/dev/null; exec setpriv --pdeathsig KILL taskset -c ${cpu} "$@"`;
  return new Deno.Command("bash", {
    args: ["-c", script, "bench", ...cmd],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function lines(stream: ReadableStream<Uint8Array>, out: string[]): Promise<void> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      out.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  if (buf) out.push(buf);
}

let nextPort = 24000 + (Deno.pid % 100) * 10;

async function runOne(v: Variant, subscribers: number, round: number): Promise<Run> {
  const port = nextPort++;
  const run: Run = { variant: v.id, subscribers, round, ok: false };
  const server = spawn("0", [
    Deno.execPath(),
    "run",
    "-A",
    "bench/server.ts",
    "--port",
    String(port),
    "--mode",
    "broadcast",
    ...v.args,
    ...(v.redis ? ["--redis", redisUrl] : []),
  ]);
  const out: string[] = [];
  const err: string[] = [];
  const pumps = [lines(server.stdout, out), lines(server.stderr, err)];
  let exited = false;
  server.status.then(() => (exited = true));
  try {
    const deadline = Date.now() + 30_000;
    while (!out.some((l) => l.includes("listening")) && !exited && Date.now() < deadline) {
      await sleep(20);
    }
    if (!out.some((l) => l.includes("listening"))) {
      throw new Error(`server did not listen: ${err.slice(-5).join(" | ")}`);
    }
    const lg = spawn("1", [
      LOADGEN,
      "--mode",
      "broadcast",
      "--port",
      String(port),
      "--conns",
      String(subscribers),
      "--size",
      "64",
      "--inflight",
      "32",
      "--warmup",
      flags.warmup,
      "--duration",
      flags.duration,
      "--pid",
      String(server.pid),
    ]);
    const lgOut: string[] = [];
    const lgErr: string[] = [];
    await Promise.all([lines(lg.stdout, lgOut), lines(lg.stderr, lgErr), lg.status]);
    const line = lgOut.filter((l) => l.startsWith("{")).pop();
    if (line === undefined) throw new Error(`no loadgen result: ${lgErr.slice(-3).join(" | ")}`);
    const r = JSON.parse(line);
    if (!r.ok) throw new Error(`loadgen: ${r.error}`);
    const serverFrac = r.server_window_cpu_s / r.window_s;
    const busy0 = r.window_core_busy[0] ?? NaN;
    const irq0 = r.window_core_irq[0] ?? 0;
    const busy1 = r.window_core_busy[1] ?? NaN;
    const irq1 = r.window_core_irq[1] ?? 0;
    Object.assign(run, {
      ok: r.losses + r.out_of_order === 0,
      deliveries_per_s: r.deliveries_per_s,
      cpu_ns_per_delivery: r.server_window_cpu_s / r.deliveries * 1e9,
      server_cpu_frac: serverFrac,
      lat_p50_us: r.lat_p50_us,
      lat_p99_us: r.lat_p99_us,
      losses: r.losses + r.out_of_order,
      other_load: Math.max(
        Math.max(0, busy0 - irq0 - serverFrac),
        Math.max(0, busy1 - irq1 - r.window_cpu_frac),
      ),
    });
    if (!run.ok) run.error = `${run.losses} lost or out of order`;
  } catch (e) {
    run.error = (e as Error).message;
  } finally {
    try {
      server.kill("SIGTERM");
    } catch { /* gone */ }
    const t = setTimeout(() => {
      try {
        server.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5_000);
    await server.status;
    clearTimeout(t);
    await Promise.all(pumps).catch(() => {});
  }
  return run;
}

function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

await ensureLoadgen();
const variants = VARIANTS.filter((v) => flags.variants.split(",").includes(v.id));
let redis: Deno.ChildProcess | null = null;
if (variants.some((v) => v.redis)) {
  const port = 26379 + (Deno.pid % 100);
  redis = spawn("1", [
    Deno.env.get("FDWS_REDIS_SERVER") ?? "redis-server",
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
  ]);
  redisUrl = `redis://127.0.0.1:${port}`;
  await sleep(500);
}
const subs = flags.subscribers.split(",").map(Number);
const rounds = Number(flags.rounds);
const runs: Run[] = [];
for (const n of subs) {
  for (let round = 0; round < rounds; round++) {
    // Rotate the order so that a disturbance does not always hit the same variant.
    const order = variants.map((_, i) => variants[(i + round) % variants.length]);
    for (const v of order) {
      const r = await runOne(v, n, round);
      runs.push(r);
      const flag = r.error ? ` ERROR ${r.error}` : (r.other_load ?? 0) > 0.1 ? " DISTURBED" : "";
      console.log(
        `${n} subs, ${v.id}, round ${round + 1}: ${
          (r.deliveries_per_s ?? 0).toFixed(0)
        } deliveries/s, ` +
          `${(r.cpu_ns_per_delivery ?? NaN).toFixed(1)} ns CPU/delivery, ` +
          `other load ${((r.other_load ?? 0) * 100).toFixed(0)}%${flag}`,
      );
    }
  }
}

console.log(
  "\n| subscribers | variant | deliveries/s | server CPU ns/delivery | vs single | p50 / p99 µs | runs (disturbed) |",
);
console.log("| ---: | --- | ---: | ---: | ---: | ---: | --- |");
for (const n of subs) {
  const base = median(
    runs.filter((r) => r.subscribers === n && r.variant === "single" && r.ok).map((r) =>
      r.cpu_ns_per_delivery!
    ),
  );
  for (const v of variants) {
    const mine = runs.filter((r) => r.subscribers === n && r.variant === v.id && r.ok);
    const clean = mine.filter((r) => (r.other_load ?? 0) <= 0.1);
    const use = clean.length > 0 ? clean : mine;
    const cpu = median(use.map((r) => r.cpu_ns_per_delivery!));
    console.log(
      `| ${n} | ${v.id} | ${median(use.map((r) => r.deliveries_per_s!)).toFixed(0)} | ` +
        `${cpu.toFixed(1)} | ${(cpu / base).toFixed(2)}x | ` +
        `${median(use.map((r) => r.lat_p50_us!)).toFixed(0)} / ${
          median(use.map((r) => r.lat_p99_us!)).toFixed(0)
        } | ${mine.length} (${mine.length - clean.length}) |`,
    );
  }
}

if (redis !== null) {
  redis.kill("SIGTERM");
  await redis.status;
}
Deno.mkdirSync(RESULTS, { recursive: true });
const file = `${RESULTS}/${new Date().toISOString().replaceAll(":", "-")}.json`;
Deno.writeTextFileSync(
  file,
  JSON.stringify({ flags, cpus: navigator.hardwareConcurrency, runs }, null, 2),
);
console.log(`\nraw data: ${file}`);

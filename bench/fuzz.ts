/**
 * The long fuzz run: every property of tests/fuzz/ with many cases (100,000 by default) from a
 * fresh seed, each bounded in time, reporting cases per second. Each property runs in its own
 * worker, watched from this thread: a case that stops making progress (a hang: the parsers
 * run synchronously, so nothing else could interrupt it) gets the worker terminated and the
 * case reported with the command that replays it.
 *
 *     deno task fuzz [--cases N] [--seed S] [--seconds T] [--only a,b] [--path P] [--stall T]
 *
 * --cases    cases per property (default 100000)
 * --seed     fast-check seed (default: random, printed)
 * --seconds  time limit per property; a property cut short is reported, not failed (default 300)
 * --only     comma-separated property names (default all)
 * --path     replay one failing case (with its --seed), as printed for a failure
 * --stall    seconds without a new case before a case counts as hung (default 30)
 *
 * Exits with 1 when a property fails or hangs.
 *
 * @module
 */

import { ALL_PROPERTIES } from "../tests/fuzz/properties.ts";
import { replayCommand, runProperty, type RunReport } from "../tests/fuzz/run.ts";

/** What the main thread asks a worker to run. */
interface Job {
  readonly name: string;
  readonly cases: number;
  readonly seed: number;
  readonly seconds: number;
  readonly path?: string;
  /** [cases started, slowest case in microseconds], shared with the watchdog. */
  readonly progress: SharedArrayBuffer;
}

/** A worker's answer. */
interface Done {
  readonly report: RunReport;
  readonly slowestMs: number;
}

const inWorker = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !==
  "undefined";

if (inWorker) {
  const scope = self as unknown as {
    onmessage: ((event: MessageEvent<Job>) => void) | null;
    postMessage(message: Done): void;
    close(): void;
  };
  scope.onmessage = (event) => {
    const job = event.data;
    const property = ALL_PROPERTIES.find((p) => p.name === job.name)!;
    const progress = new Int32Array(job.progress);
    let last = performance.now();
    let slowest = 0;
    const report = runProperty(property, {
      numRuns: job.cases,
      seed: job.seed,
      timeLimitMs: job.seconds * 1000,
      path: job.path,
      onCase: () => {
        // The time since the previous case started: that case's generation and check.
        const now = performance.now();
        if (now - last > slowest) {
          slowest = now - last;
          Atomics.store(progress, 1, Math.round(slowest * 1000));
        }
        last = now;
        Atomics.add(progress, 0, 1);
      },
    });
    scope.postMessage({ report, slowestMs: Math.max(slowest, performance.now() - last) });
    scope.close();
  };
} else if (import.meta.main) {
  await main();
}

interface Flags {
  cases: number;
  seed: number;
  seconds: number;
  only: string[] | null;
  path: string | undefined;
  stall: number;
}

function parseFlags(args: readonly string[]): Flags {
  const flags: Flags = {
    cases: 100_000,
    seed: crypto.getRandomValues(new Uint32Array(1))[0] | 0,
    seconds: 300,
    only: null,
    path: undefined,
    stall: 30,
  };
  for (let i = 0; i < args.length; i++) {
    const [key, inline] = args[i].split("=", 2);
    const value = inline ?? args[++i];
    if (value === undefined) throw new Error(`${key} needs a value`);
    const number = () => {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new Error(`${key} needs a number, got ${value}`);
      return n;
    };
    switch (key) {
      case "--cases":
        flags.cases = Math.max(1, Math.floor(number()));
        break;
      case "--seed":
        flags.seed = number() | 0;
        break;
      case "--seconds":
        flags.seconds = number();
        break;
      case "--only":
        flags.only = value.split(",").filter((s) => s !== "");
        break;
      case "--path":
        flags.path = value;
        break;
      case "--stall":
        flags.stall = number();
        break;
      default:
        throw new Error(`unknown flag ${key}`);
    }
  }
  return flags;
}

/** How one property's run ended, as the table shows it. */
interface Row {
  readonly name: string;
  readonly cases: number;
  readonly seconds: number;
  readonly slowestMs: number;
  readonly status: "ok" | "time limit" | "FAILED" | "HUNG";
  readonly detail: string | null;
}

function runInWorker(job: Omit<Job, "progress">, stall: number): Promise<Row> {
  const progress = new SharedArrayBuffer(8);
  const counters = new Int32Array(progress);
  const worker = new Worker(new URL(import.meta.url), { type: "module" });
  const started = performance.now();
  return new Promise((resolve) => {
    let seen = 0;
    let lastChange = performance.now();
    const watchdog = setInterval(() => {
      const now = performance.now();
      const cases = Atomics.load(counters, 0);
      if (cases !== seen) {
        seen = cases;
        lastChange = now;
        return;
      }
      if (now - lastChange < stall * 1000) return;
      clearInterval(watchdog);
      worker.terminate();
      // Before shrinking starts, case k (counted from 1) is fast-check's run k - 1.
      const path = job.path ?? String(Math.max(0, cases - 1));
      resolve({
        name: job.name,
        cases,
        seconds: (now - started) / 1000,
        slowestMs: now - lastChange,
        status: "HUNG",
        detail: `no progress for ${stall} s in case ${cases}\nreplay: deno task fuzz --only ` +
          `${job.name} --seed ${job.seed} --path ${path}`,
      });
    }, 250);
    worker.onmessage = (event: MessageEvent<Done>) => {
      clearInterval(watchdog);
      worker.terminate();
      const { report, slowestMs } = event.data;
      resolve({
        name: job.name,
        cases: report.cases,
        seconds: report.ms / 1000,
        slowestMs,
        status: report.failure !== null ? "FAILED" : report.interrupted ? "time limit" : "ok",
        detail: report.failure === null
          ? null
          : `${report.failure}\nreplay: ${replayCommand(report)}`,
      });
    };
    worker.onerror = (event) => {
      event.preventDefault();
      clearInterval(watchdog);
      worker.terminate();
      resolve({
        name: job.name,
        cases: Atomics.load(counters, 0),
        seconds: (performance.now() - started) / 1000,
        slowestMs: 0,
        status: "FAILED",
        detail: `worker error: ${event.message}`,
      });
    };
    worker.postMessage({ ...job, progress } satisfies Job);
  });
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args);
  const names = ALL_PROPERTIES.map((p) => p.name);
  const selected = flags.only ?? names;
  for (const name of selected) {
    if (!names.includes(name)) throw new Error(`no property ${name}; known: ${names.join(", ")}`);
  }
  const cases = flags.path === undefined ? flags.cases : 1;
  console.log(
    `fuzz: ${selected.length} properties, ${cases} cases each, seed ${flags.seed}, ` +
      `at most ${flags.seconds} s each` + (flags.path === undefined ? "" : `, path ${flags.path}`),
  );
  console.log(
    `${"property".padEnd(26)} ${"cases".padStart(8)} ${"s".padStart(7)} ` +
      `${"cases/s".padStart(8)} ${"slowest".padStart(9)}  result`,
  );
  const rows: Row[] = [];
  for (const name of selected) {
    const row = await runInWorker(
      { name, cases, seed: flags.seed, seconds: flags.seconds, path: flags.path },
      flags.stall,
    );
    rows.push(row);
    const rate = row.seconds > 0 ? Math.round(row.cases / row.seconds) : 0;
    console.log(
      `${name.padEnd(26)} ${String(row.cases).padStart(8)} ${row.seconds.toFixed(1).padStart(7)} ` +
        `${String(rate).padStart(8)} ${
          (row.slowestMs.toFixed(1) + " ms").padStart(9)
        }  ${row.status}`,
    );
    if (row.detail !== null) console.log(row.detail.replace(/^/gm, "    "));
  }
  const total = rows.reduce((n, r) => n + r.cases, 0);
  const seconds = rows.reduce((n, r) => n + r.seconds, 0);
  const bad = rows.filter((r) => r.status === "FAILED" || r.status === "HUNG");
  console.log(
    `total: ${total} cases in ${seconds.toFixed(1)} s (${Math.round(total / seconds)} cases/s), ` +
      `${bad.length} failed or hung, seed ${flags.seed}`,
  );
  if (bad.length > 0) Deno.exit(1);
}

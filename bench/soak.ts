/**
 * Soak: one fdws broadcast server (bench/server.ts, a child process pinned to cpu0) under a
 * bounded mix of traffic, sampled every few seconds; prints a verdict.
 *
 *   deno task soak --minutes N [--sample SEC] [--subscribers N] [--rate MSGS_PER_S]
 *                  [--seed N] [--out FILE_PREFIX] [--poller epoll|select]
 *   deno task soak --recheck RESULTS.json     (judge a finished run's samples again)
 *
 * The mix (all on loopback, every count and duration bounded; choices from a seeded PRNG):
 *   - subscribers (default 100) that read everything and send a ping every 5 s;
 *   - a publisher sending JSON-like 1 KiB messages at --rate (default 100/s) that the server
 *     broadcasts to every connection, and every 20 s a burst of 32 x 64 KiB;
 *   - churn: 5 connections a second that live 1-5 s, send a ping, then leave: half with a clean
 *     close handshake, half abruptly (socket closed without a close frame, unread data pending,
 *     so the kernel resets it);
 *   - 5 slow consumers reading 4 KiB every 100 ms (replaced when the server drops them);
 *   - a stalled consumer every 30 s that never reads (at most 2 at once), abandoned after 3
 *     minutes unless the server drops it first (backpressure limit).
 * Sampling every --sample seconds (default 5): the server's VmRSS (/proc/PID/status), its open
 * descriptors (/proc/PID/fd), and V8 heap from the `stats {json}` line bench/server.ts prints
 * with --stats-interval (Deno.memoryUsage()), plus the load side's counters and timer lag. The
 * server runs with --v8-flags=--expose-gc so that each stats line also carries the live heap
 * after a full collection (heapLive): heapUsed alone is a GC sawtooth (6 -> 16 MiB and back
 * every 2-3 minutes here) that a line fitted over a few minutes reads as a trend. The forced
 * collection every --sample seconds costs the server a few milliseconds each time.
 *
 * Verdict. The first half of the run is warm-up. The second half is split into its two
 * quarters, A then B, and for each series the lower and the upper envelope must not rise:
 * min(B) - min(A) and max(B) - max(A) must both stay within
 *   RSS       max(5% of its mean, 4 MiB)
 *   heapLive  max(10% of its mean, 2 MiB)  (heapUsed is recorded, not judged)
 *   fds       max(5% of its mean, 8)     (fds follow live connections, which churn)
 * A leak lifts both envelopes; the cycles this mix makes (a stalled consumer's backlog grows to
 * the 16 MiB limit and is dropped, about every 3 minutes, and the live heap follows it between
 * ~5 and ~13 MiB) leave them in place as long as each quarter holds a whole cycle: use 15
 * minutes or more. A least-squares drift over the second half is printed too, as information
 * (a line fitted to a few cycles reads them as a trend).
 * PASS when all three hold, the server ran to the end, and the load side kept up (timer lag
 * below 1 s: otherwise the run says LOAD-SIDE-LAGGING and the verdict is INCONCLUSIVE).
 * Results: <prefix>.json (options, samples, fits, verdict) and <prefix>.csv (samples), by
 * default bench/results/soak-<timestamp>.*; exit code 0 pass, 1 fail or inconclusive.
 *
 * Needs: deno, taskset; reads /proc (Linux).
 */

const BENCH = new URL(".", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;

interface SoakOptions {
  minutes: number;
  sample: number;
  subscribers: number;
  rate: number;
  seed: number;
  out: string;
  poller: string;
  recheck: string;
}

function usage(code: number): never {
  console.log(
    "usage: deno task soak --minutes N [--sample SEC] [--subscribers N] [--rate MSGS_PER_S]\n" +
      "                      [--seed N] [--out FILE_PREFIX] [--poller epoll|select]\n" +
      "       deno task soak --recheck RESULTS.json",
  );
  Deno.exit(code);
}

function parseOptions(args: string[]): SoakOptions {
  const o: SoakOptions = {
    minutes: NaN,
    sample: 5,
    subscribers: 100,
    rate: 100,
    seed: 1,
    out: "",
    poller: "epoll",
    recheck: "",
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2);
    const value = inline ?? args[++i];
    if (flag === "--help" || flag === "-h") usage(0);
    if (value === undefined) usage(2);
    const n = Number(value);
    switch (flag) {
      case "--minutes":
        o.minutes = n;
        break;
      case "--sample":
        o.sample = n;
        break;
      case "--subscribers":
        o.subscribers = Math.round(n);
        break;
      case "--rate":
        o.rate = n;
        break;
      case "--seed":
        o.seed = Math.round(n);
        break;
      case "--out":
        o.out = value;
        break;
      case "--poller":
        o.poller = value;
        break;
      case "--recheck":
        o.recheck = value;
        break;
      default:
        console.error(`unknown option ${flag}`);
        usage(2);
    }
  }
  if (o.recheck) return o;
  // bounded: at most 24 hours, at least 3 samples per half
  if (!(o.minutes > 0 && o.minutes <= 1440)) usage(2);
  if (!(o.sample >= 0.5 && o.sample * 6 <= o.minutes * 60)) {
    console.error("--sample must be >= 0.5 s and leave at least 6 samples in the run");
    usage(2);
  }
  if (!(o.subscribers >= 1 && o.subscribers <= 5000 && o.rate > 0 && o.rate <= 10000)) usage(2);
  return o;
}

// ------------------------------------------------------------------------ seeded randomness

let rngState = 1;
function rand(): number { // mulberry32: deterministic choices for a given --seed
  rngState = (rngState + 0x6D2B79F5) | 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

// --------------------------------------------------------------------- a minimal WS client

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const enc = new TextEncoder();

/** Client frame, masked (RFC 6455 5.3). */
function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const hl = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = new Uint8Array(hl + 4 + n);
  out[0] = 0x80 | opcode;
  if (n < 126) out[1] = 0x80 | n;
  else if (n < 65536) {
    out[1] = 0x80 | 126;
    out[2] = n >> 8;
    out[3] = n & 255;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(n));
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, hl);
  for (let i = 0; i < n; i++) out[hl + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

const counters = {
  opened: 0,
  connectFailures: 0,
  cleanCloses: 0,
  abruptCloses: 0,
  droppedByServer: 0,
  bytesIn: 0,
  messagesOut: 0,
  pingsOut: 0,
  errors: 0,
};
const live = new Set<Deno.Conn>();
let stopping = false;

/** Connects and upgrades; resolves to the connection (response head consumed) or null. */
async function open(port: number): Promise<Deno.Conn | null> {
  let conn: Deno.Conn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    live.add(conn);
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    await writeAll(
      conn,
      enc.encode(
        `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
    // read the head byte by byte-ish: the server sends nothing else until we are subscribed
    const buf = new Uint8Array(1024);
    let head = "";
    const deadline = Date.now() + 10_000;
    while (!head.includes("\r\n\r\n")) {
      if (Date.now() > deadline) throw new Error("handshake timeout");
      const n = await conn.read(buf);
      if (n === null) throw new Error("closed during handshake");
      head += new TextDecoder().decode(buf.subarray(0, n));
      counters.bytesIn += n;
    }
    if (!head.startsWith("HTTP/1.1 101")) throw new Error(head.split("\r\n")[0]);
    counters.opened++;
    return conn;
  } catch {
    counters.connectFailures++;
    if (conn) close(conn);
    return null;
  }
}

function close(conn: Deno.Conn): void {
  live.delete(conn);
  try {
    conn.close();
  } catch { /* already closed */ }
}

/** Reads and discards until EOF (server closed) or `until` says stop; returns true on EOF. */
async function drain(conn: Deno.Conn, chunk = 65536, delayMs = 0): Promise<boolean> {
  const buf = new Uint8Array(chunk);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return true;
      counters.bytesIn += n;
      if (delayMs) await sleep(delayMs);
      if (stopping) return false;
    }
  } catch {
    return !stopping && live.has(conn); // reset by the server (or closed by us)
  }
}

const PING = frame(0x9, enc.encode("soakping"));
const CLOSE_1000 = frame(0x8, new Uint8Array([0x03, 0xe8]));

function jsonMessage(seq: number, size: number): Uint8Array {
  const head = `{"type":"chat","room":"room-${seq % 16}","user":"user-${
    (seq * 7919) % 100000
  }","seq":${seq},"text":"`;
  const words = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do ";
  let s = head;
  while (s.length < size - 2) s += words;
  return enc.encode(s.slice(0, size - 2) + '"}');
}

// ---------------------------------------------------------------------------- the actors

async function subscriber(port: number): Promise<void> {
  while (!stopping) {
    const conn = await open(port);
    if (!conn) {
      await sleep(500);
      continue;
    }
    const pinger = setInterval(() => {
      counters.pingsOut++;
      writeAll(conn, PING).catch(() => {});
    }, 5000);
    const eof = await drain(conn);
    clearInterval(pinger);
    close(conn);
    if (stopping) return;
    if (eof) counters.droppedByServer++;
    await sleep(200);
  }
}

async function publisher(port: number, rate: number): Promise<void> {
  const conn = await open(port);
  if (!conn) throw new Error("publisher could not connect");
  drain(conn).catch(() => {});
  let seq = 0;
  const t0 = performance.now();
  let nextBurst = 20_000;
  while (!stopping) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    const parts: Uint8Array[] = [];
    while (seq < due) parts.push(frame(0x1, jsonMessage(seq++, 1024)));
    if (performance.now() - t0 >= nextBurst) {
      nextBurst += 20_000;
      const big = frame(0x2, new Uint8Array(65536).fill(0x61));
      for (let i = 0; i < 32; i++) parts.push(big);
    }
    counters.messagesOut += parts.length;
    for (const p of parts) await writeAll(conn, p);
    await sleep(10);
  }
  close(conn);
}

async function churner(port: number): Promise<void> {
  const conn = await open(port);
  if (!conn) return;
  const reading = drain(conn);
  await writeAll(conn, PING).catch(() => {});
  counters.pingsOut++;
  await sleep(1000 + rand() * 4000);
  if (stopping) return close(conn);
  if (rand() < 0.5) {
    await writeAll(conn, CLOSE_1000).catch(() => {});
    await Promise.race([reading, sleep(1000)]); // the server's close reply, then its FIN
    counters.cleanCloses++;
  } else {
    counters.abruptCloses++; // unread data + close(): the kernel sends a reset
  }
  close(conn);
}

async function churn(port: number): Promise<void> {
  while (!stopping) {
    churner(port).catch(() => counters.errors++);
    await sleep(200);
  }
}

async function slowConsumer(port: number): Promise<void> {
  while (!stopping) {
    const conn = await open(port);
    if (!conn) {
      await sleep(500);
      continue;
    }
    const eof = await drain(conn, 4096, 100);
    close(conn);
    if (eof && !stopping) counters.droppedByServer++;
  }
}

async function stalledConsumers(port: number): Promise<void> {
  let alive = 0;
  while (!stopping) {
    if (alive < 2) {
      alive++;
      (async () => {
        const conn = await open(port);
        if (conn) {
          // never reads; abandoned after 3 minutes (or at the end)
          const until = Date.now() + 180_000;
          while (!stopping && Date.now() < until) await sleep(500);
          close(conn);
        }
        alive--;
      })().catch(() => counters.errors++);
    }
    for (let i = 0; i < 60 && !stopping; i++) await sleep(500);
  }
}

// ------------------------------------------------------------------------------- sampling

/** One sample of the server and the load side. */
export interface Sample {
  t_s: number;
  rss_kb: number;
  heap_used: number;
  heap_live: number;
  heap_total: number;
  external: number;
  fds: number;
  server_conns: number;
  client_live: number;
  opened: number;
  dropped_by_server: number;
  bytes_in: number;
  timer_lag_ms: number;
}

function procRssKb(pid: number): number {
  const s = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(s.match(/VmRSS:\s+(\d+)/)?.[1] ?? NaN);
}

function procFds(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

/** How one series behaved after warm-up. */
export interface Judgement {
  mean: number;
  /** min(last quarter) - min(third quarter) */
  lowRise: number;
  /** max(last quarter) - max(third quarter) */
  highRise: number;
  /** least-squares slope x span over the second half (information only) */
  drift: number;
  bound: number;
  flat: boolean;
}

/**
 * Judges `y` (sampled at `t`, whole run) over its second half: flat when neither the lower nor
 * the upper envelope rises by more than `bound(mean)` from the third quarter to the fourth.
 */
export function judge(t: number[], y: number[], bound: (mean: number) => number): Judgement {
  const from = Math.floor(t.length / 2);
  const mid = from + Math.floor((t.length - from) / 2);
  const ht = t.slice(from), hy = y.slice(from);
  const a = y.slice(from, mid), b = y.slice(mid);
  const n = ht.length;
  const mt = ht.reduce((x, v) => x + v, 0) / n;
  const my = hy.reduce((x, v) => x + v, 0) / n;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (ht[i] - mt) * (hy[i] - my);
    sxx += (ht[i] - mt) ** 2;
  }
  const drift = sxx > 0 ? (sxy / sxx) * (ht[n - 1] - ht[0]) : 0;
  const lowRise = Math.min(...b) - Math.min(...a);
  const highRise = Math.max(...b) - Math.max(...a);
  const bd = bound(my);
  const flat = Number.isFinite(lowRise) && Number.isFinite(highRise) && lowRise <= bd &&
    highRise <= bd;
  return { mean: my, lowRise, highRise, drift, bound: bd, flat };
}

/** The three judged series of a run (null with fewer than 4 samples in the second half). */
export function judgeSamples(samples: Sample[]): Record<string, Judgement> | null {
  if (samples.length < 8) return null;
  const t = samples.map((s) => s.t_s);
  return {
    rss_kb: judge(t, samples.map((s) => s.rss_kb), (m) => Math.max(0.05 * m, 4096)),
    heap_live: judge(t, samples.map((s) => s.heap_live), (m) => Math.max(0.1 * m, 2 * 1048576)),
    fds: judge(t, samples.map((s) => s.fds), (m) => Math.max(0.05 * m, 8)),
  };
}

function printJudgements(j: Record<string, Judgement>): void {
  const show = (name: string, f: Judgement, unit: number, u: string) =>
    `  ${name.padEnd(9)} mean ${(f.mean / unit).toFixed(2)}${u}; 4th vs 3rd quarter: low ${
      (f.lowRise / unit).toFixed(2)
    }${u}, high ${(f.highRise / unit).toFixed(2)}${u} (bound ${(f.bound / unit).toFixed(2)}${u})` +
    `; fitted drift ${(f.drift / unit).toFixed(2)}${u}: ${f.flat ? "flat" : "NOT FLAT"}`;
  console.log("after warm-up (second half of the run):");
  console.log(show("RSS", j.rss_kb, 1024, " MiB"));
  console.log(show("heapLive", j.heap_live, 1048576, " MiB"));
  console.log(show("fds", j.fds, 1, ""));
}

// ----------------------------------------------------------------------------------- main

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function main(): Promise<number> {
  const o = parseOptions(Deno.args);
  if (o.recheck) {
    const doc = JSON.parse(await Deno.readTextFile(o.recheck)) as { samples: Sample[] };
    const j = judgeSamples(doc.samples);
    if (!j) throw new Error("too few samples");
    printJudgements(j);
    const flat = Object.values(j).every((x) => x.flat);
    console.log(`verdict on memory and descriptors: ${flat ? "flat" : "NOT FLAT"}`);
    return flat ? 0 : 1;
  }
  rngState = o.seed;
  const started = new Date();
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  const prefix = o.out || `${BENCH}results/soak-${stamp}`;
  const port = freePort();
  // setpriv --pdeathsig: the server is killed even if this process dies without cleanup
  const setpriv = await new Deno.Command("setpriv", { args: ["--help"], stdout: "piped" })
    .output().then((r) => new TextDecoder().decode(r.stdout).includes("--pdeathsig"))
    .catch(() => false);
  const server = new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n 20000 2>/dev/null; exec ${
        setpriv ? "setpriv --pdeathsig KILL " : ""
      }taskset -c 0 "$@"`,
      "soak",
      Deno.execPath(),
      "run",
      "--v8-flags=--expose-gc",
      "--allow-ffi",
      "--allow-read",
      "bench/server.ts",
      "--port",
      String(port),
      "--mode",
      "broadcast",
      "--poller",
      o.poller,
      "--stats-interval",
      String(Math.round(o.sample * 1000)),
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  server.status.then(() => exited = true);
  const stop = () => {
    stopping = true;
    for (const c of [...live]) close(c);
    if (!exited) {
      try {
        server.kill("SIGKILL");
      } catch { /* gone */ }
    }
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    Deno.addSignalListener(sig, () => {
      console.error(`\n${sig}: stopping the soak and its server`);
      stop();
      Deno.exit(130);
    });
  }

  let lastStats: Record<string, number> = {};
  let listening = false;
  const errTail: string[] = [];
  (async () => {
    let buf = "";
    for await (const chunk of server.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.includes("listening")) listening = true;
        if (line.startsWith("stats ")) lastStats = JSON.parse(line.slice(6));
      }
    }
  })().catch(() => {});
  (async () => {
    for await (const chunk of server.stderr.pipeThrough(new TextDecoderStream())) {
      errTail.push(...chunk.split("\n").filter(Boolean));
      errTail.splice(0, Math.max(0, errTail.length - 20));
    }
  })().catch(() => {});

  try {
    const deadline = Date.now() + 30_000;
    while (!listening && !exited && Date.now() < deadline) await sleep(50);
    if (!listening) throw new Error(`server did not start:\n${errTail.join("\n")}`);
    const pid = server.pid;
    console.log(
      `soak: ${o.minutes} min against bench/server.ts (pid ${pid}, port ${port}, ${o.poller}); ` +
        `${o.subscribers} subscribers, ${o.rate} msgs/s + bursts, churn 5/s, 5 slow, ` +
        `stalled every 30 s; sampling every ${o.sample} s`,
    );

    const actors: Promise<void>[] = [];
    for (let i = 0; i < o.subscribers; i++) actors.push(subscriber(port));
    await sleep(1000);
    actors.push(publisher(port, o.rate), churn(port), stalledConsumers(port));
    for (let i = 0; i < 5; i++) actors.push(slowConsumer(port));
    for (const a of actors) a.catch((e) => (counters.errors++, console.error(`actor: ${e}`)));

    const samples: Sample[] = [];
    const t0 = performance.now();
    const end = t0 + o.minutes * 60_000;
    let expected = t0;
    while (performance.now() < end && !exited) {
      expected += o.sample * 1000;
      await sleep(Math.max(0, expected - performance.now()));
      const lag = performance.now() - expected;
      if (exited) break;
      const s: Sample = {
        t_s: (performance.now() - t0) / 1000,
        rss_kb: procRssKb(pid),
        heap_used: lastStats.heapUsed ?? NaN,
        heap_live: lastStats.heapLive >= 0 ? lastStats.heapLive : NaN,
        heap_total: lastStats.heapTotal ?? NaN,
        external: lastStats.external ?? NaN,
        fds: procFds(pid),
        server_conns: lastStats.conns ?? NaN,
        client_live: live.size,
        opened: counters.opened,
        dropped_by_server: counters.droppedByServer,
        bytes_in: counters.bytesIn,
        timer_lag_ms: Math.round(lag),
      };
      samples.push(s);
      console.log(
        `  t=${s.t_s.toFixed(0).padStart(5)} s  rss ${(s.rss_kb / 1024).toFixed(1)} MiB  heap ${
          (s.heap_used / 1048576).toFixed(1)
        } MiB (live ${
          (s.heap_live / 1048576).toFixed(1)
        })  fds ${s.fds}  conns ${s.server_conns}  opened ${s.opened}  dropped ${s.dropped_by_server}  lag ${s.timer_lag_ms} ms`,
      );
    }
    const serverDied = exited;
    stop();
    await Promise.race([Promise.allSettled(actors), sleep(3000)]);

    const fits = judgeSamples(samples);
    const maxLag = Math.max(0, ...samples.map((s) => s.timer_lag_ms));
    const problems: string[] = [];
    if (serverDied) problems.push(`SERVER-EXITED: ${errTail.slice(-3).join(" | ")}`);
    if (!fits) problems.push("TOO-FEW-SAMPLES");
    if (fits) {
      for (const [k, f] of Object.entries(fits)) {
        if (!Number.isFinite(f.mean)) problems.push(`${k}: no data`);
        else if (!f.flat) problems.push(`${k} not flat`);
      }
    }
    if (o.minutes < 15) {
      console.log(
        "note: runs shorter than 15 minutes are smoke tests: each quarter must hold a whole " +
          "stalled-consumer cycle (about 3 minutes), else the verdict can be a false FAIL",
      );
    }
    const lagging = maxLag >= 1000;
    const verdict = problems.length ? "FAIL" : lagging ? "INCONCLUSIVE" : "PASS";
    if (lagging) problems.push(`LOAD-SIDE-LAGGING (timer lag up to ${maxLag} ms)`);

    const doc = {
      started: started.toISOString(),
      finished: new Date().toISOString(),
      options: o,
      commit: new TextDecoder().decode(
        (await new Deno.Command("git", { args: ["-C", ROOT, "rev-parse", "HEAD"] }).output())
          .stdout,
      ).trim(),
      counters,
      fits,
      verdict,
      problems,
      samples,
    };
    Deno.mkdirSync(prefix.slice(0, prefix.lastIndexOf("/") + 1) || ".", { recursive: true });
    await Deno.writeTextFile(`${prefix}.json`, JSON.stringify(doc, null, 2) + "\n");
    const cols = Object.keys(samples[0] ?? {}) as (keyof Sample)[];
    await Deno.writeTextFile(
      `${prefix}.csv`,
      [cols.join(","), ...samples.map((s) => cols.map((c) => s[c]).join(","))].join("\n") + "\n",
    );

    console.log(`\nload side: ${JSON.stringify(counters)}`);
    if (fits) printJudgements(fits);
    console.log(`verdict: ${verdict}${problems.length ? ` (${problems.join("; ")})` : ""}`);
    console.log(`results: ${prefix.replace(ROOT, "")}.json, .csv`);
    return verdict === "PASS" ? 0 : 1;
  } finally {
    stop();
    await server.status.catch(() => undefined);
  }
}

if (import.meta.main) {
  let code = 1;
  try {
    code = await main();
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
  }
  Deno.exit(code);
}

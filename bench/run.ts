/**
 * Benchmark runner: fdws (epoll + select pollers) against the physical limit (a minimal corked
 * C epoll server), Deno's built-in server, Node `ws` and Bun; optionally against an older fdws
 * checkout (`--baseline DIR`) in the same sitting.
 *
 *   deno task bench [--scenarios a,b,...] [--servers ours-epoll,c,bun,...] [--rounds 3]
 *                   [--duration 5] [--warmup 1] [--hold 3] [--quick] [--baseline DIR]
 *                   [--idle-conns 10000] [--max-conns 19900] [--quiet-wait 60] [--retries 2]
 *
 * Servers: ours-epoll, ours-select (bench/server.ts), c (bench/servers/c_epoll.c), deno
 * (Deno.serve), node (ws), bun (Bun.serve); base-epoll with --baseline DIR: DIR's
 * bench/server.ts (DIR is another checkout of fdws, e.g. `git worktree add /tmp/base <commit>`),
 * run with DIR as working directory, so it measures DIR's library.
 *
 * Scenarios (each table reports the headline figure as a ratio to c and to bun):
 *   a  echo, 1 message in flight per connection: 100 conns x 32 B, 100 x 1 KiB, 1 x 32 B
 *      (msgs/s, server CPU per message, p50/p99)
 *   b  broadcast, 1 publisher (32 in flight) -> 1,000 subscribers, 64 B (deliveries/s = copies
 *      received by all connections incl. the publisher; server CPU per delivery; RSS growth per
 *      connection)
 *   c  10,000 idle connections: server RSS growth per connection, time to connect all
 *   d  ours and c: as many idle connections as the fd limit allows (--max-conns), per-connection
 *      memory model (user = RSS growth / N; kernel = (/proc/meminfo Slab + sockstat TCP mem
 *      pages) delta / N, halved because both ends of a loopback connection live in this
 *      kernel), projected to 100k and 1M connections
 *   e  broadcast to --max-conns connections (1 publisher + the rest subscribers), 64 B:
 *      deliveries/s and RSS growth per connection
 *   f  TLS: echo 100 x 32 B and broadcast 1 -> 1,000 x 64 B over TLS (loadgen --tls, verifying
 *      the test certificate). fdws needs `bench/server.ts --cert F --key F`; deno and bun run
 *      with TLS; c runs plain TCP (row "c (plain)": the physical limit without TLS)
 *   g  permessage-deflate, JSON-like compressible payloads: echo 100 x 1 KiB, broadcast
 *      1 -> 200 x 512 B, 10,000 idle connections with deflate negotiated (RSS per connection).
 *      fdws needs `bench/server.ts --deflate`; bun and node ws with compression on; c plain
 *   h  memory under load: one 16 MiB message echoed 4 times (peak RSS growth, also as a
 *      multiple of the message); a stalled subscriber (never reads) while 512 MiB is broadcast
 *      (64 KiB x 8,192) to 2 reading subscribers and the publisher (peak RSS growth; whether the
 *      server dropped the stalled one). Peak = VmHWM after a clear_refs reset, or 10 ms sampling
 *   i  scale-out, broadcast 1 -> 1,000 x 64 B: ours 1 worker, ours 2 workers (`--workers 2`),
 *      and 2 processes over one redis-server (`--redis redis://127.0.0.1:PORT`, the runner starts
 *      redis-server on a free port; connections alternate between the two processes' ports):
 *      deliveries/s, fdws CPU per delivery (all server processes summed; workers are threads of
 *      one process), redis CPU per delivery, and the total as a multiple of 1 worker's
 *
 * Method: every measurement starts fresh server processes (pinned to cpu0 with taskset,
 * open-files limit raised, `exec` so that the PID is the real deno/node/bun/c process) and runs
 * bench/loadgen.c (pinned to cpu1). In scenario i every server process and redis-server share
 * cpu0: with 2 cores and the load generator on the other, more server cores are not to be had,
 * so i compares CPU per delivery (the cost of the cross-worker and Redis paths), not scaling.
 * Launches take turns within each round; the first rotates per round. The loadgen samples the
 * servers' /proc/<pid>/stat (utime+stime) and VmRSS exactly at the window boundaries, and
 * /proc/stat per-core busy time: "server core busy" includes softirq time (loopback TCP
 * processing), which no process's CPU time contains. Medians are over valid runs (all runs if
 * none is valid: the row is then marked INVALID).
 *
 * A run is invalid when the loadgen used >= 90% of a CPU in the window (LOADGEN-SATURATED: the
 * number is a lower bound for the server; each such round is listed in a footnote under its
 * table), a connection failed, a message was lost / out of order / corrupted, the server closed
 * connections or crashed, TLS or deflate was asked for and not negotiated, or other processes
 * used more than 10% of either pinned core during the window (OTHER-LOAD-ON-CPUS; such runs are
 * re-run up to --retries times). A server that exits 2 with "not supported by this build" (our
 * bench/server.ts for a capability the library does not have yet) is reported as such and not
 * retried. Known limit of a 2-core box: the loadgen's cost per message is mostly kernel TCP work
 * (plus TLS or zlib work in f and g), about the same as the server's, so an efficient server
 * can saturate the loadgen; server CPU per message is then the figure to compare.
 *
 * Every table names the commit measured: `git rev-parse` of the checkout whose server ran
 * (the runner's own checkout for ours-*, c and the competitors; DIR for base-epoll), with
 * "+dirty" when it had uncommitted changes.
 *
 * Output: progress and Markdown tables on stdout, raw data (machine info, options, commits, every
 * run with the loadgen's full JSON, summaries) in bench/results/<timestamp>.json.
 * Dependencies: gcc, taskset (util-linux), node, npm (ws and Bun are installed on demand into
 * bench/.deps, versions pinned in NPM_DEPS); openssl (CLI, for f's test certificate) and the
 * runtime libraries libssl.so.3/libcrypto.so.3 (f) and libz.so.1 (g), which the loadgen opens
 * at run time (no -dev packages needed); redis-server (i).
 */

const BENCH = new URL(".", import.meta.url).pathname; // ends with "/"
const ROOT = new URL("..", import.meta.url).pathname;
const DEPS = `${BENCH}.deps`;
const BUILD = `${BENCH}.build`;
const LOADGEN_SRC = `${BENCH}loadgen.c`;
const LOADGEN = `${BUILD}/loadgen`;
const C_SERVER_SRC = `${BENCH}servers/c_epoll.c`;
const C_SERVER = `${BUILD}/c_epoll`;
const CERT = `${BUILD}/cert.pem`;
const KEY = `${BUILD}/key.pem`;
const BUN = `${DEPS}/node_modules/@oven/bun-linux-x64/bin/bun`;
const WS_PKG = `${DEPS}/node_modules/ws/package.json`;
// Pinned so that results are comparable across runs; bump deliberately.
const NPM_DEPS = ["ws@8.23.0", "@oven/bun-linux-x64@1.4.5"];
const SERVER_CPU = "0";
const LOADGEN_CPU = "1";
const FD_LIMIT = 20000;
const LOADGEN_SATURATED = 0.9; // loadgen CPU / wall in the window at or above this: INVALID
const OTHER_LOAD_MAX = 0.1; // other processes using > 10% of a pinned core in the window: INVALID
const UNSUPPORTED_TEXT = "not supported by this build";

type Mode = "echo" | "broadcast";
type ScenarioId = "a" | "b" | "c" | "d" | "e" | "f" | "g" | "h" | "i";
const ALL_SCENARIOS: ScenarioId[] = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
const BASE_SERVERS = ["ours-epoll", "ours-select", "c", "deno", "node", "bun"];
/**
 * Run only when named, ours-epoll with the V8 settings README "Troubleshooting" suggests for
 * memory: ours-epoll-young1 holds the young generation at its 1 MiB minimum
 * (`--v8-flags=--max-semi-space-size=1`); ours-epoll-lean also leaves out the mid-tier
 * optimizing compiler (`--no-maglev`), whose code pages are most of a broadcast's growth.
 */
const EXTRA_SERVERS = ["ours-epoll-young1", "ours-epoll-lean"];

// ------------------------------------------------------------------------------------ options

interface Options {
  scenarios: ScenarioId[];
  servers: string[];
  rounds: number;
  duration: number;
  warmup: number;
  hold: number;
  quick: boolean;
  maxConns: number;
  idleConns: number;
  quietWait: number;
  retries: number;
  baseline: string;
}

function usage(code: number): never {
  console.log(`usage: deno task bench [options]
  --scenarios a,b,...      scenarios to run, a-i (default: all; see the header of bench/run.ts)
  --servers LIST           ${BASE_SERVERS.join(",")},base-epoll (default: all available),
                           ${EXTRA_SERVERS.join(",")} (only when named)
  --baseline DIR           also run DIR/bench/server.ts (another fdws checkout) as base-epoll
  --rounds N               rounds per scenario (default 3; --quick: 1)
  --duration SEC           measured window (default 5; --quick: 2)
  --warmup SEC             warmup before the window (default 1; --quick: 0.5)
  --hold SEC               idle scenarios: hold time with all connections open (default 3)
  --idle-conns N           scenarios c, g-idle connections (default 10000)
  --max-conns N            scenarios d and e connections (default: fd limit - 100, i.e. 19900)
  --quiet-wait SEC         before each run wait up to SEC for the machine to be idle (default 60)
  --retries N              re-run a measurement disturbed by other processes up to N times (2)
  --quick                  smoke run: 1 round, short windows`);
  Deno.exit(code);
}

function parseOptions(args: string[]): Options {
  const o: Options = {
    scenarios: [...ALL_SCENARIOS],
    servers: [],
    rounds: 3,
    duration: 5,
    warmup: 1,
    hold: 3,
    quick: false,
    maxConns: FD_LIMIT - 100,
    idleConns: 10000,
    quietWait: 60,
    retries: 2,
    baseline: "",
  };
  const given = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    let [flag, value] = args[i].split("=", 2) as [string, string | undefined];
    const next = (): string => {
      if (value === undefined) value = args[++i];
      if (value === undefined) usage(2);
      return value;
    };
    const num = (): number => {
      const n = Number(next());
      if (!Number.isFinite(n) || n <= 0) usage(2);
      return n;
    };
    given.add(flag);
    switch (flag) {
      case "--scenarios": {
        const list = next().split(",").map((s) => s.trim()).filter(Boolean);
        for (const s of list) if (!ALL_SCENARIOS.includes(s as ScenarioId)) usage(2);
        o.scenarios = list as ScenarioId[];
        break;
      }
      case "--servers":
        o.servers = next().split(",").map((s) => s.trim()).filter(Boolean);
        break;
      case "--baseline":
        o.baseline = next().replace(/\/+$/, "");
        break;
      case "--rounds":
        o.rounds = Math.round(num());
        break;
      case "--duration":
        o.duration = num();
        break;
      case "--warmup":
        o.warmup = num();
        break;
      case "--hold":
        o.hold = num();
        break;
      case "--idle-conns":
        o.idleConns = Math.round(num());
        break;
      case "--max-conns":
        o.maxConns = Math.round(num());
        break;
      case "--quiet-wait":
        o.quietWait = Number(next());
        if (!(o.quietWait >= 0)) usage(2);
        break;
      case "--retries":
        o.retries = Math.round(Number(next()));
        if (!(o.retries >= 0)) usage(2);
        break;
      case "--quick":
        o.quick = true;
        break;
      case "--help":
      case "-h":
        usage(0);
        break;
      default:
        console.error(`unknown option ${flag}`);
        usage(2);
    }
  }
  const known = [...BASE_SERVERS, ...EXTRA_SERVERS, "base-epoll"];
  for (const s of o.servers) if (!known.includes(s)) usage(2);
  if (o.servers.includes("base-epoll") && !o.baseline) {
    console.error("base-epoll needs --baseline DIR");
    usage(2);
  }
  if (!o.servers.length) o.servers = [...BASE_SERVERS, ...(o.baseline ? ["base-epoll"] : [])];
  if (o.quick) {
    if (!given.has("--rounds")) o.rounds = 1;
    if (!given.has("--duration")) o.duration = 2;
    if (!given.has("--warmup")) o.warmup = 0.5;
    if (!given.has("--hold")) o.hold = 1;
  }
  return o;
}

// ------------------------------------------------------------------------------- processes

const children = new Set<Deno.ChildProcess>();

function killAll(): void {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch { /* already gone */ }
  }
  children.clear();
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs a short helper command; returns trimmed stdout or "" when it is unavailable/fails. */
async function capture(cmd: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : "";
  } catch {
    return "";
  }
}

/** Reads a stream line by line, keeping the last `keep` lines. */
class LineTail {
  lines: string[] = [];
  done: Promise<void>;
  constructor(stream: ReadableStream<Uint8Array>, onLine: (l: string) => void, keep = 40) {
    this.done = (async () => {
      let buf = "";
      try {
        for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
          buf += chunk;
          let nl;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            this.lines.push(line);
            if (this.lines.length > keep) this.lines.shift();
            onLine(line);
          }
        }
      } catch { /* stream closed */ }
      if (buf) {
        this.lines.push(buf);
        onLine(buf);
      }
    })();
  }
  tail(n = 8): string {
    return this.lines.slice(-n).join("\n");
  }
}

let hasSetpriv = false;

/**
 * Spawns `cmd` pinned to `cpu` with the open-files soft limit raised. `exec` keeps the PID of
 * the real process (deno/node/bun/loadgen), so /proc/<pid> describes it and not a shell.
 */
function spawnPinned(cpu: string, cmd: string[], cwd = ROOT): Deno.ChildProcess {
  // setpriv --pdeathsig: the child is SIGKILLed even if this runner dies without cleanup
  const script = `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ` +
    `exec ${hasSetpriv ? "setpriv --pdeathsig KILL " : ""}taskset -c ${cpu} "$@"`;
  const child = new Deno.Command("bash", {
    args: ["-c", script, "bench", ...cmd],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  children.add(child);
  return child;
}

async function stopProcess(child: Deno.ChildProcess, exited: () => boolean): Promise<void> {
  if (!exited()) {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    const deadline = Date.now() + 3000;
    while (!exited() && Date.now() < deadline) await sleep(50);
    if (!exited()) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }
  }
  await child.status.catch(() => undefined);
  children.delete(child);
}

// ---------------------------------------------------------------------------------- servers

/** What a launch asks of a server beyond the plain contract. */
interface Features {
  tls?: boolean;
  deflate?: boolean;
  workers?: number;
  /** redis://HOST:PORT, filled in by the runner once redis-server runs. */
  redis?: string;
}

type Capability = "tls" | "deflate" | "workers" | "redis";

interface ServerDef {
  name: string;
  ours: boolean;
  /** Most connections the server can hold (select: below FD_SETSIZE), if limited. */
  maxConns?: number;
  /** What it can be asked for (ours: what bench/server.ts passes on; the build may refuse). */
  capabilities: Capability[];
  /** Checkout whose code this server runs (its commit is reported). */
  checkout: string;
  /** Reason why the server cannot run, or null. */
  unavailable(): string | null;
  command(port: number, mode: Mode, f: Features): string[];
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const tlsArgs = (f: Features) => f.tls ? ["--cert", CERT, "--key", KEY] : [];
const deno = Deno.execPath();
const SERVERS: Record<string, ServerDef> = {
  "ours-epoll": oursDef("ours-epoll", "epoll", ROOT),
  "ours-select": oursDef("ours-select", "select", ROOT),
  "ours-epoll-young1": oursDef("ours-epoll-young1", "epoll", ROOT, undefined, [
    "--v8-flags=--max-semi-space-size=1",
  ]),
  "ours-epoll-lean": oursDef("ours-epoll-lean", "epoll", ROOT, undefined, [
    "--v8-flags=--max-semi-space-size=1,--no-maglev",
  ]),
  c: {
    name: "c",
    ours: false,
    capabilities: [],
    checkout: ROOT,
    unavailable: () => exists(C_SERVER) ? null : "bench/.build/c_epoll was not built",
    command: (port, mode) => [C_SERVER, "--port", String(port), "--mode", mode],
  },
  deno: {
    name: "deno",
    ours: false,
    capabilities: ["tls"],
    checkout: ROOT,
    unavailable: () => null,
    command: (port, mode, f) => [
      deno,
      "run",
      "--allow-net",
      "--allow-read",
      "bench/servers/deno_builtin.ts",
      "--port",
      String(port),
      "--mode",
      mode,
      ...tlsArgs(f),
    ],
  },
  node: {
    name: "node",
    ours: false,
    capabilities: ["deflate"],
    checkout: ROOT,
    unavailable: () => exists(WS_PKG) ? null : "ws not installed in bench/.deps",
    command: (port, mode, f) => [
      "node",
      "bench/servers/node_ws.mjs",
      "--port",
      String(port),
      "--mode",
      mode,
      ...(f.deflate ? ["--deflate"] : []),
    ],
  },
  bun: {
    name: "bun",
    ours: false,
    capabilities: ["tls", "deflate"],
    checkout: ROOT,
    unavailable: () => exists(BUN) ? null : "bun not installed in bench/.deps",
    command: (port, mode, f) => [
      BUN,
      "bench/servers/bun_server.ts",
      "--port",
      String(port),
      "--mode",
      mode,
      ...tlsArgs(f),
      ...(f.deflate ? ["--deflate"] : []),
    ],
  },
};

/**
 * Our bench/server.ts in `checkout`. The baseline (another checkout, usually older) is asked
 * for the plain contract only: its bench/server.ts may not know the capability flags.
 */
function oursDef(
  name: string,
  poller: "epoll" | "select",
  checkout: string,
  capabilities: Capability[] = ["tls", "deflate", "workers", "redis"],
  denoFlags: string[] = [],
): ServerDef {
  return {
    name,
    ours: true,
    // select(2) cannot watch descriptors >= FD_SETSIZE (1024); Deno itself holds ~20.
    maxConns: poller === "select" ? 1000 : undefined,
    capabilities,
    checkout,
    unavailable: () =>
      exists(`${checkout}/bench/server.ts`) ? null : `${checkout}/bench/server.ts does not exist`,
    command: (port, mode, f) => [
      deno,
      "run",
      ...denoFlags,
      "--allow-ffi",
      "--allow-read",
      "bench/server.ts",
      "--port",
      String(port),
      "--mode",
      mode,
      "--poller",
      poller,
      ...tlsArgs(f),
      ...(f.deflate ? ["--deflate"] : []),
      ...(f.workers ? ["--workers", String(f.workers)] : []),
      ...(f.redis ? ["--redis", f.redis] : []),
    ],
  };
}

let nextPort = 23000 + (Deno.pid % 200) * 20; // below the ephemeral range (32768+)

function freePort(): number {
  for (let i = 0; i < 500; i++) {
    const port = nextPort++;
    if (nextPort > 32000) nextPort = 23000;
    try {
      const l = Deno.listen({ hostname: "127.0.0.1", port });
      l.close();
      return port;
    } catch { /* in use */ }
  }
  throw new Error("no free port in 23000-32000");
}

interface RunningServer {
  name: string;
  child: Deno.ChildProcess;
  pid: number;
  port: number;
  comm: string;
  exited: () => boolean;
  exitCode: () => number | null;
  out: LineTail;
  err: LineTail;
}

/** Thrown when our bench/server.ts refuses a capability this build lacks. */
class UnsupportedError extends Error {}

/** Starts `cmd` pinned to the server CPU and waits until it prints `ready`. */
async function startProcess(
  name: string,
  cmd: string[],
  port: number,
  ready: string,
  cwd = ROOT,
): Promise<RunningServer> {
  const child = spawnPinned(SERVER_CPU, cmd, cwd);
  let isExited = false;
  let code: number | null = null;
  child.status.then((s) => {
    isExited = true;
    code = s.code;
  }).catch(() => {
    isExited = true;
  });
  let listening = false;
  const out = new LineTail(child.stdout, (l) => {
    if (l.includes(ready)) listening = true;
  });
  const err = new LineTail(child.stderr, (l) => {
    if (l.includes(ready)) listening = true;
  });
  const server: RunningServer = {
    name,
    child,
    pid: child.pid,
    port,
    comm: "",
    exited: () => isExited,
    exitCode: () => code,
    out,
    err,
  };
  const deadline = Date.now() + 30_000;
  while (!listening && !isExited && Date.now() < deadline) await sleep(20);
  if (!listening) {
    await stopProcess(child, () => isExited);
    await Promise.race([Promise.all([out.done, err.done]), sleep(500)]);
    const text = `${err.tail()}\n${out.tail()}`.trim();
    if (isExited && code === 2 && text.includes(UNSUPPORTED_TEXT)) {
      throw new UnsupportedError(text.split("\n").find((l) => l.includes(UNSUPPORTED_TEXT)));
    }
    const why = isExited ? `exited with code ${code}` : `did not print '${ready}' within 30 s`;
    throw new Error(`${name} ${why}\n${text}`.trim());
  }
  server.comm = (await Deno.readTextFile(`/proc/${child.pid}/comm`).catch(() => "?")).trim();
  return server;
}

function startServer(def: ServerDef, mode: Mode, f: Features): Promise<RunningServer> {
  const port = freePort();
  return startProcess(def.name, def.command(port, mode, f), port, "listening", def.checkout);
}

/** redis-server on a free port, no persistence, pinned with the servers (scenario i). */
function startRedis(): Promise<RunningServer> {
  const port = freePort();
  return startProcess(
    "redis-server",
    [
      "redis-server",
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--protected-mode",
      "no",
    ],
    port,
    "Ready to accept connections",
  );
}

// ---------------------------------------------------------------------------------- launches

/** One row of a table: a server asked for some features, in one or more processes. */
interface Launch {
  label: string;
  def: ServerDef;
  features: Features;
  /** Server processes (scenario i: 2 processes over Redis). */
  processes: number;
  /** Start a redis-server and pass its URL as features.redis. */
  redis: boolean;
  /** Runs without the variant's features (c in the TLS and deflate scenarios). */
  plain: boolean;
}

/** The usual launches of a variant: each server with the features, c plain when it lacks them. */
function standardLaunches(servers: ServerDef[], f: Features): Launch[] {
  const wanted = (Object.keys(f) as Capability[]).filter((k) => f[k]);
  const out: Launch[] = [];
  for (const def of servers) {
    const missing = wanted.filter((k) => !def.capabilities.includes(k));
    if (!missing.length) {
      out.push({ label: def.name, def, features: f, processes: 1, redis: false, plain: false });
    } else if (def.name === "c") {
      out.push({ label: "c (plain)", def, features: {}, processes: 1, redis: false, plain: true });
    }
  }
  return out;
}

/** Commit of a checkout, "+dirty" when it has uncommitted changes. */
async function commitOf(dir: string): Promise<string> {
  const head = await capture("git", ["-C", dir, "rev-parse", "--short=10", "HEAD"]);
  if (!head) return "unknown";
  const dirty = await capture("git", ["-C", dir, "status", "--porcelain", "--untracked-files=no"]);
  return dirty ? `${head}+dirty` : head;
}

// ---------------------------------------------------------------------------------- loadgen

interface ProcSample {
  server_cpu_s: number;
  aux_cpu_s: number;
  server_rss_kb: number;
  slab_kb: number;
  sunreclaim_kb: number;
  tcp_mem_pages: number;
  sockets_used: number;
}

interface LoadgenResult {
  ok: boolean;
  error: string;
  mode?: string;
  conns: number;
  connected: number;
  failed_conns: number;
  connect_retries: number;
  last_errno: number;
  connect_time_s: number;
  size: number;
  inflight: number;
  window_s: number;
  msgs: number;
  msgs_per_s: number;
  deliveries: number;
  deliveries_per_s: number;
  sent: number;
  losses: number;
  out_of_order: number;
  bad_payload: number;
  late_start: number;
  never_received: number;
  protocol_errors: number;
  unexpected_closes: number;
  clean_closes: number;
  pings: number;
  lat_samples: number;
  lat_p50_us: number;
  lat_p90_us: number;
  lat_p99_us: number;
  lat_max_us: number;
  cpu_s: number;
  wall_s: number;
  window_cpu_s: number;
  window_cpu_frac: number;
  server_window_cpu_s: number;
  tls: number;
  deflate: number;
  deflate_accepted: number;
  deflate_declined: number;
  tls_failures: number;
  payload: string;
  messages_per_sender: number;
  stalled: number;
  stalled_closed: number;
  stalled_backlog: number;
  npids: number;
  hwm_reset_ok: number;
  server_hwm_kb: number;
  peak_rss_sampled_kb: number;
  aux_window_cpu_s: number;
  window_core_busy: number[];
  window_core_irq: number[];
  before: ProcSample;
  after_connect: ProcSample;
  window_start: ProcSample;
  window_end: ProcSample;
  end: ProcSample;
}

async function runLoadgen(
  args: string[],
  timeoutS: number,
  stderrTail: string[],
): Promise<LoadgenResult> {
  const child = spawnPinned(LOADGEN_CPU, [LOADGEN, ...args]);
  let isExited = false;
  child.status.finally(() => {
    isExited = true;
  }).catch(() => undefined);
  const out = new LineTail(child.stdout, () => {}, 5);
  const err = new LineTail(child.stderr, () => {}, 20);
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, timeoutS * 1000);
  try {
    await Promise.all([child.status, out.done, err.done]);
  } finally {
    clearTimeout(timer);
    await stopProcess(child, () => isExited);
  }
  stderrTail.push(...err.lines);
  const line = out.lines.filter((l) => l.startsWith("{")).pop();
  if (!line) throw new Error(`loadgen produced no result (timeout ${timeoutS} s?)\n${err.tail()}`);
  const r = JSON.parse(line) as LoadgenResult;
  if (r.mode === undefined) throw new Error(`loadgen: ${r.error}\n${err.tail()}`);
  return r;
}

async function gcc(src: string, bin: string, extra: string[]): Promise<void> {
  const s = Deno.statSync(src).mtime?.getTime() ?? 0;
  const b = exists(bin) ? Deno.statSync(bin).mtime?.getTime() ?? 0 : -1;
  if (b >= s) return;
  console.log(`building ${bin.slice(ROOT.length)} (gcc -O2)`);
  Deno.mkdirSync(BUILD, { recursive: true });
  const out = await new Deno.Command("gcc", {
    args: ["-O2", "-Wall", "-Wextra", "-o", bin, src, ...extra],
  }).output();
  if (!out.success) throw new Error(`gcc failed:\n${new TextDecoder().decode(out.stderr)}`);
}

/** The loadgen (dlopen for libssl/libz: no -dev headers needed) and the C reference server. */
async function ensureBuilds(): Promise<void> {
  await gcc(LOADGEN_SRC, LOADGEN, ["-ldl"]);
  const self = await capture(LOADGEN, ["--selftest"]);
  if (!self.includes('"ok":true')) throw new Error(`loadgen self-test failed: ${self}`);
  await gcc(C_SERVER_SRC, C_SERVER, []);
}

/** A self-signed test certificate for 127.0.0.1/localhost (scenario f), made once. */
async function ensureCert(): Promise<string | null> {
  if (exists(CERT) && exists(KEY)) return null;
  Deno.mkdirSync(BUILD, { recursive: true });
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      KEY,
      "-out",
      CERT,
      "-days",
      "3650",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ],
    stdout: "null",
    stderr: "piped",
  }).output().catch((e) => ({ success: false, stderr: new TextEncoder().encode(String(e)) }));
  return out.success
    ? null
    : `openssl could not make a test certificate: ${
      new TextDecoder().decode(out.stderr).trim().split("\n").pop()
    }`;
}

async function ensureDeps(servers: string[]): Promise<void> {
  const need = servers.some((s) => s === "node" || s === "bun");
  if (!need || (exists(WS_PKG) && exists(BUN))) return;
  console.log(`installing ${NPM_DEPS.join(" ")} into bench/.deps (npm)`);
  Deno.mkdirSync(DEPS, { recursive: true });
  const out = await new Deno.Command("npm", {
    args: ["install", "--prefix", DEPS, "--no-audit", "--no-fund", ...NPM_DEPS],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) {
    console.error("npm install failed: node/bun servers will be reported as unavailable");
  }
}

// -------------------------------------------------------------------------------- scenarios

type Kind = "echo" | "broadcast" | "idle" | "maxconn" | "peak" | "scale";

interface Variant {
  id: string;
  scenario: ScenarioId;
  title: string;
  kind: Kind;
  serverMode: Mode;
  /** Connections the scenario opens. */
  conns(o: Options): number;
  /** Rows of this variant's table, from the servers that can run it. */
  launches(o: Options, servers: ServerDef[]): Launch[];
  /** Loadgen arguments without --port/--pid (added per run). */
  loadgenArgs(o: Options, l: Launch): string[];
  timeoutS(o: Options): number;
  /** Extracts this scenario's metrics from one loadgen result. */
  metrics(r: LoadgenResult): Record<string, number>;
  /** The figure compared in the ratio columns. */
  headline: { key: string; what: string; lowerIsBetter: boolean };
}

/** Loadgen flags for what a launch asks of the server. */
function featureArgs(l: Launch): string[] {
  return [
    ...(l.features.tls ? ["--tls", "--ca", CERT] : []),
    ...(l.features.deflate ? ["--deflate"] : []),
  ];
}

function windowArgs(o: Options): string[] {
  return ["--warmup", String(o.warmup), "--duration", String(o.duration)];
}

function echoVariant(
  id: string,
  scenario: ScenarioId,
  conns: number,
  size: number,
  label: string,
  f: Features = {},
  payload = "bin",
): Variant {
  const what = f.tls ? ", over TLS" : f.deflate ? ", permessage-deflate, JSON-like" : " binary";
  return {
    id,
    scenario,
    title: `(${scenario}) echo, ${conns} connection${conns > 1 ? "s" : ""} x 1 in flight, ` +
      `${label}${what}`,
    kind: "echo",
    serverMode: "echo",
    conns: () => conns,
    launches: (_o, servers) => standardLaunches(servers, f),
    loadgenArgs: (o, l) => [
      "--mode",
      "echo",
      "--conns",
      String(conns),
      "--size",
      String(size),
      "--inflight",
      "1",
      "--payload",
      payload,
      ...windowArgs(o),
      ...featureArgs(l),
    ],
    timeoutS: (o) => 120 + o.warmup + o.duration,
    metrics: (r) => throughputMetrics(r, r.msgs),
    headline: { key: "cpu_per_msg_us", what: "server CPU per message", lowerIsBetter: true },
  };
}

function broadcastVariant(
  id: string,
  scenario: ScenarioId,
  subscribers: (o: Options) => number,
  size: number,
  title: string,
  f: Features = {},
  payload = "bin",
): Variant {
  return {
    id,
    scenario,
    title,
    kind: "broadcast",
    serverMode: "broadcast",
    conns: (o) => subscribers(o) + 1,
    launches: (_o, servers) => standardLaunches(servers, f),
    loadgenArgs: (o, l) => [
      "--mode",
      "broadcast",
      "--conns",
      String(subscribers(o)),
      "--size",
      String(size),
      "--inflight",
      "32",
      "--payload",
      payload,
      ...windowArgs(o),
      ...featureArgs(l),
    ],
    timeoutS: (o) => 200 + o.warmup + o.duration,
    metrics: (r) => throughputMetrics(r, r.deliveries),
    headline: { key: "deliveries_per_s", what: "deliveries/s", lowerIsBetter: false },
  };
}

function throughputMetrics(r: LoadgenResult, count: number): Record<string, number> {
  const serverBusy = r.window_core_busy[Number(SERVER_CPU)] ?? NaN;
  const loadgenBusy = r.window_core_busy[Number(LOADGEN_CPU)] ?? NaN;
  // Share of each pinned core used by neither our processes nor interrupts: other processes
  // (e.g. tests running concurrently on this machine) that steal time from the measurement.
  const other = (busy: number, irq: number | undefined, own: number) =>
    Math.max(0, busy - (irq ?? 0) - own);
  const aux = r.aux_window_cpu_s >= 0 ? r.aux_window_cpu_s : 0;
  return {
    msgs_per_s: r.msgs_per_s,
    deliveries_per_s: r.deliveries_per_s,
    lat_p50_us: r.lat_p50_us,
    lat_p99_us: r.lat_p99_us,
    server_cpu_s: r.server_window_cpu_s,
    aux_cpu_s: r.aux_window_cpu_s,
    per_server_cpu_s: r.server_window_cpu_s > 0 ? count / r.server_window_cpu_s : NaN,
    cpu_per_msg_us: count > 0 ? (r.server_window_cpu_s / count) * 1e6 : NaN,
    cpu_per_delivery_ns: count > 0 ? (r.server_window_cpu_s / count) * 1e9 : NaN,
    aux_cpu_per_delivery_ns: count > 0 && r.aux_window_cpu_s >= 0 ? (aux / count) * 1e9 : NaN,
    total_cpu_per_delivery_ns: count > 0 ? ((r.server_window_cpu_s + aux) / count) * 1e9 : NaN,
    server_core_busy: serverBusy,
    per_server_core_s: serverBusy > 0 ? count / (serverBusy * r.window_s) : NaN,
    server_rss_kb: r.window_end.server_rss_kb,
    rss_growth_per_conn: ((r.window_end.server_rss_kb - r.before.server_rss_kb) * 1024) /
      Math.max(1, r.connected),
    losses: r.losses + r.out_of_order,
    loadgen_cpu_frac: r.window_cpu_frac,
    loadgen_core_busy: loadgenBusy,
    other_load_server_core: other(
      serverBusy,
      r.window_core_irq[Number(SERVER_CPU)],
      (r.server_window_cpu_s + aux) / r.window_s,
    ),
    other_load_loadgen_core: other(
      loadgenBusy,
      r.window_core_irq[Number(LOADGEN_CPU)],
      r.window_cpu_frac,
    ),
  };
}

function idleMetrics(r: LoadgenResult): Record<string, number> {
  const n = Math.max(1, r.connected);
  const before = r.before.server_rss_kb;
  // RSS "after": the larger of (all connected + settle) and (end of hold)
  const after = Math.max(r.after_connect.server_rss_kb, r.end.server_rss_kb);
  const slab = r.after_connect.slab_kb - r.before.slab_kb;
  const tcpPages = r.after_connect.tcp_mem_pages - r.before.tcp_mem_pages;
  const kernelBoth = (slab * 1024 + Math.max(0, tcpPages) * 4096) / n;
  const user = ((after - before) * 1024) / n;
  return {
    connected: r.connected,
    connect_time_s: r.connect_time_s,
    rss_before_kb: before,
    rss_after_kb: after,
    user_bytes_per_conn: user,
    kernel_bytes_per_conn_both_ends: kernelBoth,
    // Both ends of each loopback connection live in this kernel; the client socket costs about
    // as much as the server's, so half of the delta is attributed to the server.
    kernel_bytes_per_conn_server: kernelBoth / 2,
    total_bytes_per_conn_server: user + kernelBoth / 2,
    loadgen_cpu_s: r.cpu_s,
  };
}

function idleVariant(
  id: string,
  scenario: ScenarioId,
  kind: "idle" | "maxconn",
  title: string,
  count: (o: Options) => number,
  f: Features = {},
): Variant {
  return {
    id,
    scenario,
    title,
    kind,
    serverMode: "echo",
    conns: count,
    launches: (_o, servers) =>
      standardLaunches(
        kind === "maxconn" ? servers.filter((s) => s.ours || s.name === "c") : servers,
        f,
      ),
    loadgenArgs: (o, l) => [
      "--mode",
      "idle",
      "--conns",
      String(count(o)),
      "--hold",
      String(o.hold),
      "--settle",
      "1",
      ...featureArgs(l),
    ],
    timeoutS: (o) => 200 + o.hold,
    metrics: idleMetrics,
    headline: kind === "idle"
      ? { key: "user_bytes_per_conn", what: "RSS per connection", lowerIsBetter: true }
      : { key: "total_bytes_per_conn_server", what: "bytes per connection", lowerIsBetter: true },
  };
}

function peakMetrics(r: LoadgenResult): Record<string, number> {
  const before = r.before.server_rss_kb;
  const hwm = r.hwm_reset_ok && r.server_hwm_kb > 0 ? r.server_hwm_kb : -1;
  const peak = Math.max(hwm, r.peak_rss_sampled_kb);
  const serverBusy = r.window_core_busy[Number(SERVER_CPU)] ?? NaN;
  return {
    rss_before_kb: before,
    peak_rss_kb: peak,
    peak_growth_kb: peak - before,
    peak_growth_per_message: ((peak - before) * 1024) / r.size,
    hwm_used: hwm > 0 ? 1 : 0,
    msgs: r.msgs,
    window_s: r.window_s,
    server_cpu_s: r.server_window_cpu_s,
    stalled_closed: r.stalled_closed,
    stalled_backlog_mib: r.stalled_backlog / 1048576,
    loadgen_cpu_frac: r.window_cpu_frac,
    other_load_server_core: Math.max(
      0,
      serverBusy - (r.window_core_irq[Number(SERVER_CPU)] ?? 0) -
        r.server_window_cpu_s / Math.max(r.window_s, 1e-9),
    ),
  };
}

function peakVariant(
  id: string,
  title: string,
  mode: Mode,
  args: string[],
): Variant {
  return {
    id,
    scenario: "h",
    title,
    kind: "peak",
    serverMode: mode,
    conns: () => (mode === "echo" ? 1 : 4),
    launches: (_o, servers) => standardLaunches(servers, {}),
    loadgenArgs: () => ["--mode", mode, "--warmup", "0", ...args],
    timeoutS: () => 300,
    metrics: peakMetrics,
    headline: { key: "peak_growth_kb", what: "peak RSS growth", lowerIsBetter: true },
  };
}

function scaleVariant(): Variant {
  const b = broadcastVariant(
    "i",
    "i",
    () => 1000,
    64,
    "(i) scale-out: broadcast 1 -> 1,000 x 64 B, ours with 1 worker, 2 workers, 2 processes " +
      "over Redis (all server processes and redis-server on cpu0)",
  );
  return {
    ...b,
    kind: "scale",
    launches: (_o, servers) => {
      const ours = servers.find((s) => s.name === "ours-epoll");
      if (!ours) return [];
      const l = (label: string, features: Features, processes: number, redis: boolean) => ({
        label,
        def: ours,
        features,
        processes,
        redis,
        plain: false,
      });
      return [
        l("ours 1 worker", {}, 1, false),
        l("ours 2 workers", { workers: 2 }, 1, false),
        l("ours 2 procs + redis", { redis: "pending" }, 2, true),
      ];
    },
    headline: { key: "total_cpu_per_delivery_ns", what: "CPU per delivery", lowerIsBetter: true },
  };
}

function variantsFor(o: Options): Variant[] {
  const v: Variant[] = [];
  const tls: Features = { tls: true };
  const deflate: Features = { deflate: true };
  for (const s of o.scenarios) {
    if (s === "a") {
      v.push(
        echoVariant("a-100x32B", "a", 100, 32, "32 B"),
        echoVariant("a-100x1KiB", "a", 100, 1024, "1 KiB"),
        echoVariant("a-1x32B", "a", 1, 32, "32 B"),
      );
    }
    if (s === "b") {
      v.push(broadcastVariant(
        "b",
        "b",
        () => 1000,
        64,
        "(b) broadcast, 1 publisher x 32 in flight -> 1,000 subscribers, 64 B",
      ));
    }
    if (s === "c") {
      v.push(idleVariant(
        "c",
        "c",
        "idle",
        "(c) 10,000 idle connections: RSS growth per connection, time to connect all",
        (o) => o.idleConns,
      ));
    }
    if (s === "d") {
      v.push(idleVariant(
        "d",
        "d",
        "maxconn",
        "(d) ours and c: max idle connections + per-connection memory model",
        (o) => o.maxConns,
      ));
    }
    if (s === "e") {
      v.push(broadcastVariant(
        "e",
        "e",
        (o) => o.maxConns - 1,
        64,
        `(e) broadcast to ${o.maxConns.toLocaleString("en-US")} connections ` +
          `(1 publisher x 32 in flight + ${(o.maxConns - 1).toLocaleString("en-US")} ` +
          `subscribers), 64 B`,
      ));
    }
    if (s === "f") {
      v.push(
        echoVariant("f-echo", "f", 100, 32, "32 B", tls),
        broadcastVariant(
          "f-broadcast",
          "f",
          () => 1000,
          64,
          "(f) broadcast over TLS, 1 publisher x 32 in flight -> 1,000 subscribers, 64 B",
          tls,
        ),
      );
    }
    if (s === "g") {
      v.push(
        echoVariant("g-echo", "g", 100, 1024, "1 KiB", deflate, "json"),
        broadcastVariant(
          "g-broadcast",
          "g",
          () => 200,
          512,
          "(g) broadcast with permessage-deflate, 1 publisher x 32 in flight -> 200 " +
            "subscribers, 512 B JSON-like",
          deflate,
          "json",
        ),
        idleVariant(
          "g-idle",
          "g",
          "idle",
          `(g) ${o.idleConns.toLocaleString("en-US")} idle connections with permessage-deflate ` +
            "negotiated: RSS growth per connection",
          (o) => o.idleConns,
          deflate,
        ),
      );
    }
    if (s === "h") {
      v.push(
        peakVariant(
          "h-16MiB",
          "(h) one 16 MiB message echoed 4 times: peak RSS growth",
          "echo",
          ["--conns", "1", "--size", String(16 << 20), "--messages", "4", "--duration", "60"],
        ),
        peakVariant(
          "h-stalled",
          "(h) a stalled subscriber while 512 MiB is broadcast (64 KiB x 8,192 to the " +
            "publisher + 2 readers): peak RSS growth",
          "broadcast",
          [
            "--conns",
            "2",
            "--stalled",
            "1",
            "--size",
            "65536",
            "--messages",
            "8192",
            "--inflight",
            "16",
            "--duration",
            "120",
          ],
        ),
      );
    }
    if (s === "i") v.push(scaleVariant());
  }
  return v;
}

// ------------------------------------------------------------------------------------- runs

interface RunRecord {
  variant: string;
  /** Row label (server name, or e.g. "ours 2 workers", "c (plain)"). */
  server: string;
  round: number;
  ok: boolean;
  /** Reasons this run's numbers are not trustworthy (empty = valid). */
  invalid: string[];
  error?: string;
  /** Set when our server refused a capability: "not supported by this build". */
  unsupported?: string;
  metrics: Record<string, number>;
  commit?: string;
  server_pids?: number[];
  server_comm?: string;
  server_ports?: number[];
  redis_pid?: number;
  loadgen?: LoadgenResult;
  /** Last lines the loadgen printed on stderr (progress, first protocol errors). */
  loadgen_stderr?: string[];
  /** 1 + number of re-runs because other processes disturbed the measurement. */
  attempt?: number;
  waited_for_quiet_s?: number;
}

function invalidReasons(v: Variant, r: LoadgenResult, m: Record<string, number>): string[] {
  const why: string[] = [];
  if (Math.max(m.other_load_server_core ?? 0, m.other_load_loadgen_core ?? 0) > OTHER_LOAD_MAX) {
    why.push("OTHER-LOAD-ON-CPUS");
  }
  if (r.window_s > 0 && r.window_cpu_frac >= LOADGEN_SATURATED && v.kind !== "peak") {
    why.push("LOADGEN-SATURATED");
  }
  if (r.failed_conns > 0 || r.connected < r.conns) why.push("CONNECT-FAILED");
  if (r.tls_failures > 0) why.push("TLS-HANDSHAKE-FAILED");
  if (r.deflate && r.deflate_declined > 0) why.push("DEFLATE-NOT-NEGOTIATED");
  if (r.losses > 0 || r.out_of_order > 0) why.push("LOSSES");
  if (r.bad_payload > 0) why.push("CORRUPT-PAYLOAD");
  if (r.protocol_errors > 0) why.push("PROTOCOL-ERROR");
  if (r.unexpected_closes > 0) why.push("SERVER-CLOSED-CONNS");
  if (r.never_received > 0) why.push("SUBSCRIBER-GOT-NOTHING");
  if (r.messages_per_sender > 0 && r.msgs < r.messages_per_sender) why.push("MESSAGES-NOT-DONE");
  if (r.error) why.push(`LOADGEN: ${r.error}`);
  return why;
}

async function runOne(
  v: Variant,
  l: Launch,
  round: number,
  o: Options,
  commits: Map<string, string>,
): Promise<RunRecord> {
  const rec: RunRecord = {
    variant: v.id,
    server: l.label,
    round,
    ok: false,
    invalid: [],
    metrics: {},
    commit: commits.get(l.def.checkout),
  };
  const procs: RunningServer[] = [];
  let redis: RunningServer | undefined;
  try {
    const f: Features = { ...l.features };
    if (l.redis) {
      redis = await startRedis();
      rec.redis_pid = redis.pid;
      f.redis = `redis://127.0.0.1:${redis.port}`;
    }
    for (let k = 0; k < l.processes; k++) procs.push(await startServer(l.def, v.serverMode, f));
    rec.server_pids = procs.map((p) => p.pid);
    rec.server_ports = procs.map((p) => p.port);
    rec.server_comm = procs[0].comm;
    if (["bash", "sh", "taskset"].includes(procs[0].comm)) {
      rec.invalid.push(`PID-IS-WRAPPER(${procs[0].comm})`);
    }
    await sleep(1000); // settle: RSS baseline is taken after listening + 1 s
    const args = [
      ...v.loadgenArgs(o, l),
      "--port",
      String(procs[0].port),
      ...(procs.length > 1 ? ["--ports", procs.map((p) => p.port).join(",")] : []),
      "--pid",
      procs.map((p) => p.pid).join(","),
      ...(redis ? ["--aux-pid", String(redis.pid)] : []),
    ];
    const stderrTail: string[] = [];
    rec.loadgen_stderr = stderrTail;
    const r = await runLoadgen(args, v.timeoutS(o), stderrTail);
    rec.loadgen = r;
    rec.metrics = v.metrics(r);
    rec.invalid.push(...invalidReasons(v, r, rec.metrics));
    const crashed = procs.find((p) => p.exited());
    if (crashed) {
      rec.invalid.push("SERVER-CRASHED");
      rec.error =
        `server exited (code ${crashed.exitCode()}) during the run\n${crashed.err.tail()}`;
    }
    rec.ok = true;
  } catch (e) {
    if (e instanceof UnsupportedError) {
      rec.unsupported = e.message;
      rec.error = e.message;
      rec.invalid.push("UNSUPPORTED");
    } else {
      rec.error = e instanceof Error ? e.message : String(e);
      if (procs.some((p) => p.exited())) rec.invalid.push("SERVER-CRASHED");
      rec.invalid.push("FAILED");
    }
  } finally {
    for (const p of procs) await stopProcess(p.child, p.exited);
    if (redis) await stopProcess(redis.child, redis.exited);
  }
  return rec;
}

function describe(rec: RunRecord, v: Variant): string {
  if (rec.unsupported) return `not supported by this build (${rec.unsupported})`;
  if (!rec.ok) return `FAILED: ${rec.error?.split("\n")[0]}`;
  const m = rec.metrics;
  const lg = rec.loadgen;
  const flags = rec.invalid.length ? `  [${rec.invalid.join(", ")}]` : "";
  if (v.kind === "echo" || v.kind === "broadcast" || v.kind === "scale") {
    const main = v.kind === "echo"
      ? `${fmtInt(m.msgs_per_s)} msgs/s, ${fmtUs(m.cpu_per_msg_us)} CPU/msg`
      : `${fmtInt(m.deliveries_per_s)} deliveries/s (${fmtInt(m.msgs_per_s)} msgs/s), ` +
        `${fmtInt(m.cpu_per_delivery_ns)} ns CPU/delivery` +
        (m.aux_cpu_s > 0 ? ` + redis ${fmtInt(m.aux_cpu_per_delivery_ns)} ns` : "");
    return `${main}, p50 ${fmtUs(m.lat_p50_us)} p99 ${fmtUs(m.lat_p99_us)}, ` +
      `server cpu ${m.server_cpu_s.toFixed(2)} s, rss ${fmtMiB(m.server_rss_kb)}, ` +
      `loadgen cpu ${pct(m.loadgen_cpu_frac)}, other load on cpu${SERVER_CPU}/cpu${LOADGEN_CPU} ` +
      `${pct(m.other_load_server_core)}/${pct(m.other_load_loadgen_core)}${flags}`;
  }
  if (v.kind === "peak") {
    return `peak RSS growth ${fmtMiB(m.peak_growth_kb)} (${m.hwm_used ? "VmHWM" : "sampled"}), ${
      fmtInt(m.msgs)
    } msgs in ${m.window_s.toFixed(2)} s, server cpu ${m.server_cpu_s.toFixed(2)} s${
      lg?.stalled ? `, stalled reader ${m.stalled_closed ? "dropped" : "kept"}` : ""
    }${flags}`;
  }
  return `${fmtInt(m.connected)} conns in ${m.connect_time_s.toFixed(2)} s, rss ` +
    `${fmtMiB(m.rss_before_kb)} -> ${fmtMiB(m.rss_after_kb)} ` +
    `(${fmtInt(m.user_bytes_per_conn)} B/conn), kernel ~${fmtInt(m.kernel_bytes_per_conn_server)}` +
    ` B/conn, loadgen cpu ${lg?.cpu_s.toFixed(2)} s${flags}`;
}

/** Aggregate busy fraction of all CPUs over `ms` (nothing of ours runs between runs). */
async function machineBusy(ms: number): Promise<number> {
  const read = async () => {
    const f = (await Deno.readTextFile("/proc/stat")).split("\n")[0].trim().split(/\s+/);
    const v = f.slice(1, 9).map(Number);
    return { total: v.reduce((a, b) => a + b, 0), idle: v[3] + v[4] };
  };
  const a = await read();
  await sleep(ms);
  const b = await read();
  return b.total > a.total ? 1 - (b.idle - a.idle) / (b.total - a.total) : 0;
}

/** Waits (bounded) until other processes use < 10% of the machine; returns seconds waited. */
async function waitQuiet(maxS: number): Promise<number> {
  const t0 = Date.now();
  let announced = false;
  while ((Date.now() - t0) / 1000 < maxS) {
    const busy = await machineBusy(500);
    if (busy < OTHER_LOAD_MAX) break;
    if (!announced) {
      console.log(`  (machine ${pct(busy)} busy with other processes: waiting up to ${maxS} s)`);
      announced = true;
    }
  }
  return (Date.now() - t0) / 1000;
}

// ---------------------------------------------------------------------------------- summary

interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

function stat(values: number[]): Stat {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1], n: v.length };
}

interface Summary {
  variant: string;
  server: string;
  runs: number;
  valid_runs: number;
  /** true when no run was valid and the statistics below come from invalid runs. */
  from_invalid_runs: boolean;
  flags: string[];
  stats: Record<string, Stat>;
  commit: string;
  /** "not supported by this build" message, when our server refused. */
  unsupported?: string;
}

function summarize(v: Variant, server: string, runs: RunRecord[]): Summary {
  const done = runs.filter((r) => r.ok);
  const valid = done.filter((r) => r.invalid.length === 0);
  const use = valid.length ? valid : done;
  const stats: Record<string, Stat> = {};
  const keys = new Set(use.flatMap((r) => Object.keys(r.metrics)));
  for (const k of keys) stats[k] = stat(use.map((r) => r.metrics[k]));
  const counts = new Map<string, number>();
  for (const r of runs) for (const f of r.invalid) counts.set(f, (counts.get(f) ?? 0) + 1);
  return {
    variant: v.id,
    server,
    runs: runs.length,
    valid_runs: valid.length,
    from_invalid_runs: valid.length === 0 && done.length > 0,
    flags: [...counts].filter(([f]) => f !== "UNSUPPORTED").map(([f, n]) =>
      `${f} ${n}/${runs.length}`
    ),
    stats,
    commit: runs.find((r) => r.commit)?.commit ?? "",
    unsupported: runs.find((r) => r.unsupported)?.unsupported,
  };
}

const fmtInt = (x: number) => Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "n/a";
const fmtUs = (us: number) =>
  !Number.isFinite(us) || us < 0
    ? "n/a"
    : us >= 1000
    ? `${(us / 1000).toFixed(2)} ms`
    : `${us.toFixed(0)} µs`;
const fmtMiB = (kb: number) =>
  Number.isFinite(kb) && kb >= 0 ? `${(kb / 1024).toFixed(1)} MiB` : "n/a";
const fmtS = (s: number) => Number.isFinite(s) ? `${s.toFixed(2)} s` : "n/a";
const fmtNs = (ns: number) => Number.isFinite(ns) ? `${fmtInt(ns)} ns` : "n/a";
const pct = (f: number) => Number.isFinite(f) ? `${(f * 100).toFixed(0)}%` : "n/a";
const fmtBytes = (b: number) => {
  if (!Number.isFinite(b)) return "n/a";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(b) >= 1024 && i < units.length - 1) b /= 1024, i++;
  return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
};

function range(s: Stat | undefined, f: (x: number) => string): string {
  if (!s || !s.n) return "n/a";
  return s.n === 1 ? "(1 run)" : `${f(s.min)} – ${f(s.max)}`;
}

function flagCell(s: Summary): string {
  const parts = [...s.flags];
  if (s.from_invalid_runs) parts.unshift("INVALID");
  return parts.length ? parts.join("; ") : "ok";
}

function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(w[i])).join(" | ")} |`;
  return [line(header), `|${w.map((n) => "-".repeat(n + 2)).join("|")}|`, ...rows.map(line)]
    .join("\n");
}

/** `ours / reference` for the variant's headline figure, as "1.07x"; "–" without a reference. */
function ratioCell(v: Variant, s: Summary, ref: Summary | undefined): string {
  if (!ref || ref === s || ref.unsupported) return "–";
  const a = s.stats[v.headline.key]?.median;
  const b = ref.stats[v.headline.key]?.median;
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0) {
    return "n/a";
  }
  const bad = s.from_invalid_runs || ref.from_invalid_runs ? " (INVALID)" : "";
  return `${(a / b).toFixed(2)}x${bad}`;
}

function renderVariant(v: Variant, sums: Summary[]): string {
  const g = (s: Summary, k: string) => s.stats[k]?.median ?? NaN;
  const byLabel = new Map(sums.map((s) => [s.server, s]));
  const refC = byLabel.get("c") ?? byLabel.get("c (plain)");
  const refBun = byLabel.get("bun");
  const ratioHeads = v.kind === "scale"
    ? [`${v.headline.what} ÷ 1 worker`]
    : [`${v.headline.what} ÷ C`, `÷ Bun`];
  const ratioCells = (s: Summary) =>
    v.kind === "scale"
      ? [ratioCell(v, s, byLabel.get("ours 1 worker"))]
      : [ratioCell(v, s, refC), ratioCell(v, s, refBun)];
  const rows: string[][] = [];
  const present = sums.filter((s) => !s.unsupported);
  const missing = sums.filter((s) => s.unsupported);
  let header: string[];
  if (v.kind === "echo" || v.kind === "broadcast" || v.kind === "scale") {
    const echo = v.kind === "echo";
    header = [
      "server",
      echo ? "msgs/s (median)" : "deliveries/s (median)",
      "min – max",
      echo ? "server CPU/msg" : "server CPU/delivery",
      ...(v.kind === "scale" ? ["redis CPU/delivery"] : []),
      ...ratioHeads,
      "server core busy",
      "p50",
      "p99",
      "server RSS",
      ...(echo ? [] : ["RSS growth/conn"]),
      "loadgen CPU",
      "runs valid",
      "flags",
    ];
    for (const s of present) {
      const key = echo ? "msgs_per_s" : "deliveries_per_s";
      rows.push([
        s.server,
        fmtInt(g(s, key)),
        range(s.stats[key], fmtInt),
        echo ? fmtUs(g(s, "cpu_per_msg_us")) : fmtNs(g(s, "cpu_per_delivery_ns")),
        ...(v.kind === "scale"
          ? [
            Number.isFinite(g(s, "aux_cpu_per_delivery_ns"))
              ? fmtNs(g(s, "aux_cpu_per_delivery_ns"))
              : "–",
          ]
          : []),
        ...ratioCells(s),
        pct(g(s, "server_core_busy")),
        fmtUs(g(s, "lat_p50_us")),
        fmtUs(g(s, "lat_p99_us")),
        fmtMiB(g(s, "server_rss_kb")),
        ...(echo ? [] : [fmtBytes(g(s, "rss_growth_per_conn"))]),
        pct(g(s, "loadgen_cpu_frac")),
        `${s.valid_runs}/${s.runs}`,
        flagCell(s),
      ]);
    }
  } else if (v.kind === "idle") {
    header = [
      "server",
      "RSS/conn (median)",
      "min – max",
      ...ratioHeads,
      "connect all (median)",
      "RSS before -> after",
      "kernel/conn (server est.)",
      "runs valid",
      "flags",
    ];
    for (const s of present) {
      rows.push([
        s.server,
        fmtBytes(g(s, "user_bytes_per_conn")),
        range(s.stats.user_bytes_per_conn, fmtBytes),
        ...ratioCells(s),
        fmtS(g(s, "connect_time_s")),
        `${fmtMiB(g(s, "rss_before_kb"))} -> ${fmtMiB(g(s, "rss_after_kb"))}`,
        fmtBytes(g(s, "kernel_bytes_per_conn_server")),
        `${s.valid_runs}/${s.runs}`,
        flagCell(s),
      ]);
    }
  } else if (v.kind === "peak") {
    const stalled = v.id.includes("stalled");
    header = [
      "server",
      "peak RSS growth (median)",
      "min – max",
      ...(stalled ? ["stalled reader", "its backlog"] : ["x message"]),
      ...ratioHeads,
      "RSS before",
      "messages in",
      "server CPU",
      "peak from",
      "runs valid",
      "flags",
    ];
    for (const s of present) {
      rows.push([
        s.server,
        fmtMiB(g(s, "peak_growth_kb")),
        range(s.stats.peak_growth_kb, fmtMiB),
        ...(stalled
          ? [
            g(s, "stalled_closed") >= 1 ? "dropped" : "kept",
            `${g(s, "stalled_backlog_mib").toFixed(1)} MiB`,
          ]
          : [`${g(s, "peak_growth_per_message").toFixed(2)}x`]),
        ...ratioCells(s),
        fmtMiB(g(s, "rss_before_kb")),
        `${g(s, "window_s").toFixed(2)} s`,
        `${g(s, "server_cpu_s").toFixed(2)} s`,
        g(s, "hwm_used") ? "VmHWM" : "10 ms samples",
        `${s.valid_runs}/${s.runs}`,
        flagCell(s),
      ]);
    }
  } else {
    header = [
      "server",
      "conns",
      "connect all",
      "user B/conn",
      "kernel B/conn (both ends)",
      "kernel B/conn (server est.)",
      "total B/conn",
      ...ratioHeads,
      "@100k conns",
      "@1M conns",
      "flags",
    ];
    for (const s of present) {
      const total = g(s, "total_bytes_per_conn_server");
      rows.push([
        s.server,
        fmtInt(g(s, "connected")),
        fmtS(g(s, "connect_time_s")),
        fmtBytes(g(s, "user_bytes_per_conn")),
        fmtBytes(g(s, "kernel_bytes_per_conn_both_ends")),
        fmtBytes(g(s, "kernel_bytes_per_conn_server")),
        fmtBytes(total),
        ...ratioCells(s),
        fmtBytes(total * 1e5),
        fmtBytes(total * 1e6),
        flagCell(s),
      ]);
    }
  }
  const out = [table(header, rows)];
  const ratioNote = v.kind === "scale"
    ? `Ratio: total (fdws + redis) CPU per delivery divided by 1 worker's (target <= 1.3x).`
    : `Ratios: ${v.headline.what} of the row divided by C's and Bun's (${
      v.headline.lowerIsBetter ? "lower is better" : "higher is better"
    })${refC?.server === "c (plain)" ? "; C runs plain TCP without the scenario's feature" : ""}.`;
  out.push(ratioNote);
  for (const s of missing) out.push(`${s.server}: ${s.unsupported}`);
  return out.join("\n");
}

/** "commit measured: <sha> (rows...)" for the rows of one table. */
function commitLine(sums: Summary[]): string {
  const by = new Map<string, string[]>();
  for (const s of sums) {
    const c = s.commit || "unknown";
    by.set(c, [...(by.get(c) ?? []), s.server]);
  }
  return `commit measured: ${[...by].map(([c, l]) => `${c} (${l.join(", ")})`).join("; ")}`;
}

/** One footnote per round in which the load generator saturated its core. */
function saturationNotes(runs: RunRecord[]): string[] {
  return runs.filter((r) => r.invalid.includes("LOADGEN-SATURATED")).map((r) =>
    `  * round ${r.round}, ${r.server}: the load generator saturated its core (${
      pct(r.metrics.loadgen_cpu_frac)
    } CPU): that figure is a lower bound for the server.`
  );
}

// ----------------------------------------------------------------------------- machine info

async function machineInfo(): Promise<Record<string, string | number>> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const sysctl = (k: string) =>
    Deno.readTextFile(`/proc/sys/${k.replaceAll(".", "/")}`).then((s) =>
      s.trim().replace(/\s+/g, " ")
    )
      .catch(() => "?");
  const wsVersion = exists(WS_PKG)
    ? (JSON.parse(await Deno.readTextFile(WS_PKG)) as { version: string }).version
    : "";
  return {
    nproc: navigator.hardwareConcurrency,
    cpu_model: cpuinfo.match(/model name\s*:\s*(.*)/)?.[1] ?? "?",
    mem_total: meminfo.match(/MemTotal:\s*(.*)/)?.[1] ?? "?",
    kernel: `${Deno.osRelease()} ${await capture("uname", ["-v"])}`.trim(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    node: await capture("node", ["--version"]),
    ws: wsVersion,
    bun: exists(BUN) ? await capture(BUN, ["--version"]) : "",
    gcc: (await capture("gcc", ["--version"])).split("\n")[0],
    git_commit: await capture("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]),
    ip_local_port_range: await sysctl("net.ipv4.ip_local_port_range"),
    somaxconn: await sysctl("net.core.somaxconn"),
    tcp_congestion_control: await sysctl("net.ipv4.tcp_congestion_control"),
    open_files_hard_limit: await capture("bash", ["-c", "ulimit -Hn"]),
    server_cpu: SERVER_CPU,
    loadgen_cpu: LOADGEN_CPU,
  };
}

// ------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const o = parseOptions(Deno.args);
  if (navigator.hardwareConcurrency < 2) {
    console.warn("warning: fewer than 2 CPUs, pinning overlaps");
  }
  if (!(await capture("taskset", ["-V"]))) throw new Error("taskset (util-linux) is required");
  hasSetpriv = (await capture("setpriv", ["--help"])).includes("--pdeathsig");
  if (o.baseline) {
    if (!exists(`${o.baseline}/bench/server.ts`)) {
      throw new Error(`--baseline ${o.baseline}: no bench/server.ts there`);
    }
    SERVERS["base-epoll"] = oursDef("base-epoll", "epoll", o.baseline, []);
  }
  await ensureBuilds();
  await ensureDeps(o.servers);
  const certProblem = o.scenarios.includes("f") ? await ensureCert() : null;
  const machine = await machineInfo();
  const commits = new Map<string, string>();
  for (const s of o.servers) {
    const dir = SERVERS[s].checkout;
    if (!commits.has(dir)) commits.set(dir, await commitOf(dir));
  }
  const started = new Date();
  console.log(
    `fdws bench: scenarios ${o.scenarios.join(",")}, servers ${o.servers.join(",")}, ` +
      `${o.rounds} round(s), ${o.warmup} s warmup + ${o.duration} s window`,
  );
  console.log(
    `machine: ${machine.nproc} CPUs (${machine.cpu_model}), kernel ${Deno.osRelease()}, ` +
      `deno ${machine.deno}, node ${machine.node}, bun ${machine.bun || "-"}`,
  );
  console.log(`commits: ${[...commits].map(([d, c]) => `${c} (${d})`).join(", ")}`);

  const unavailable: Record<string, string> = {};
  for (const s of o.servers) {
    const why = SERVERS[s].unavailable();
    if (why) {
      unavailable[s] = why;
      console.log(`skipping ${s}: ${why}`);
    }
  }
  const hasRedis = !!(await capture("redis-server", ["--version"]));
  const runnable = o.servers.filter((s) => !unavailable[s]).map((s) => SERVERS[s]);
  const runs: RunRecord[] = [];
  const discarded: RunRecord[] = []; // attempts disturbed by other processes, then re-run
  const summaries: Summary[] = [];
  const report: string[] = [];

  for (const v of variantsFor(o)) {
    const all = v.launches(o, runnable);
    const tooMany = all.filter((l) => (l.def.maxConns ?? Infinity) < v.conns(o));
    let launches = all.filter((l) => !tooMany.includes(l));
    const notes: string[] = [];
    if (tooMany.length) {
      notes.push(
        `(not run: ${tooMany.map((l) => l.label).join(", ")} cannot hold ${
          v.conns(o)
        } connections)`,
      );
    }
    if (v.scenario === "f" && certProblem) {
      notes.push(`(not run: ${certProblem})`);
      launches = [];
    }
    if (launches.some((l) => l.redis) && !hasRedis) {
      notes.push("(not run: redis-server is not installed, `apt-get install redis-server`)");
      launches = launches.filter((l) => !l.redis);
    }
    for (const n of notes) console.log(`\n${n}`);
    if (!launches.length) {
      report.push(`\n### ${v.title}\n(no runnable server for this scenario)`, ...notes);
      continue;
    }
    console.log(`\n== ${v.title}`);
    const refused = new Set<string>();
    for (let round = 1; round <= o.rounds; round++) {
      // rotate the starting launch each round so no server always runs first/last
      const order = launches.map((_, i) => launches[(i + round - 1) % launches.length]);
      for (const l of order) {
        if (refused.has(l.label)) continue;
        let rec: RunRecord;
        let attempt = 0;
        for (;;) {
          const waited = o.quietWait > 0 ? await waitQuiet(o.quietWait) : 0;
          rec = await runOne(v, l, round, o, commits);
          rec.waited_for_quiet_s = Math.round(waited * 10) / 10;
          rec.attempt = ++attempt;
          if (!rec.invalid.includes("OTHER-LOAD-ON-CPUS") || attempt > o.retries) break;
          discarded.push(rec);
          console.log(
            `  [${v.id} round ${round}/${o.rounds}] ${l.label.padEnd(11)} disturbed by ` +
              `other processes (${describe(rec, v)}), retrying`,
          );
        }
        runs.push(rec);
        if (rec.unsupported) refused.add(l.label);
        console.log(
          `  [${v.id} round ${round}/${o.rounds}] ${l.label.padEnd(11)} ${describe(rec, v)}`,
        );
        if (rec.error && !rec.unsupported) {
          console.log(indent(rec.ok ? rec.error : rec.error.split("\n").slice(1).join("\n")));
        }
        await sleep(500);
      }
    }
    const vruns = runs.filter((r) => r.variant === v.id);
    const sums = launches.map((l) =>
      summarize(v, l.label, vruns.filter((r) => r.server === l.label))
    );
    summaries.push(...sums);
    const sat = saturationNotes(vruns);
    report.push(
      `\n### ${v.title}`,
      renderVariant(v, sums),
      commitLine(sums),
      ...(sat.length ? ["Load generator saturated:", ...sat] : []),
      ...notes,
    );
  }

  console.log(`\n## Results (${o.rounds} round(s); median over valid runs, min – max)`);
  console.log(report.join("\n"));
  console.log(
    `\nINVALID = no valid run (numbers shown are from invalid runs). LOADGEN-SATURATED = loadgen ` +
      `CPU >= ${LOADGEN_SATURATED * 100}% of the window: the number is a lower bound. ` +
      `OTHER-LOAD-ON-CPUS = other processes used > ${OTHER_LOAD_MAX * 100}% of a pinned core.`,
  );

  Deno.mkdirSync(`${BENCH}results`, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  const file = `${BENCH}results/${stamp}.json`;
  const doc = {
    started: started.toISOString(),
    finished: new Date().toISOString(),
    options: o,
    machine,
    commits: Object.fromEntries(commits),
    unavailable,
    summaries,
    runs,
    discarded_runs: discarded,
  };
  await Deno.writeTextFile(`${file}.tmp`, JSON.stringify(doc, null, 2) + "\n");
  await Deno.rename(`${file}.tmp`, file);
  console.log(`raw results: ${file.slice(ROOT.length)}`);
}

function indent(s: string): string {
  return s.split("\n").filter(Boolean).map((l) => `      ${l}`).join("\n");
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  Deno.addSignalListener(sig, () => {
    console.error(`\n${sig}: stopping all servers and load generators`);
    killAll();
    Deno.exit(130);
  });
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    Deno.exitCode = 1;
  } finally {
    killAll();
  }
  Deno.exit();
}

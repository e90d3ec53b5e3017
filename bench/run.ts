/**
 * Benchmark runner: fdws (epoll + select pollers) vs Deno built-in, Node `ws` and Bun.
 *
 *   deno task bench [--scenarios a,b,c,d] [--servers ours-epoll,ours-select,deno,node,bun]
 *                   [--rounds 3] [--duration 5] [--warmup 1] [--hold 3] [--quick]
 *                   [--idle-conns 10000] [--max-conns 19000]
 *
 * Scenarios:
 *   a  echo, 100 connections, 1 message in flight each, 32 B and 1 KiB (msgs/s, p50/p99)
 *   b  broadcast, 1 publisher (32 in flight) -> 1,000 subscribers, 64 B (deliveries/s = copies
 *      received by all connections incl. the publisher; p50/p99 send -> receipt at subscribers)
 *   c  10,000 idle connections: server RSS growth per connection, time to connect all
 *   d  ours only: as many idle connections as the fd limit allows, per-connection memory model
 *      (user = RSS growth / N; kernel = (/proc/meminfo Slab + sockstat TCP mem pages) delta / N,
 *      halved because both ends of a loopback connection live in this kernel), projected to
 *      100k and 1M connections
 *
 * Method: every measurement starts a fresh server (pinned to cpu0 with taskset, open-files
 * limit raised, `exec` so that the PID is the real deno/node/bun process) and runs
 * bench/loadgen.c (pinned to cpu1). Servers take turns within each round; the first server
 * rotates per round. The loadgen samples the server's /proc/<pid>/stat (utime+stime) and VmRSS
 * exactly at the window boundaries, and /proc/stat per-core busy time: "server core busy"
 * includes softirq time (loopback TCP processing), which no process's CPU time contains.
 * Medians are over valid runs (all runs if none is valid: the row is then marked INVALID).
 *
 * A run is invalid when the loadgen used >= 90% of a CPU in the window (LOADGEN-SATURATED: the
 * number is a lower bound for the server), a connection failed, a message was lost / out of
 * order / corrupted, the server closed connections or crashed, or other processes used more
 * than 10% of either pinned core during the window (OTHER-LOAD-ON-CPUS: core busy time minus
 * irq/softirq minus our process's CPU time; this machine is shared). Known limit of a 2-core box:
 * the loadgen's cost per message is mostly kernel TCP work (a loopback send() runs the peer's
 * receive path), about the same as the server's, so a very efficient server (Bun) can saturate
 * the loadgen in echo 32 B and broadcast.
 *
 * Output: progress and Markdown tables on stdout, raw data (machine info, options, every run
 * with the loadgen's full JSON, summaries) in bench/results/<timestamp>.json.
 * Dependencies: gcc, taskset (util-linux), node, npm (ws and Bun are installed on demand into
 * bench/.deps, versions pinned in NPM_DEPS).
 */

const BENCH = new URL(".", import.meta.url).pathname; // ends with "/"
const ROOT = new URL("..", import.meta.url).pathname;
const DEPS = `${BENCH}.deps`;
const BUILD = `${BENCH}.build`;
const LOADGEN_SRC = `${BENCH}loadgen.c`;
const LOADGEN = `${BUILD}/loadgen`;
const BUN = `${DEPS}/node_modules/@oven/bun-linux-x64/bin/bun`;
const WS_PKG = `${DEPS}/node_modules/ws/package.json`;
// Pinned so that results are comparable across runs; bump deliberately.
const NPM_DEPS = ["ws@8.23.0", "@oven/bun-linux-x64@1.4.5"];
const SERVER_CPU = "0";
const LOADGEN_CPU = "1";
const FD_LIMIT = 20000;
const LOADGEN_SATURATED = 0.9; // loadgen CPU / wall in the window at or above this: INVALID
const OTHER_LOAD_MAX = 0.1; // other processes using > 10% of a pinned core in the window: INVALID

type Mode = "echo" | "broadcast";
type ScenarioId = "a" | "b" | "c" | "d";
const ALL_SCENARIOS: ScenarioId[] = ["a", "b", "c", "d"];
const ALL_SERVERS = ["ours-epoll", "ours-select", "deno", "node", "bun"];

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
}

function usage(code: number): never {
  console.log(`usage: deno task bench [options]
  --scenarios a,b,c,d      scenarios to run (default: all)
  --servers LIST           ${ALL_SERVERS.join(",")} (default: all)
  --rounds N               rounds per scenario (default 3; --quick: 1)
  --duration SEC           measured window (default 5; --quick: 2)
  --warmup SEC             warmup before the window (default 1; --quick: 0.5)
  --hold SEC               idle scenarios: hold time with all connections open (default 3)
  --idle-conns N           scenario c connections (default 10000)
  --max-conns N            scenario d connections (default: fd limit - 1000, i.e. 19000)
  --quiet-wait SEC         before each run wait up to SEC for the machine to be idle (default 60)
  --retries N              re-run a measurement disturbed by other processes up to N times (2)
  --quick                  smoke run: 1 round, short windows`);
  Deno.exit(code);
}

function parseOptions(args: string[]): Options {
  const o: Options = {
    scenarios: [...ALL_SCENARIOS],
    servers: [...ALL_SERVERS],
    rounds: 3,
    duration: 5,
    warmup: 1,
    hold: 3,
    quick: false,
    maxConns: FD_LIMIT - 1000,
    idleConns: 10000,
    quietWait: 60,
    retries: 2,
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
      case "--servers": {
        const list = next().split(",").map((s) => s.trim()).filter(Boolean);
        for (const s of list) if (!ALL_SERVERS.includes(s)) usage(2);
        o.servers = list;
        break;
      }
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
function spawnPinned(cpu: string, cmd: string[]): Deno.ChildProcess {
  // setpriv --pdeathsig: the child is SIGKILLed even if this runner dies without cleanup
  const script = `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ` +
    `exec ${hasSetpriv ? "setpriv --pdeathsig KILL " : ""}taskset -c ${cpu} "$@"`;
  const child = new Deno.Command("bash", {
    args: ["-c", script, "bench", ...cmd],
    cwd: ROOT,
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

interface ServerDef {
  name: string;
  ours: boolean;
  /** Most connections the server can hold (select: below FD_SETSIZE), if limited. */
  maxConns?: number;
  /** Reason why the server cannot run, or null. */
  unavailable(): string | null;
  command(port: number, mode: Mode): string[];
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const deno = Deno.execPath();
const SERVERS: Record<string, ServerDef> = {
  "ours-epoll": oursDef("epoll"),
  "ours-select": oursDef("select"),
  deno: {
    name: "deno",
    ours: false,
    unavailable: () => null,
    command: (port, mode) => [
      deno,
      "run",
      "--allow-net",
      "bench/servers/deno_builtin.ts",
      "--port",
      String(port),
      "--mode",
      mode,
    ],
  },
  node: {
    name: "node",
    ours: false,
    unavailable: () => exists(WS_PKG) ? null : "ws not installed in bench/.deps",
    command: (port, mode) => [
      "node",
      "bench/servers/node_ws.mjs",
      "--port",
      String(port),
      "--mode",
      mode,
    ],
  },
  bun: {
    name: "bun",
    ours: false,
    unavailable: () => exists(BUN) ? null : "bun not installed in bench/.deps",
    command: (port, mode) => [
      BUN,
      "bench/servers/bun_server.ts",
      "--port",
      String(port),
      "--mode",
      mode,
    ],
  },
};

function oursDef(poller: "epoll" | "select"): ServerDef {
  return {
    name: `ours-${poller}`,
    ours: true,
    // select(2) cannot watch descriptors >= FD_SETSIZE (1024); Deno itself holds ~20.
    maxConns: poller === "select" ? 1000 : undefined,
    unavailable: () => exists(`${BENCH}server.ts`) ? null : "bench/server.ts does not exist yet",
    command: (port, mode) => [
      deno,
      "run",
      "--allow-ffi",
      "bench/server.ts",
      "--port",
      String(port),
      "--mode",
      mode,
      "--poller",
      poller,
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
  def: ServerDef;
  child: Deno.ChildProcess;
  pid: number;
  port: number;
  comm: string;
  exited: () => boolean;
  exitCode: () => number | null;
  out: LineTail;
  err: LineTail;
}

async function startServer(def: ServerDef, mode: Mode): Promise<RunningServer> {
  const port = freePort();
  const child = spawnPinned(SERVER_CPU, def.command(port, mode));
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
    if (l.includes("listening")) listening = true;
  });
  const err = new LineTail(child.stderr, (l) => {
    if (l.includes("listening")) listening = true;
  });
  const server: RunningServer = {
    def,
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
    const why = isExited ? `exited with code ${code}` : "did not print 'listening' within 30 s";
    throw new Error(`${def.name} ${why}\n${err.tail()}\n${out.tail()}`.trim());
  }
  server.comm = (await Deno.readTextFile(`/proc/${child.pid}/comm`).catch(() => "?")).trim();
  return server;
}

// ---------------------------------------------------------------------------------- loadgen

interface ProcSample {
  server_cpu_s: number;
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

async function ensureLoadgen(): Promise<void> {
  const src = Deno.statSync(LOADGEN_SRC).mtime?.getTime() ?? 0;
  const bin = exists(LOADGEN) ? Deno.statSync(LOADGEN).mtime?.getTime() ?? 0 : -1;
  if (bin < src) {
    console.log("building bench/.build/loadgen (gcc -O2)");
    Deno.mkdirSync(BUILD, { recursive: true });
    const out = await new Deno.Command("gcc", {
      args: ["-O2", "-Wall", "-Wextra", "-o", LOADGEN, LOADGEN_SRC],
    }).output();
    if (!out.success) throw new Error(`gcc failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  const self = await capture(LOADGEN, ["--selftest"]);
  if (!self.includes('"ok":true')) throw new Error(`loadgen self-test failed: ${self}`);
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

interface Variant {
  id: string;
  scenario: ScenarioId;
  title: string;
  serverMode: Mode;
  oursOnly: boolean;
  /** Connections the scenario opens. */
  conns(o: Options): number;
  loadgenArgs(o: Options): string[];
  timeoutS(o: Options): number;
  /** Extracts this scenario's metrics from one loadgen result. */
  metrics(r: LoadgenResult): Record<string, number>;
}

function echoVariant(size: number, label: string): Variant {
  return {
    id: `a-${label}`,
    scenario: "a",
    title: `(a) echo, 100 connections x 1 in flight, ${label} binary`,
    serverMode: "echo",
    oursOnly: false,
    conns: () => 100,
    loadgenArgs: (o) => [
      "--mode",
      "echo",
      "--conns",
      "100",
      "--size",
      String(size),
      "--inflight",
      "1",
      "--warmup",
      String(o.warmup),
      "--duration",
      String(o.duration),
    ],
    timeoutS: (o) => 120 + o.warmup + o.duration,
    metrics: (r) => throughputMetrics(r, r.msgs),
  };
}

function throughputMetrics(r: LoadgenResult, count: number): Record<string, number> {
  const serverBusy = r.window_core_busy[Number(SERVER_CPU)] ?? NaN;
  const loadgenBusy = r.window_core_busy[Number(LOADGEN_CPU)] ?? NaN;
  // Share of each pinned core used by neither our process nor interrupts: other processes
  // (e.g. tests running concurrently on this machine) that steal time from the measurement.
  const other = (busy: number, irq: number | undefined, own: number) =>
    Math.max(0, busy - (irq ?? 0) - own);
  return {
    msgs_per_s: r.msgs_per_s,
    deliveries_per_s: r.deliveries_per_s,
    lat_p50_us: r.lat_p50_us,
    lat_p99_us: r.lat_p99_us,
    server_cpu_s: r.server_window_cpu_s,
    per_server_cpu_s: r.server_window_cpu_s > 0 ? count / r.server_window_cpu_s : NaN,
    server_core_busy: serverBusy,
    per_server_core_s: serverBusy > 0 ? count / (serverBusy * r.window_s) : NaN,
    server_rss_kb: r.window_end.server_rss_kb,
    losses: r.losses + r.out_of_order,
    loadgen_cpu_frac: r.window_cpu_frac,
    loadgen_core_busy: loadgenBusy,
    other_load_server_core: other(
      serverBusy,
      r.window_core_irq[Number(SERVER_CPU)],
      r.server_window_cpu_s / r.window_s,
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

function idleVariant(scenario: "c" | "d"): Variant {
  return {
    id: scenario,
    scenario,
    title: scenario === "c"
      ? "(c) 10,000 idle connections: RSS growth per connection, time to connect all"
      : "(d) ours: max idle connections + per-connection memory model",
    serverMode: "echo",
    oursOnly: scenario === "d",
    conns: (o) => scenario === "c" ? o.idleConns : o.maxConns,
    loadgenArgs: (o) => [
      "--mode",
      "idle",
      "--conns",
      String(scenario === "c" ? o.idleConns : o.maxConns),
      "--hold",
      String(o.hold),
      "--settle",
      "1",
    ],
    timeoutS: (o) => 200 + o.hold,
    metrics: idleMetrics,
  };
}

function variantsFor(o: Options): Variant[] {
  const v: Variant[] = [];
  for (const s of o.scenarios) {
    if (s === "a") v.push(echoVariant(32, "32B"), echoVariant(1024, "1KiB"));
    if (s === "b") {
      v.push({
        id: "b",
        scenario: "b",
        title: "(b) broadcast, 1 publisher x 32 in flight -> 1,000 subscribers, 64 B",
        serverMode: "broadcast",
        oursOnly: false,
        conns: () => 1001,
        loadgenArgs: (o) => [
          "--mode",
          "broadcast",
          "--conns",
          "1000",
          "--size",
          "64",
          "--inflight",
          "32",
          "--warmup",
          String(o.warmup),
          "--duration",
          String(o.duration),
        ],
        timeoutS: (o) => 150 + o.warmup + o.duration,
        metrics: (r) => throughputMetrics(r, r.deliveries),
      });
    }
    if (s === "c") v.push(idleVariant("c"));
    if (s === "d") v.push(idleVariant("d"));
  }
  return v;
}

// ------------------------------------------------------------------------------------- runs

interface RunRecord {
  variant: string;
  server: string;
  round: number;
  ok: boolean;
  /** Reasons this run's numbers are not trustworthy (empty = valid). */
  invalid: string[];
  error?: string;
  metrics: Record<string, number>;
  server_pid?: number;
  server_comm?: string;
  server_port?: number;
  loadgen?: LoadgenResult;
  /** Last lines the loadgen printed on stderr (progress, first protocol errors). */
  loadgen_stderr?: string[];
  /** 1 + number of re-runs because other processes disturbed the measurement. */
  attempt?: number;
  waited_for_quiet_s?: number;
}

function invalidReasons(r: LoadgenResult, m: Record<string, number>): string[] {
  const why: string[] = [];
  if (Math.max(m.other_load_server_core ?? 0, m.other_load_loadgen_core ?? 0) > OTHER_LOAD_MAX) {
    why.push("OTHER-LOAD-ON-CPUS");
  }
  if (r.window_s > 0 && r.window_cpu_frac >= LOADGEN_SATURATED) why.push("LOADGEN-SATURATED");
  if (r.failed_conns > 0 || r.connected < r.conns) why.push("CONNECT-FAILED");
  if (r.losses > 0 || r.out_of_order > 0) why.push("LOSSES");
  if (r.bad_payload > 0) why.push("CORRUPT-PAYLOAD");
  if (r.protocol_errors > 0) why.push("PROTOCOL-ERROR");
  if (r.unexpected_closes > 0) why.push("SERVER-CLOSED-CONNS");
  if (r.never_received > 0) why.push("SUBSCRIBER-GOT-NOTHING");
  if (r.error) why.push(`LOADGEN: ${r.error}`);
  return why;
}

async function runOne(v: Variant, def: ServerDef, round: number, o: Options): Promise<RunRecord> {
  const rec: RunRecord = {
    variant: v.id,
    server: def.name,
    round,
    ok: false,
    invalid: [],
    metrics: {},
  };
  let server: RunningServer | undefined;
  try {
    server = await startServer(def, v.serverMode);
    rec.server_pid = server.pid;
    rec.server_comm = server.comm;
    rec.server_port = server.port;
    if (["bash", "sh", "taskset"].includes(server.comm)) {
      rec.invalid.push(`PID-IS-WRAPPER(${server.comm})`);
    }
    await sleep(1000); // settle: RSS baseline is taken after listening + 1 s
    const args = [
      ...v.loadgenArgs(o),
      "--port",
      String(server.port),
      "--pid",
      String(server.pid),
    ];
    const stderrTail: string[] = [];
    rec.loadgen_stderr = stderrTail;
    const r = await runLoadgen(args, v.timeoutS(o), stderrTail);
    rec.loadgen = r;
    rec.metrics = v.metrics(r);
    rec.invalid.push(...invalidReasons(r, rec.metrics));
    if (server.exited()) {
      rec.invalid.push("SERVER-CRASHED");
      rec.error = `server exited (code ${server.exitCode()}) during the run\n${server.err.tail()}`;
    }
    rec.ok = true;
  } catch (e) {
    rec.error = e instanceof Error ? e.message : String(e);
    if (server?.exited()) rec.invalid.push("SERVER-CRASHED");
    rec.invalid.push("FAILED");
  } finally {
    if (server) await stopProcess(server.child, server.exited);
  }
  return rec;
}

function describe(rec: RunRecord, v: Variant): string {
  if (!rec.ok) return `FAILED: ${rec.error?.split("\n")[0]}`;
  const m = rec.metrics;
  const lg = rec.loadgen;
  const flags = rec.invalid.length ? `  [${rec.invalid.join(", ")}]` : "";
  if (v.scenario === "a" || v.scenario === "b") {
    const main = v.scenario === "a"
      ? `${fmtInt(m.msgs_per_s)} msgs/s`
      : `${fmtInt(m.deliveries_per_s)} deliveries/s (${fmtInt(m.msgs_per_s)} msgs/s)`;
    return `${main}, p50 ${fmtUs(m.lat_p50_us)} p99 ${fmtUs(m.lat_p99_us)}, ` +
      `server cpu ${m.server_cpu_s.toFixed(2)} s, rss ${fmtMiB(m.server_rss_kb)}, ` +
      `loadgen cpu ${pct(m.loadgen_cpu_frac)}, other load on cpu${SERVER_CPU}/cpu${LOADGEN_CPU} ` +
      `${pct(m.other_load_server_core)}/${pct(m.other_load_loadgen_core)}${flags}`;
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
    flags: [...counts].map(([f, n]) => `${f} ${n}/${runs.length}`),
    stats,
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

function renderVariant(v: Variant, sums: Summary[]): string {
  const g = (s: Summary, k: string) => s.stats[k]?.median ?? NaN;
  if (v.scenario === "a" || v.scenario === "b") {
    const key = v.scenario === "a" ? "msgs_per_s" : "deliveries_per_s";
    const unit = v.scenario === "a" ? "msgs/s" : "deliveries/s";
    return table(
      [
        "server",
        `${unit} (median)`,
        "min – max",
        `per server-CPU-s`,
        "server core busy",
        "p50",
        "p99",
        "server RSS",
        ...(v.scenario === "b" ? ["losses"] : []),
        "loadgen CPU",
        "runs valid",
        "flags",
      ],
      sums.map((s) => [
        s.server,
        fmtInt(g(s, key)),
        range(s.stats[key], fmtInt),
        fmtInt(g(s, "per_server_cpu_s")),
        pct(g(s, "server_core_busy")),
        fmtUs(g(s, "lat_p50_us")),
        fmtUs(g(s, "lat_p99_us")),
        fmtMiB(g(s, "server_rss_kb")),
        ...(v.scenario === "b" ? [fmtInt(g(s, "losses"))] : []),
        pct(g(s, "loadgen_cpu_frac")),
        `${s.valid_runs}/${s.runs}`,
        flagCell(s),
      ]),
    );
  }
  if (v.scenario === "c") {
    return table(
      [
        "server",
        "RSS/conn (median)",
        "min – max",
        "connect all (median)",
        "min – max",
        "RSS before -> after",
        "kernel/conn (server est.)",
        "runs valid",
        "flags",
      ],
      sums.map((s) => [
        s.server,
        fmtBytes(g(s, "user_bytes_per_conn")),
        range(s.stats.user_bytes_per_conn, fmtBytes),
        `${g(s, "connect_time_s").toFixed(2)} s`,
        range(s.stats.connect_time_s, (x) => `${x.toFixed(2)} s`),
        `${fmtMiB(g(s, "rss_before_kb"))} -> ${fmtMiB(g(s, "rss_after_kb"))}`,
        fmtBytes(g(s, "kernel_bytes_per_conn_server")),
        `${s.valid_runs}/${s.runs}`,
        flagCell(s),
      ]),
    );
  }
  return table(
    [
      "server",
      "conns",
      "connect all",
      "user B/conn",
      "kernel B/conn (both ends)",
      "kernel B/conn (server est.)",
      "total B/conn",
      "@100k conns",
      "@1M conns",
      "flags",
    ],
    sums.map((s) => {
      const total = g(s, "total_bytes_per_conn_server");
      return [
        s.server,
        fmtInt(g(s, "connected")),
        `${g(s, "connect_time_s").toFixed(2)} s`,
        fmtBytes(g(s, "user_bytes_per_conn")),
        fmtBytes(g(s, "kernel_bytes_per_conn_both_ends")),
        fmtBytes(g(s, "kernel_bytes_per_conn_server")),
        fmtBytes(total),
        fmtBytes(total * 1e5),
        fmtBytes(total * 1e6),
        flagCell(s),
      ];
    }),
  );
}

/** Ratios of ours vs Deno built-in and vs Bun for each variant's headline metric. */
function ratios(v: Variant, sums: Summary[]): string[] {
  const key = v.scenario === "a"
    ? "msgs_per_s"
    : v.scenario === "b"
    ? "deliveries_per_s"
    : "user_bytes_per_conn";
  const what = v.scenario === "a"
    ? "msgs/s"
    : v.scenario === "b"
    ? "deliveries/s"
    : "RSS per connection (lower is better)";
  const by = new Map(sums.map((s) => [s.server, s]));
  const out: string[] = [];
  for (const s of sums.filter((s) => SERVERS[s.server].ours)) {
    const ours = s.stats[key]?.median;
    const parts: string[] = [];
    for (const other of ["deno", "bun"]) {
      const os = by.get(other);
      const o = os?.stats[key]?.median;
      if (ours !== undefined && o !== undefined && Number.isFinite(ours) && o > 0) {
        const bad = s.from_invalid_runs || os?.from_invalid_runs ? " (from INVALID runs)" : "";
        parts.push(`${(ours / o).toFixed(2)}x ${other}${bad}`);
      }
    }
    if (parts.length) out.push(`  ${s.server} ${what}: ${parts.join(", ")}`);
  }
  return out;
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
  await ensureLoadgen();
  await ensureDeps(o.servers);
  const machine = await machineInfo();
  const started = new Date();
  console.log(
    `fdws bench: scenarios ${o.scenarios.join(",")}, servers ${o.servers.join(",")}, ` +
      `${o.rounds} round(s), ${o.warmup} s warmup + ${o.duration} s window`,
  );
  console.log(
    `machine: ${machine.nproc} CPUs (${machine.cpu_model}), kernel ${Deno.osRelease()}, ` +
      `deno ${machine.deno}, node ${machine.node}, bun ${machine.bun || "-"}`,
  );

  const unavailable: Record<string, string> = {};
  for (const s of o.servers) {
    const why = SERVERS[s].unavailable();
    if (why) {
      unavailable[s] = why;
      console.log(`skipping ${s}: ${why}`);
    }
  }
  const runnable = o.servers.filter((s) => !unavailable[s]);
  const runs: RunRecord[] = [];
  const discarded: RunRecord[] = []; // attempts disturbed by other processes, then re-run
  const summaries: Summary[] = [];
  const report: string[] = [];
  const variants = variantsFor(o);

  for (const v of variants) {
    const tooMany = runnable.filter((s) => (SERVERS[s].maxConns ?? Infinity) < v.conns(o));
    const servers = runnable.filter((s) =>
      (!v.oursOnly || SERVERS[s].ours) && !tooMany.includes(s)
    );
    const skipped = tooMany.length
      ? `(not run: ${tooMany.join(", ")} cannot hold ${v.conns(o)} connections)`
      : "";
    if (skipped) console.log(`\n${skipped}`);
    if (!servers.length) {
      report.push(`\n### ${v.title}\n(no runnable server for this scenario)`);
      continue;
    }
    console.log(`\n== ${v.title}`);
    for (let round = 1; round <= o.rounds; round++) {
      // rotate the starting server each round so no server always runs first/last
      const order = servers.map((_, i) => servers[(i + round - 1) % servers.length]);
      for (const s of order) {
        let rec: RunRecord;
        let attempt = 0;
        for (;;) {
          const waited = o.quietWait > 0 ? await waitQuiet(o.quietWait) : 0;
          rec = await runOne(v, SERVERS[s], round, o);
          rec.waited_for_quiet_s = Math.round(waited * 10) / 10;
          rec.attempt = ++attempt;
          if (!rec.invalid.includes("OTHER-LOAD-ON-CPUS") || attempt > o.retries) break;
          discarded.push(rec);
          console.log(
            `  [${v.id} round ${round}/${o.rounds}] ${s.padEnd(11)} disturbed by ` +
              `other processes (${describe(rec, v)}), retrying`,
          );
        }
        runs.push(rec);
        console.log(`  [${v.id} round ${round}/${o.rounds}] ${s.padEnd(11)} ${describe(rec, v)}`);
        if (rec.error) {
          console.log(indent(rec.ok ? rec.error : rec.error.split("\n").slice(1).join("\n")));
        }
        await sleep(500);
      }
    }
    const sums = servers.map((s) =>
      summarize(v, s, runs.filter((r) => r.variant === v.id && r.server === s))
    );
    summaries.push(...sums);
    report.push(`\n### ${v.title}`, renderVariant(v, sums), ...ratios(v, sums));
    if (skipped) report.push(skipped);
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

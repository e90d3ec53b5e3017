/**
 * Our server under the benchmark contract:
 *
 *   deno run --allow-ffi --allow-read bench/server.ts --port P --mode echo|broadcast
 *     [--poller epoll|select] [--cert FILE --key FILE] [--deflate[=shared|dedicated]]
 *     [--workers N] [--redis redis://HOST:PORT] [--stats-interval MS]
 *
 * echo: every message is sent back. broadcast: every message from any client goes to all
 * connected clients (the sender included) through the manager's broadcast; with --workers or
 * --redis, to every client of every worker and process. Heartbeats and idle timeouts are off;
 * binary stays binary. Prints `listening` when ready.
 *
 * Capabilities (each passed to `serve()` under the option name shown; a build whose
 * `ServeOptions` lacks the option exits 2 with "not supported by this build"):
 *   --cert FILE --key FILE   TLS (wss://): `cert`, `key` as PEM text read from the files
 *   --deflate[=MODE]         permessage-deflate: `perMessageDeflate` (true, or "shared" /
 *                            "dedicated"), accepting every valid offer
 *   --workers N              `workers: N` (N managers, one per worker thread, one process)
 *   --redis URL              Redis backplane: `redis: URL`
 *   --stats-interval MS      every MS ms print one line `stats {json}` on stdout with
 *                            Deno.memoryUsage() and connection counters (for the soak); run
 *                            with --v8-flags=--expose-gc, it also reports the live heap after a
 *                            full collection (`heapLive`), which a GC sawtooth does not blur
 *
 * @module
 */

import { type PollerKind, serve, type ServeOptions } from "../mod.ts";
import { parseFlags } from "../examples/flags.ts";

/**
 * Whether this build's `ServeOptions` has option `K`. Each `SUPPORTS_*` constant below must
 * equal it (`deno check` fails otherwise), so the runtime guard cannot drift from the type:
 * when an option lands in `ServeOptions`, flip its constant to `true`.
 */
type Has<K extends string> = K extends keyof ServeOptions ? true : false;
const SUPPORTS_TLS: Has<"cert"> = false;
const SUPPORTS_DEFLATE: Has<"perMessageDeflate"> = false;
const SUPPORTS_WORKERS: Has<"workers"> = false;
const SUPPORTS_REDIS: Has<"redis"> = false;

// `--deflate` is a switch (parseFlags reads `--name value` pairs): taken out first.
const args: string[] = [];
let deflate: "" | "true" | "shared" | "dedicated" = "";
for (const a of Deno.args) {
  if (a === "--deflate") deflate = "true";
  else if (a.startsWith("--deflate=")) {
    const m = a.slice("--deflate=".length);
    if (m !== "shared" && m !== "dedicated" && m !== "true") {
      console.error(`unknown --deflate mode ${m}: use shared or dedicated`);
      Deno.exit(2);
    }
    deflate = m;
  } else args.push(a);
}

const values = parseFlags(args, {
  port: "9001",
  hostname: "127.0.0.1",
  mode: "echo",
  poller: "",
  cert: "",
  key: "",
  workers: "",
  redis: "",
  "stats-interval": "",
});

if (values.mode !== "echo" && values.mode !== "broadcast") {
  console.error(`unknown --mode ${values.mode}: use echo or broadcast`);
  Deno.exit(2);
}
const broadcast = values.mode === "broadcast";

function unsupported(what: string): never {
  console.error(`${what}: not supported by this build`);
  Deno.exit(2);
}

/** Options beyond the plain contract, keyed by their `ServeOptions` names. */
const capabilities: Record<string, unknown> = {};
if (values.cert || values.key) {
  if (!values.cert || !values.key) {
    console.error("--cert and --key go together");
    Deno.exit(2);
  }
  if (!SUPPORTS_TLS) unsupported("--cert/--key (TLS, serve({ cert, key }))");
  capabilities.cert = Deno.readTextFileSync(values.cert);
  capabilities.key = Deno.readTextFileSync(values.key);
}
if (deflate) {
  if (!SUPPORTS_DEFLATE) unsupported("--deflate (serve({ perMessageDeflate }))");
  capabilities.perMessageDeflate = deflate === "true" ? true : deflate;
}
if (values.workers) {
  const n = Number(values.workers);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--workers ${values.workers}: a positive integer`);
    Deno.exit(2);
  }
  if (!SUPPORTS_WORKERS) unsupported("--workers (serve({ workers }))");
  capabilities.workers = n;
}
if (values.redis) {
  if (!/^rediss?:\/\/[^/]+/.test(values.redis)) {
    console.error(`--redis ${values.redis}: expected redis://HOST:PORT`);
    Deno.exit(2);
  }
  if (!SUPPORTS_REDIS) unsupported("--redis (serve({ redis }))");
  capabilities.redis = values.redis;
}
const statsInterval = values["stats-interval"] ? Number(values["stats-interval"]) : 0;
if (!(statsInterval >= 0)) {
  console.error(`--stats-interval ${values["stats-interval"]}: milliseconds`);
  Deno.exit(2);
}

const options: ServeOptions = {
  hostname: values.hostname,
  port: Number(values.port),
  poller: (values.poller || undefined) as PollerKind | undefined,
  backlog: 4096,
  pingInterval: 0,
  idleTimeout: 0,
  handshakeTimeout: 60_000,
  signals: true,
  websocket: {
    message: broadcast
      ? (_ws, data) => {
        server.manager.broadcast(data as string | Uint8Array);
      }
      : (ws, data) => {
        ws.send(data as string | Uint8Array);
      },
  },
};
const server = serve({ ...options, ...capabilities } as ServeOptions);

if (statsInterval > 0) {
  // One JSON object per line, parsed by bench/soak.ts; RSS and heap come from the same call.
  const gc = (globalThis as { gc?: () => void }).gc;
  setInterval(() => {
    const m = Deno.memoryUsage();
    gc?.();
    const live = gc ? Deno.memoryUsage().heapUsed : -1;
    const s = server.manager.stats;
    console.log(`stats ${
      JSON.stringify({
        t: Date.now(),
        rss: m.rss,
        heapTotal: m.heapTotal,
        heapUsed: m.heapUsed,
        heapLive: live,
        external: m.external,
        conns: server.manager.size,
        opened: s.opened,
        messagesIn: s.messagesIn,
        messagesOut: s.messagesOut,
        slowConsumers: s.slowConsumers,
        protocolErrors: s.protocolErrors,
      })
    }`);
  }, statsInterval);
}

console.log(
  `fdws ${values.mode} server listening on ${server.hostname}:${server.port} (${server.manager.poller.kind})`,
);

/**
 * Our server under the benchmark contract:
 *
 *   deno run --allow-ffi --allow-read bench/server.ts --port P --mode echo|broadcast
 *     [--poller epoll|select] [--cert FILE --key FILE] [--deflate[=shared|dedicated]]
 *     [--workers N] [--redis redis://HOST:PORT] [--worker-transport ring|messages]
 *     [--stats-interval MS] [--message-buffers borrowed|owned] [--heap-trim-interval MS]
 *
 * echo: every message is sent back. broadcast: every message from any client goes to all
 * connected clients (the sender included): through the manager's broadcast on one thread;
 * with `--workers` or `--redis` every client is subscribed to one topic and each message is
 * published to it, so that it reaches the clients of every worker and every process.
 * Heartbeats and idle timeouts are off; binary stays binary. Prints `listening` when ready
 * (once, when every worker listens).
 *
 *   --cert FILE --key FILE   serve wss:// (TLS through OpenSSL)
 *   --deflate[=MODE]         permessage-deflate, accepting every valid offer ("shared" by
 *                            default, or "dedicated")
 *   --workers N              N managers, one per worker thread, in one process
 *   --redis URL              a Redis backplane: topics across processes and hosts
 *   --message-buffers B      "borrowed" (default): handlers get views of reused buffers, as
 *                            they only pass each message on at once; "owned": a fresh copy
 *                            per message (the library's default)
 *   --heap-trim-interval MS  the manager's `heapTrimInterval` (default: the library's, 1000;
 *                            0 turns trimming off)
 *   --stats-interval MS      every MS ms one line `stats {json}` on stdout with
 *                            Deno.memoryUsage() and connection counters (for the soak); run
 *                            with --v8-flags=--expose-gc it also reports the live heap after a
 *                            full collection (`heapLive`), which a GC sawtooth does not blur
 *
 * @module
 */

import {
  type PollerKind,
  redisBackplane,
  serve,
  type ServeOptions,
  type WorkersTransport,
} from "../mod.ts";
import { workerIndex } from "../server/cluster/role.ts";
import { parseFlags } from "../examples/flags.ts";

// `--deflate` is a switch that may carry a mode: taken out first.
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
  workers: "0",
  redis: "",
  "worker-transport": "ring",
  "stats-interval": "",
  "message-buffers": "borrowed",
  "heap-trim-interval": "",
});

if (values.mode !== "echo" && values.mode !== "broadcast") {
  console.error(`unknown --mode ${values.mode}: use echo or broadcast`);
  Deno.exit(2);
}
if ((values.cert === "") !== (values.key === "")) {
  console.error("--cert and --key go together");
  Deno.exit(2);
}
const broadcast = values.mode === "broadcast";
const workers = Number(values.workers);
if (!Number.isInteger(workers) || workers < 0) {
  console.error(`--workers ${values.workers}: a positive integer`);
  Deno.exit(2);
}
const messageBuffers = values["message-buffers"];
if (messageBuffers !== "borrowed" && messageBuffers !== "owned") {
  console.error(`unknown --message-buffers ${messageBuffers}: use borrowed or owned`);
  Deno.exit(2);
}
const heapTrimInterval = values["heap-trim-interval"] === ""
  ? undefined
  : Number(values["heap-trim-interval"]);
if (heapTrimInterval !== undefined && !(heapTrimInterval >= 0)) {
  console.error(`--heap-trim-interval ${values["heap-trim-interval"]}: milliseconds`);
  Deno.exit(2);
}
const statsInterval = values["stats-interval"] ? Number(values["stats-interval"]) : 0;
if (!(statsInterval >= 0)) {
  console.error(`--stats-interval ${values["stats-interval"]}: milliseconds`);
  Deno.exit(2);
}
const viaTopic = workers > 0 || values.redis !== "";
const TOPIC = "all";

const options: ServeOptions = {
  hostname: values.hostname,
  port: Number(values.port),
  poller: (values.poller || undefined) as PollerKind | undefined,
  backlog: 4096,
  pingInterval: 0,
  idleTimeout: 0,
  handshakeTimeout: 60_000,
  messageBuffers,
  heapTrimInterval,
  signals: true,
  workers: workers > 0 ? workers : undefined,
  workerBackplane: { transport: values["worker-transport"] as WorkersTransport },
  backplane: values.redis === "" ? undefined : redisBackplane({ url: values.redis }),
  websocket: {
    open: broadcast && viaTopic ? (ws) => ws.subscribe(TOPIC) : undefined,
    message: !broadcast
      ? (ws, data) => {
        ws.send(data);
      }
      : viaTopic
      ? (ws, data) => {
        ws.manager!.publish(TOPIC, data as string | Uint8Array);
      }
      : (_ws, data) => {
        server.manager.broadcast(data as string | Uint8Array);
      },
  },
};
if (values.cert !== "") {
  options.cert = Deno.readTextFileSync(values.cert);
  options.key = Deno.readTextFileSync(values.key);
}
if (deflate !== "") {
  options.perMessageDeflate = deflate === "true" ? true : { mode: deflate };
}
const server = serve(options);

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
        heapTrims: s.heapTrims,
        heapTrimSeconds: s.heapTrimSeconds,
      })
    }`);
  }, statsInterval);
}

if (workerIndex() === null) {
  await server.workers?.ready;
  const scale = workers > 0 ? `, ${workers} workers` : "";
  const tls = values.cert !== "" ? ", tls" : "";
  const zip = deflate !== "" ? ", deflate" : "";
  console.log(
    `fdws ${values.mode} server listening on ${server.hostname}:${server.port} ` +
      `(${server.manager.poller.kind}${scale}${values.redis === "" ? "" : ", redis"}${tls}${zip})`,
  );
}

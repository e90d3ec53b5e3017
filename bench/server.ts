/**
 * Our server under the benchmark contract:
 *
 *   deno run --allow-ffi --allow-read bench/server.ts --port P --mode echo|broadcast
 *     [--poller epoll|select] [--workers N] [--redis redis://HOST:PORT]
 *     [--worker-transport ring|messages]
 *
 * echo: every message is sent back. broadcast: every message from any client goes to all
 * connected clients (the sender included): through the manager's broadcast on one thread;
 * with `--workers` or `--redis` every client is subscribed to one topic and each message
 * is published to it, so that it reaches the clients of every worker and every process.
 * Heartbeats and idle timeouts are off; binary stays binary. Prints `listening` when ready
 * (once, when every worker listens).
 *
 * @module
 */

import { type PollerKind, redisBackplane, serve, type WorkersTransport } from "../mod.ts";
import { workerIndex } from "../server/cluster/role.ts";
import { parseFlags } from "../examples/flags.ts";

const values = parseFlags(Deno.args, {
  port: "9001",
  hostname: "127.0.0.1",
  mode: "echo",
  poller: "",
  workers: "0",
  redis: "",
  "worker-transport": "ring",
});

if (values.mode !== "echo" && values.mode !== "broadcast") {
  console.error(`unknown --mode ${values.mode}: use echo or broadcast`);
  Deno.exit(2);
}
const broadcast = values.mode === "broadcast";
const workers = Number(values.workers);
const viaTopic = workers > 0 || values.redis !== "";
const TOPIC = "all";

const server = serve({
  hostname: values.hostname,
  port: Number(values.port),
  poller: (values.poller || undefined) as PollerKind | undefined,
  backlog: 4096,
  pingInterval: 0,
  idleTimeout: 0,
  handshakeTimeout: 60_000,
  signals: true,
  workers: workers > 0 ? workers : undefined,
  workerBackplane: { transport: values["worker-transport"] as WorkersTransport },
  backplane: values.redis === "" ? undefined : redisBackplane({ url: values.redis }),
  websocket: {
    open: broadcast && viaTopic ? (ws) => ws.subscribe(TOPIC) : undefined,
    message: !broadcast
      ? (ws, data) => {
        ws.send(data as string | Uint8Array);
      }
      : viaTopic
      ? (ws, data) => {
        ws.manager!.publish(TOPIC, data as string | Uint8Array);
      }
      : (_ws, data) => {
        server.manager.broadcast(data as string | Uint8Array);
      },
  },
});

if (workerIndex() === null) {
  await server.workers?.ready;
  const scale = workers > 0 ? `, ${workers} workers` : "";
  console.log(
    `fdws ${values.mode} server listening on ${server.hostname}:${server.port} ` +
      `(${server.manager.poller.kind}${scale}${values.redis === "" ? "" : ", redis"})`,
  );
}

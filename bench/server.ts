/**
 * Our server under the benchmark contract:
 *
 *   deno run --allow-ffi bench/server.ts --port P --mode echo|broadcast [--poller epoll|select]
 *
 * echo: every message is sent back. broadcast: every message from any client goes to all
 * connected clients (the sender included) through the manager's broadcast. Heartbeats
 * and idle timeouts are off; binary stays binary. Prints `listening` when ready.
 *
 * @module
 */

import { type PollerKind, serve } from "../mod.ts";
import { parseFlags } from "../examples/flags.ts";

const values = parseFlags(Deno.args, {
  port: "9001",
  hostname: "127.0.0.1",
  mode: "echo",
  poller: "",
});

if (values.mode !== "echo" && values.mode !== "broadcast") {
  console.error(`unknown --mode ${values.mode}: use echo or broadcast`);
  Deno.exit(2);
}
const broadcast = values.mode === "broadcast";

const server = serve({
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
});

console.log(
  `fdws ${values.mode} server listening on ${server.hostname}:${server.port} (${server.manager.poller.kind})`,
);

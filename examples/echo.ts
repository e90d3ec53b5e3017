/**
 * Echo server: echoes every text and binary message on any path.
 *
 *   deno run --allow-ffi examples/echo.ts --port 9001 [--hostname H] [--poller epoll|kqueue|select]
 *
 * Prints a line containing `listening` when ready; SIGINT/SIGTERM close every client with
 * 1001 and exit 0.
 *
 * @module
 */

import { type PollerKind, serve } from "../mod.ts";
import { parseFlags } from "./flags.ts";

const values = parseFlags(Deno.args, {
  port: "9001",
  hostname: "127.0.0.1",
  poller: "",
});

const server = serve({
  hostname: values.hostname,
  port: Number(values.port),
  poller: (values.poller || undefined) as PollerKind | undefined,
  maxMessageSize: 64 * 1024 * 1024,
  signals: true,
  websocket: {
    message(ws, data) {
      ws.send(data as string | Uint8Array);
    },
  },
});

console.log(
  `echo server listening on ${server.hostname}:${server.port} (${server.manager.poller.kind})`,
);

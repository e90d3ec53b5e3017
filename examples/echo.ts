/**
 * Echo server: echoes every text and binary message on any path.
 *
 *   deno run --allow-ffi --allow-read examples/echo.ts --port 9001 [--hostname H]
 *     [--poller epoll|kqueue|select] [--cert FILE --key FILE] [--deflate]
 *
 * With `--cert` and `--key` it serves `wss://` (TLS through OpenSSL); with `--deflate` it
 * accepts every valid permessage-deflate offer. Prints a line containing `listening` when
 * ready; SIGINT/SIGTERM close every client with 1001 and exit 0.
 *
 * @module
 */

import { type PollerKind, serve } from "../mod.ts";
import { parseFlags } from "./flags.ts";

const values = parseFlags(Deno.args, {
  port: "9001",
  hostname: "127.0.0.1",
  poller: "",
  cert: "",
  key: "",
  deflate: false,
});

const server = serve({
  hostname: values.hostname,
  port: Number(values.port),
  poller: (values.poller || undefined) as PollerKind | undefined,
  maxMessageSize: 64 * 1024 * 1024,
  signals: true,
  ...(values.cert !== "" || values.key !== "" ? { cert: values.cert, key: values.key } : {}),
  ...(values.deflate ? { perMessageDeflate: true } : {}),
  websocket: {
    message(ws, data) {
      ws.send(data);
    },
  },
});

console.log(`echo server listening on ${server.url} (${server.manager.poller.kind})`);

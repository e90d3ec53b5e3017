// Competitor server: Node.js + the `ws` package (installed by bench/run.ts into bench/.deps).
//
// Usage: node bench/servers/node_ws.mjs --port P --mode echo|broadcast [--deflate]
// Prints a line containing `listening` when ready. --deflate: `perMessageDeflate` on with
// threshold 0 (ws's default threshold, 1 KiB, would leave the benchmark's messages
// uncompressed); ws compresses each send separately, broadcast included.
//
// `ws` is loaded with createRequire() rooted in bench/.deps so that this file needs no
// node_modules next to it and Deno's module graph (deno check/lint) never sees a bare specifier.
import { createRequire } from "node:module";
import process from "node:process";

const require = createRequire(new URL("../.deps/package.json", import.meta.url));
const { WebSocketServer, WebSocket } = require("ws");

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = Number(flag("port", "8080"));
const mode = flag("mode", "echo");
if (mode !== "echo" && mode !== "broadcast") {
  console.error(`unknown --mode ${mode}`);
  process.exit(2);
}

const deflate = process.argv.includes("--deflate");
const wss = new WebSocketServer({
  host: "127.0.0.1",
  port,
  perMessageDeflate: deflate ? { threshold: 0 } : false,
});

wss.on("connection", (ws) => {
  if (mode === "echo") {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  } else {
    ws.on("message", (data, isBinary) => {
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
      }
    });
  }
  ws.on("error", () => {});
});

wss.on("listening", () => console.log(`node_ws listening on 127.0.0.1:${port}`));

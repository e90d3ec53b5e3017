/**
 * Competitor server: `Bun.serve` with its built-in (uWebSockets-based) WebSocket support.
 *
 * Usage: bun bench/servers/bun_server.ts --port P --mode echo|broadcast
 *          [--cert FILE --key FILE] [--deflate]
 * Prints a line containing `listening` when ready.
 *
 * Broadcast uses pub/sub topics: every socket subscribes to "all" and each message is
 * published with `server.publish` (the server-level publish also reaches the sender;
 * `ws.publish` would skip it). Idle timeout off. Compression off unless --deflate: then
 * `perMessageDeflate: true` and every send/publish asks for compression (Bun compresses only
 * when asked; a publish is compressed once for all subscribers). --cert/--key: TLS (`tls`).
 *
 * This file is run by Bun but also type-checked and linted by Deno (`deno check bench/`).
 * Instead of `@ts-nocheck`, the few Bun APIs it uses are declared below (a minimal subset
 * of bun-types), so the file stays type-checked.
 */

interface BunServerWebSocket {
  send(data: string | ArrayBufferView | ArrayBuffer, compress?: boolean): number;
  subscribe(topic: string): void;
}

interface BunServer {
  upgrade(req: Request): boolean;
  publish(topic: string, data: string | ArrayBufferView | ArrayBuffer, compress?: boolean): number;
  readonly port: number;
}

interface BunServeOptions {
  hostname: string;
  port: number;
  tls?: { cert: string; key: string };
  fetch(req: Request, server: BunServer): Response | undefined;
  websocket: {
    perMessageDeflate: boolean;
    idleTimeout: number;
    maxPayloadLength: number;
    open(ws: BunServerWebSocket): void;
    message(ws: BunServerWebSocket, message: string | Uint8Array): void;
  };
}

declare const Bun: {
  argv: string[];
  serve(options: BunServeOptions): BunServer;
  file(path: string): { text(): Promise<string> };
};
declare const process: { exit(code: number): never };

function flag(name: string, fallback: string): string {
  const i = Bun.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Bun.argv.length ? Bun.argv[i + 1] : fallback;
}

const port = Number(flag("port", "8080"));
const mode = flag("mode", "echo");
if (mode !== "echo" && mode !== "broadcast") {
  console.error(`unknown --mode ${mode}`);
  process.exit(2);
}

const certFile = flag("cert", "");
const keyFile = flag("key", "");
const deflate = Bun.argv.includes("--deflate");
const tls = certFile && keyFile
  ? { cert: await Bun.file(certFile).text(), key: await Bun.file(keyFile).text() }
  : undefined;

const server: BunServer = Bun.serve({
  hostname: "127.0.0.1",
  port,
  tls,
  fetch(req, srv) {
    if (srv.upgrade(req)) return undefined;
    return new Response("websocket only", { status: 426 });
  },
  websocket: {
    perMessageDeflate: deflate,
    idleTimeout: 0,
    maxPayloadLength: 16 * 1024 * 1024,
    open(ws) {
      if (mode === "broadcast") ws.subscribe("all");
    },
    message(ws, message) {
      if (mode === "echo") ws.send(message, deflate);
      else server.publish("all", message, deflate);
    },
  },
});

console.log(`bun_server listening on 127.0.0.1:${server.port}${tls ? " (tls)" : ""}`);

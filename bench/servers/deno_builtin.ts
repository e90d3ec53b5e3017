/**
 * Competitor server: Deno's built-in HTTP server + `Deno.upgradeWebSocket`.
 *
 * Usage: deno run --allow-net --allow-read bench/servers/deno_builtin.ts --port P
 *          --mode echo|broadcast [--cert FILE --key FILE]
 * Prints a line containing `listening` when ready. --cert/--key: TLS (`Deno.serve({ cert, key })`).
 * Deno's WebSocket server does not negotiate permessage-deflate.
 */

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : fallback;
}

const port = Number(flag("port", "8080"));
const mode = flag("mode", "echo");
if (mode !== "echo" && mode !== "broadcast") {
  console.error(`unknown --mode ${mode}`);
  Deno.exit(2);
}

const sockets = new Set<WebSocket>();

function onMessage(socket: WebSocket, data: string | ArrayBuffer): void {
  if (mode === "echo") {
    socket.send(data);
    return;
  }
  for (const s of sockets) {
    if (s.readyState === WebSocket.OPEN) s.send(data);
  }
}

const certFile = flag("cert", "");
const keyFile = flag("key", "");
const tls = certFile && keyFile
  ? { cert: Deno.readTextFileSync(certFile), key: Deno.readTextFileSync(keyFile) }
  : {};

Deno.serve({
  hostname: "127.0.0.1",
  port,
  ...tls,
  onListen: ({ hostname, port }) => console.log(`deno_builtin listening on ${hostname}:${port}`),
}, (req) => {
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("websocket only", { status: 426 });
  }
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => sockets.add(socket);
  socket.onmessage = (e: MessageEvent<string | ArrayBuffer>) => onMessage(socket, e.data);
  socket.onclose = () => sockets.delete(socket);
  socket.onerror = () => sockets.delete(socket);
  return response;
});

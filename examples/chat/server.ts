/**
 * Chat demo: `deno task demo`, then open http://127.0.0.1:8000/ in two browser windows.
 *
 * People pick a name and a room, see who is online and exchange messages; rooms map to
 * topics of the manager, so a message is encoded once and published to the room.
 *
 *   deno run --allow-ffi --allow-read examples/chat/server.ts [--port 8000]
 *     [--hostname H] [--poller epoll|kqueue|select] [--cert FILE --key FILE] [--deflate]
 *     [--quiet]
 *
 * With `--cert` and `--key` the page is served over https and the chat over wss; with
 * `--deflate` messages are compressed for browsers that offer permessage-deflate (all do).
 *
 * @module
 */

import { type PollerKind, serve, type WebSocket } from "../../mod.ts";
import { parseFlags } from "../flags.ts";

const values = parseFlags(Deno.args, {
  port: "8000",
  hostname: "127.0.0.1",
  poller: "",
  cert: "",
  key: "",
  deflate: false,
  quiet: false,
});

interface Member {
  name: string;
  room: string;
}

const page = await Deno.readFile(new URL("./index.html", import.meta.url));
const rooms = new Map<string, Set<WebSocket<Member>>>();

function cleanName(raw: string | null, fallback: string): string {
  // deno-lint-ignore no-control-regex -- control characters are what it strips
  const s = (raw ?? "").replace(/[\u0000-\u001f\u007f]/g, "").trim().slice(0, 32);
  return s === "" ? fallback : s;
}

function presence(room: string): void {
  const members = rooms.get(room);
  const users = members === undefined ? [] : [...members].map((ws) => ws.data.name).sort();
  server.manager.publish(room, JSON.stringify({ type: "presence", users }));
}

const server = serve<Member>({
  hostname: values.hostname,
  port: Number(values.port),
  poller: (values.poller || undefined) as PollerKind | undefined,
  signals: true,
  ...(values.cert !== "" || values.key !== "" ? { cert: values.cert, key: values.key } : {}),
  perMessageDeflate: values.deflate,
  maxMessageSize: 64 * 1024,
  fetch(request, server) {
    const url = new URL(request.url);
    if (url.pathname === "/" || url.pathname === "/index.html") {
      return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    if (url.pathname === "/health") return new Response("ok");
    if (url.pathname === "/ws") {
      const name = cleanName(url.searchParams.get("name"), "guest");
      const room = cleanName(url.searchParams.get("room"), "lobby");
      if (server.upgrade(request, { data: { name, room } })) return;
      return new Response("expected a WebSocket upgrade", { status: 400 });
    }
    return new Response("not found", { status: 404 });
  },
  websocket: {
    open(ws) {
      const { name, room } = ws.data;
      ws.subscribe(room);
      let members = rooms.get(room);
      if (members === undefined) rooms.set(room, members = new Set());
      members.add(ws);
      server.manager.publish(room, JSON.stringify({ type: "system", text: `${name} joined` }));
      presence(room);
    },
    message(ws, data) {
      if (typeof data !== "string") return;
      let text: string;
      try {
        const msg = JSON.parse(data);
        text = String(msg.text ?? "").slice(0, 2000);
      } catch {
        ws.close(1003, "expected JSON");
        return;
      }
      if (text === "") return;
      server.manager.publish(
        ws.data.room,
        JSON.stringify({ type: "message", from: ws.data.name, text }),
      );
    },
    close(ws) {
      const { name, room } = ws.data;
      const members = rooms.get(room);
      members?.delete(ws);
      if (members !== undefined && members.size === 0) rooms.delete(room);
      server.manager.publish(room, JSON.stringify({ type: "system", text: `${name} left` }));
      presence(room);
    },
  },
});

const pageUrl = server.url.replace(/^ws/, "http");
console.log(`chat demo listening on ${pageUrl} (${server.manager.poller.kind})`);
if (!values.quiet && Deno.stdout.isTerminal()) {
  const timer = setInterval(() => {
    const s = server.manager.stats;
    const line = `online ${server.manager.size}  rooms ${rooms.size}  ` +
      `messages in ${s.messagesIn} out ${s.messagesOut}`;
    Deno.stdout.writeSync(new TextEncoder().encode(`\r${line}   `));
  }, 1000);
  server.finished.then(() => clearInterval(timer));
}

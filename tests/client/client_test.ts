/**
 * The WebSocket client over real loopback sockets, under the epoll and select pollers:
 * against this package's server, against an `npm:ws` server (which fails unmasked client
 * frames with 1002) and against raw `Deno.listen` servers that answer badly on purpose.
 *
 * Every test counts /proc/self/fd before and after (after a warm-up round): a connection,
 * failed attempt, server or manager that leaks a descriptor fails it.
 */

import assert from "node:assert/strict";
// @ts-types="npm:@types/ws@8"
// deno-lint-ignore no-import-prefix
import { type RawData, type WebSocket as NodeWebSocket, WebSocketServer } from "npm:ws@8";
import { connect, type ConnectOptions } from "../../client/connect.ts";
import { ConnectError } from "../../client/errors.ts";
import { WebSocketManager } from "../../core/manager.ts";
import { serve, type Server } from "../../server/serve.ts";
import { HandshakeError } from "../../protocol/http/handshake_error.ts";
import type { PollerKind } from "../../poller/poller.ts";
import { WebSocket } from "../../core/websocket.ts";
import {
  acceptKey,
  assertNoFdLeak,
  delay,
  freePort,
  Inbox,
  openFds,
  POLLERS,
  runToEnd,
  waitFor,
  within,
} from "../fixtures/harness.ts";

const utf8 = new TextEncoder();

// ------------------------------------------------------------------ helpers

/** Awaits a rejection and returns the error, which must be a ConnectError. */
async function rejection(p: Promise<unknown>, ms = 5_000): Promise<ConnectError> {
  const err = await within(
    p.then(() => new Error("connect resolved, a rejection was expected"), (e: unknown) => e),
    ms,
    "connect to settle",
  );
  assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${err}`);
  return err;
}

function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function text(data: string | Uint8Array): string {
  return typeof data === "string" ? data : new TextDecoder().decode(data);
}

interface CloseInfo {
  code: number;
  reason: string;
}

/** A client connection of ours, with its events queued (through per-connection handlers). */
class Peer {
  ws!: WebSocket;
  readonly #inbox: Inbox<string | Uint8Array> = new Inbox<string | Uint8Array>();
  readonly messages: (string | Uint8Array)[] = this.#inbox.items;
  readonly pongs: string[] = [];
  readonly pings: string[] = [];
  readonly closed: Promise<CloseInfo>;
  closeInfo: CloseInfo | null = null;
  #closed = Promise.withResolvers<CloseInfo>();

  constructor() {
    this.closed = this.#closed.promise;
  }

  static async connect(url: string, options: ConnectOptions = {}): Promise<Peer> {
    const p = new Peer();
    p.ws = await connect(url, {
      ...options,
      handlers: {
        message: (_ws, data) => {
          p.#inbox.push(data as string | Uint8Array);
        },
        pong: (_ws, payload) => {
          p.pongs.push(text(payload));
        },
        ping: (_ws, payload) => {
          p.pings.push(text(payload));
        },
        close: (_ws, code, reason) => {
          p.closeInfo = { code, reason };
          p.#closed.resolve(p.closeInfo);
          p.#inbox.end(`closed (${code})`);
        },
      },
    });
    return p;
  }

  next(ms = 5_000): Promise<string | Uint8Array> {
    return this.#inbox.next(ms);
  }

  async close(code = 1000, reason = ""): Promise<CloseInfo> {
    this.ws.close(code, reason);
    return await within(this.closed, 5_000, "client close");
  }
}

// ------------------------------------------------------------------ echo servers

/**
 * A server under test. Behaviour, the same for both kinds: text and binary messages are
 * echoed; text `close:<code>` makes the server close with that code and reason
 * "server bye"; `ping:<payload>` makes it ping; a pong it receives is reported back as
 * text `pong:<payload>`; `big:<n>` makes it send n binary bytes. It selects subprotocol
 * "b" when offered; the npm:ws server selects the unoffered "zzz" on path /unoffered.
 */
interface EchoServer {
  readonly kind: "fdws" | "npm:ws";
  readonly port: number;
  /** Close codes and reasons the server side saw, in order. */
  readonly closes: CloseInfo[];
  /** Subprotocols chosen, in order ("" for none). */
  readonly protocols: string[];
  stop(): Promise<void>;
}

function command(data: string): [string, string] | null {
  const i = data.indexOf(":");
  if (i < 0) return null;
  const verb = data.slice(0, i);
  return verb === "close" || verb === "ping" || verb === "big" ? [verb, data.slice(i + 1)] : null;
}

function startFdwsServer(poller: PollerKind, hostname = "127.0.0.1"): EchoServer {
  const closes: CloseInfo[] = [];
  const protocols: string[] = [];
  const server: Server = serve({
    hostname,
    port: 0,
    poller,
    fetch(request, srv) {
      const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",")
        .map((s) => s.trim()).filter((s) => s !== "");
      const protocol = offered.includes("b") ? "b" : undefined;
      protocols.push(protocol ?? "");
      srv.upgrade(request, { protocol });
    },
    websocket: {
      message(ws, data) {
        if (typeof data === "string") {
          const cmd = command(data);
          if (cmd === null) ws.send(data);
          else if (cmd[0] === "close") ws.close(Number(cmd[1]), "server bye");
          else if (cmd[0] === "ping") ws.ping(cmd[1]);
          else ws.send(pattern(Number(cmd[1])));
        } else {
          ws.send(data as Uint8Array);
        }
      },
      pong(ws, payload) {
        ws.send(`pong:${text(payload)}`);
      },
      close(_ws, code, reason) {
        closes.push({ code, reason });
      },
    },
  });
  return {
    kind: "fdws",
    port: server.port,
    closes,
    protocols,
    stop: () => server.shutdown({ timeout: 2_000 }),
  };
}

async function startNpmWsServer(): Promise<EchoServer> {
  const closes: CloseInfo[] = [];
  const protocols: string[] = [];
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    handleProtocols: (offered: Set<string>, req: { url?: string }): string | false => {
      const chosen = req.url === "/unoffered" ? "zzz" : offered.has("b") ? "b" : false;
      protocols.push(chosen === false ? "" : chosen);
      return chosen;
    },
  });
  const sockets = new Set<NodeWebSocket>();
  wss.on("connection", (ws: NodeWebSocket) => {
    sockets.add(ws);
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (!isBinary) {
        const s = String(data);
        const cmd = command(s);
        if (cmd === null) ws.send(s);
        else if (cmd[0] === "close") ws.close(Number(cmd[1]), "server bye");
        else if (cmd[0] === "ping") ws.ping(cmd[1]);
        else ws.send(pattern(Number(cmd[1])));
      } else {
        ws.send(data as Uint8Array, { binary: true });
      }
    });
    ws.on("pong", (payload: Uint8Array) => ws.send(`pong:${text(payload)}`));
    ws.on("close", (code: number, reason: Uint8Array) => {
      sockets.delete(ws);
      closes.push({ code, reason: text(reason) });
    });
  });
  await within(new Promise((r) => wss.once("listening", r)), 5_000, "npm:ws listening");
  const port = (wss.address() as { port: number }).port;
  return {
    kind: "npm:ws",
    port,
    closes,
    protocols,
    async stop(): Promise<void> {
      for (const ws of sockets) ws.terminate();
      const done = Promise.withResolvers<void>();
      wss.close(() => done.resolve());
      await within(done.promise, 5_000, "npm:ws server close");
    },
  };
}

// ------------------------------------------------------------------ raw servers

/** Reads a request head from `conn`; returns its text (null at EOF). */
async function readHead(conn: Deno.Conn): Promise<string | null> {
  const chunk = new Uint8Array(4096);
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(chunk);
    if (n === null) return null;
    head += new TextDecoder().decode(chunk.subarray(0, n));
  }
  return head;
}

function header(head: string, name: string): string {
  const m = head.match(new RegExp(`^${name}:\\s*(.*?)\\s*$`, "mi"));
  return m === null ? "" : m[1];
}

/** An unmasked server frame. */
function serverFrame(opcode: number, payload: Uint8Array): Uint8Array {
  assert.ok(payload.length < 126);
  const out = new Uint8Array(2 + payload.length);
  out[0] = 0x80 | opcode;
  out[1] = payload.length;
  out.set(payload, 2);
  return out;
}

/**
 * A `Deno.listen` server whose connections are handled by `handle` (which must leave them
 * open or closed; every one still open is closed by `stop()`).
 */
function rawServer(
  handle: (conn: Deno.Conn) => Promise<void>,
): { port: number; stop(): Promise<void>; handled: Promise<void>[] } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const handled: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      handled.push(handle(conn).catch(() => {}));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    handled,
    async stop(): Promise<void> {
      listener.close();
      await loop;
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed by the handler
        }
      }
      await Promise.all(handled);
    },
  };
}

/** A raw server that answers the handshake with `answer(key)` and then closes. */
function answeringServer(answer: (key: string) => Promise<string>): ReturnType<typeof rawServer> {
  return rawServer(async (conn) => {
    const head = await readHead(conn);
    if (head !== null) {
      await conn.write(utf8.encode(await answer(header(head, "sec-websocket-key"))));
      // Give the client time to read the answer before the FIN.
      await delay(50);
    }
    conn.close();
  });
}

// ------------------------------------------------------------------ warm-up

/** One full round, so that descriptors Deno opens lazily are open before counting. */
let warm = false;
async function warmUp(): Promise<void> {
  if (warm) return;
  warm = true;
  const server = startFdwsServer("epoll");
  const npm = await startNpmWsServer();
  for (const s of [server, npm]) {
    const p = await Peer.connect(`ws://127.0.0.1:${s.port}/`);
    p.ws.send("warm");
    await p.next();
    await p.close();
  }
  await rejection(connect(`ws://127.0.0.1:${freePort()}/`));
  await rejection(connect("ws://nonexistent.invalid/"), 15_000);
  const raw = answeringServer(() => Promise.resolve("HTTP/1.1 403 Forbidden\r\n\r\n"));
  await rejection(connect(`ws://127.0.0.1:${raw.port}/`));
  await raw.stop();
  await server.stop();
  await npm.stop();
  await delay(50);
}

// ------------------------------------------------------------------ the matrix

for (const poller of POLLERS) {
  for (const kind of ["fdws", "npm:ws"] as const) {
    Deno.test(`client against ${kind} server (${poller})`, async (t) => {
      await warmUp();
      const before = openFds();
      const server = kind === "fdws" ? startFdwsServer(poller) : await startNpmWsServer();
      const manager = new WebSocketManager({ poller });
      const url = `ws://127.0.0.1:${server.port}/echo?x=1`;
      const open = (options: ConnectOptions = {}): Promise<Peer> =>
        Peer.connect(url, { manager, ...options });
      try {
        await t.step("text and binary echo (masked frames accepted by the server)", async () => {
          const p = await open();
          assert.equal(p.ws.readyState, WebSocket.OPEN);
          assert.equal(p.ws.role, "client");
          assert.equal(p.ws.url, url);
          assert.equal(p.ws.protocol, "");
          assert.equal(p.ws.remoteAddress?.hostname, "127.0.0.1");
          assert.equal(p.ws.remoteAddress?.port, server.port);
          p.ws.send("hello");
          p.ws.send("");
          p.ws.send("héllo wörld ✓ 🎉");
          p.ws.send(new Uint8Array([0, 1, 2, 255]));
          p.ws.send(new Uint8Array(0));
          p.ws.send("x".repeat(70_000));
          assert.equal(await p.next(), "hello");
          assert.equal(await p.next(), "");
          assert.equal(await p.next(), "héllo wörld ✓ 🎉");
          assert.deepEqual(await p.next(), new Uint8Array([0, 1, 2, 255]));
          assert.deepEqual(await p.next(), new Uint8Array(0));
          assert.equal(await p.next(), "x".repeat(70_000));
          const info = await p.close(1000, "done");
          assert.equal(info.code, 1000);
          // npm:ws fails unmasked frames with 1002; ours too: a clean 1000 proves masking.
          await waitFor(() => server.closes.length === 1, 2_000, "server close");
          assert.deepEqual(server.closes.shift(), { code: 1000, reason: "done" });
        });

        await t.step("16 MiB binary echo", async () => {
          const p = await open();
          const big = pattern(16 * 1024 * 1024);
          p.ws.send(big);
          const back = await p.next(20_000);
          assert.ok(back instanceof Uint8Array);
          assert.equal(back.length, big.length);
          assert.ok(sameBytes(back, big), "16 MiB echo differs");
          assert.equal((await p.close()).code, 1000);
          await waitFor(() => server.closes.length === 1, 2_000, "server close");
          assert.equal(server.closes.shift()!.code, 1000);
        });

        await t.step("ping and pong both ways", async () => {
          const p = await open();
          assert.equal(p.ws.ping("cli"), true);
          await waitFor(() => p.pongs.length === 1, 2_000, "pong from server");
          assert.deepEqual(p.pongs, ["cli"]);
          p.ws.send("ping:srv");
          assert.equal(await p.next(), "pong:srv");
          assert.deepEqual(p.pings, ["srv"]);
          await p.close();
          await waitFor(() => server.closes.length === 1, 2_000, "server close");
          server.closes.shift();
        });

        await t.step("client closes with a code and reason", async () => {
          const p = await open();
          const info = await p.close(4000, "client bye");
          assert.equal(info.code, 4000);
          assert.equal(p.ws.readyState, WebSocket.CLOSED);
          await waitFor(() => server.closes.length === 1, 2_000, "server close");
          assert.deepEqual(server.closes.shift(), { code: 4000, reason: "client bye" });
        });

        await t.step("server closes with a code and reason", async () => {
          const p = await open();
          const wasClean = Promise.withResolvers<boolean>();
          p.ws.onclose = (ev: CloseEvent) => wasClean.resolve(ev.wasClean);
          p.ws.send("close:4001");
          const info = await within(p.closed, 5_000, "close by server");
          assert.deepEqual(info, { code: 4001, reason: "server bye" });
          assert.equal(await within(wasClean.promise, 1_000, "close event"), true);
          await waitFor(() => server.closes.length === 1, 2_000, "server close");
          assert.equal(server.closes.shift()!.code, 4001);
        });

        await t.step("subprotocol: the server picks b out of [a, b]", async () => {
          const p = await open({ protocols: ["a", "b"] });
          assert.equal(p.ws.protocol, "b");
          assert.equal(server.protocols.at(-1), "b");
          p.ws.send("proto");
          assert.equal(await p.next(), "proto");
          await p.close();
          await waitFor(() => server.closes.length === 1, 2_000, "server close");
          server.closes.shift();
        });

        if (kind === "npm:ws") {
          await t.step("a server choosing an unoffered subprotocol is refused", async () => {
            const err = await rejection(
              connect(`ws://127.0.0.1:${server.port}/unoffered`, {
                manager,
                protocols: ["a", "b"],
              }),
            );
            assert.equal(err.code, "HANDSHAKE_FAILED");
            assert.equal(err.status, 101);
            assert.match(err.message, /zzz/);
            // The server sees the connection dropped without a close frame.
            await waitFor(() => server.closes.length === 1, 2_000, "server close");
            assert.equal(server.closes.shift()!.code, 1006);
          });
        }

        await t.step("several connections at once", async () => {
          const peers = await Promise.all(Array.from({ length: 8 }, () => open()));
          assert.equal(manager.size, 8);
          peers.forEach((p, i) => p.ws.send(`n${i}`));
          for (let i = 0; i < peers.length; i++) assert.equal(await peers[i].next(), `n${i}`);
          await Promise.all(peers.map((p) => p.close()));
          await waitFor(() => server.closes.length === 8, 2_000, "server closes");
          server.closes.length = 0;
        });

        await t.step("maxMessageSize: a larger message closes with 1009", async () => {
          const p = await open({ maxMessageSize: 1024 });
          p.ws.send("big:1000");
          assert.equal((await p.next()).length, 1000);
          p.ws.send("big:2000");
          // The client failed the connection (RFC 6455 §7.1.7): it sent 1009 and, having
          // received no close frame before dropping it, reports 1006 itself.
          const info = await within(p.closed, 5_000, "1009 close");
          assert.equal(info.code, 1006);
          await waitFor(() => server.closes.length === 1, 2_000, "server close");
          assert.equal(server.closes.shift()!.code, 1009);
        });

        assert.equal(manager.size, 0);
      } finally {
        manager.stop();
        await manager.join();
        await server.stop();
      }
      await assertNoFdLeak(before);
    });
  }

  Deno.test(`client: failures reject with typed errors (${poller})`, async (t) => {
    await warmUp();
    const before = openFds();
    const manager = new WebSocketManager({ poller });
    try {
      await t.step("connection refused", async () => {
        const port = freePort();
        const err = await rejection(connect(`ws://127.0.0.1:${port}/`, { manager }));
        assert.equal(err.code, "ECONNREFUSED");
        assert.equal(err.address, `127.0.0.1:${port}`);
        assert.equal(err.url, `ws://127.0.0.1:${port}/`);
      });

      await t.step("connect timeout: TCP accepted, no answer", async () => {
        const silent = rawServer(async (conn) => {
          // Read and ignore until the client gives up.
          const buf = new Uint8Array(1024);
          while ((await conn.read(buf).catch(() => null)) !== null) { /* drop */ }
          conn.close();
        });
        const t0 = performance.now();
        const err = await rejection(
          connect(`ws://127.0.0.1:${silent.port}/`, { manager, timeout: 300 }),
        );
        const took = performance.now() - t0;
        assert.equal(err.code, "ETIMEDOUT");
        assert.ok(took >= 250 && took < 3_000, `timed out after ${took} ms`);
        await silent.stop();
      });

      await t.step("abort signal", async () => {
        const silent = rawServer(async (conn) => {
          const buf = new Uint8Array(1024);
          while ((await conn.read(buf).catch(() => null)) !== null) { /* drop */ }
          conn.close();
        });
        const ac = new AbortController();
        setTimeout(() => ac.abort(new Error("stop it")), 100);
        const err = await rejection(
          connect(`ws://127.0.0.1:${silent.port}/`, { manager, signal: ac.signal }),
        );
        assert.equal(err.code, "ABORTED");
        assert.equal((err.cause as Error).message, "stop it");
        const pre = await rejection(
          connect(`ws://127.0.0.1:${silent.port}/`, { manager, signal: AbortSignal.abort() }),
        );
        assert.equal(pre.code, "ABORTED");
        await silent.stop();
      });

      const badAnswers: [string, string, (key: string) => Promise<string>, number][] = [
        [
          "wrong Sec-WebSocket-Accept",
          "HANDSHAKE_FAILED",
          () =>
            Promise.resolve(
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZ+xOo4Do=\r\n\r\n",
            ),
          101,
        ],
        [
          "unoffered subprotocol",
          "HANDSHAKE_FAILED",
          async (key) =>
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\nSec-WebSocket-Protocol: c\r\n\r\n`,
          101,
        ],
        [
          "an extension that was not offered",
          "HANDSHAKE_FAILED",
          async (key) =>
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\n` +
            "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
          101,
        ],
        [
          "status 403",
          "UNEXPECTED_RESPONSE",
          () => Promise.resolve("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"),
          403,
        ],
        [
          "status 200",
          "UNEXPECTED_RESPONSE",
          () => Promise.resolve("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
          200,
        ],
        ["malformed HTTP", "HANDSHAKE_FAILED", () => Promise.resolve("HELLO THERE\r\n\r\n"), 0],
        ["connection closed without answer", "HANDSHAKE_FAILED", () => Promise.resolve(""), 0],
      ];
      for (const [name, code, answer, status] of badAnswers) {
        await t.step(`bad answer: ${name}`, async () => {
          const raw = answeringServer(answer);
          const err = await rejection(
            connect(`ws://127.0.0.1:${raw.port}/`, { manager, protocols: ["a", "b"] }),
          );
          assert.equal(err.code, code, err.message);
          assert.equal(err.status, status);
          await raw.stop();
        });
      }

      await t.step("the manager stops while connecting", async () => {
        const own = new WebSocketManager({ poller });
        const silent = rawServer(async (conn) => {
          const buf = new Uint8Array(1024);
          while ((await conn.read(buf).catch(() => null)) !== null) { /* drop */ }
          conn.close();
        });
        const pending = connect(`ws://127.0.0.1:${silent.port}/`, { manager: own });
        await delay(100);
        own.stop();
        const err = await rejection(pending);
        assert.equal(err.code, "MANAGER_STOPPED");
        await own.join();
        await silent.stop();
      });

      await t.step("invalid arguments", async () => {
        // Issue 12: wss: (and https:) are served over TLS now; nobody listens on port 1.
        assert.equal((await rejection(connect("wss://127.0.0.1:1/"))).code, "ECONNREFUSED");
        assert.equal((await rejection(connect("https://127.0.0.1:1/"))).code, "ECONNREFUSED");
        assert.equal((await rejection(connect("ftp://127.0.0.1:1/"))).code, "INVALID_URL");
        assert.equal((await rejection(connect("not a url"))).code, "INVALID_URL");
        assert.equal(
          (await rejection(connect("ws://127.0.0.1:1/", { timeout: -1 }))).code,
          "INVALID_OPTION",
        );
        await assert.rejects(
          connect("ws://127.0.0.1:1/#frag", { manager }),
          (e: unknown) => e instanceof HandshakeError && e.code === "INVALID_URL",
        );
        await assert.rejects(
          connect("ws://127.0.0.1:1/", { manager, protocols: ["a b"] }),
          (e: unknown) => e instanceof HandshakeError && e.code === "INVALID_PROTOCOL",
        );
        await assert.rejects(
          connect("ws://127.0.0.1:1/", { manager, headers: { "Sec-WebSocket-Key": "x" } }),
          (e: unknown) => e instanceof HandshakeError && e.code === "RESERVED_HEADER",
        );
      });

      await t.step("a name that does not resolve", async () => {
        const t0 = performance.now();
        const err = await rejection(connect("ws://nonexistent.invalid:80/", { manager }), 15_000);
        assert.ok(["ENOTFOUND", "EAI_AGAIN", "EAI_FAIL"].includes(err.code), err.code);
        assert.ok(performance.now() - t0 < 12_000);
      });
    } finally {
      manager.stop();
      await manager.join();
    }
    await assertNoFdLeak(before);
  });

  Deno.test(`client: raw server checks of the wire (${poller})`, async (t) => {
    await warmUp();
    const before = openFds();
    const manager = new WebSocketManager({ poller });
    try {
      await t.step(
        "request head, masked frames, frames arriving with the 101 and trickled answers",
        async () => {
          const seen = Promise.withResolvers<{ head: string; frame: Uint8Array }>();
          const raw = rawServer(async (conn) => {
            const head = (await readHead(conn))!;
            const accept = await acceptKey(header(head, "sec-websocket-key"));
            const answer = utf8.encode(
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: b\r\n\r\n`,
            );
            const greet = serverFrame(0x1, utf8.encode("greetings"));
            // The answer trickles in, byte by byte, and its last byte travels with a frame.
            for (let i = 0; i < answer.length - 1; i++) {
              await conn.write(answer.subarray(i, i + 1));
              if (i % 16 === 0) await delay(1);
            }
            const last = new Uint8Array(1 + greet.length);
            last[0] = answer[answer.length - 1];
            last.set(greet, 1);
            await conn.write(last);
            const buf = new Uint8Array(1024);
            const n = (await conn.read(buf))!;
            seen.resolve({ head, frame: buf.slice(0, n) });
            await conn.write(serverFrame(0x8, new Uint8Array([0x03, 0xe8])));
            // Wait for the client's close frame, then end the TCP connection.
            await conn.read(buf).catch(() => null);
            conn.close();
          });
          const ws = await connect(`ws://127.0.0.1:${raw.port}/path?q=1`, {
            manager,
            protocols: ["a", "b"],
            headers: { Origin: "http://example.test", "X-Extra": "1" },
          });
          // Handlers set after the await still see the frame that came with the answer.
          const messages: string[] = [];
          const closed = Promise.withResolvers<number>();
          ws.onmessage = (ev: MessageEvent) => messages.push(ev.data as string);
          ws.onclose = (ev: CloseEvent) => closed.resolve(ev.code);
          assert.equal(ws.protocol, "b");
          ws.send("hello");
          const { head, frame } = await within(seen.promise, 5_000, "client frame");
          assert.match(head, /^GET \/path\?q=1 HTTP\/1\.1\r\n/);
          assert.equal(header(head, "host"), `127.0.0.1:${raw.port}`);
          assert.equal(header(head, "upgrade").toLowerCase(), "websocket");
          assert.match(header(head, "connection"), /upgrade/i);
          assert.equal(header(head, "sec-websocket-version"), "13");
          assert.equal(header(head, "sec-websocket-protocol"), "a, b");
          assert.equal(header(head, "origin"), "http://example.test");
          assert.equal(header(head, "x-extra"), "1");
          assert.equal(atob(header(head, "sec-websocket-key")).length, 16);
          assert.equal(frame[0], 0x81, "FIN + text");
          assert.equal(frame[1] & 0x80, 0x80, "the client's frame is masked");
          const len = frame[1] & 0x7f;
          assert.equal(len, 5);
          const mask = frame.subarray(2, 6);
          const payload = frame.subarray(6, 6 + len).map((b, i) => b ^ mask[i & 3]);
          assert.equal(new TextDecoder().decode(payload), "hello");
          assert.equal(await within(closed.promise, 5_000, "close"), 1000);
          assert.deepEqual(messages, ["greetings"]);
          await raw.stop();
        },
      );
    } finally {
      manager.stop();
      await manager.join();
    }
    await assertNoFdLeak(before);
  });
}

// ------------------------------------------------------------------ addresses

Deno.test("client: IPv6 [::1], localhost and /etc/hosts names", async (t) => {
  await warmUp();
  const before = openFds();
  for (const poller of POLLERS) {
    await t.step(`ws://[::1]:port/ (${poller})`, async () => {
      const server = startFdwsServer(poller, "::1");
      const manager = new WebSocketManager({ poller });
      try {
        const p = await Peer.connect(`ws://[::1]:${server.port}/v6`, { manager });
        assert.equal(p.ws.remoteAddress?.hostname, "::1");
        assert.equal(p.ws.url, `ws://[::1]:${server.port}/v6`);
        p.ws.send("over v6");
        assert.equal(await p.next(), "over v6");
        await p.close();
      } finally {
        manager.stop();
        await manager.join();
        await server.stop();
      }
    });
  }

  await t.step("localhost, server on 127.0.0.1", async () => {
    const server = startFdwsServer("epoll", "127.0.0.1");
    try {
      const p = await Peer.connect(`ws://localhost:${server.port}/`);
      assert.equal(p.ws.remoteAddress?.hostname, "127.0.0.1");
      p.ws.send("local");
      assert.equal(await p.next(), "local");
      await p.close();
    } finally {
      await server.stop();
    }
  });

  await t.step("localhost, server on ::1 only: 127.0.0.1 refused, then ::1", async () => {
    const server = startFdwsServer("epoll", "::1");
    try {
      const p = await Peer.connect(`ws://localhost:${server.port}/`);
      assert.equal(p.ws.remoteAddress?.hostname, "::1");
      p.ws.send("fallback");
      assert.equal(await p.next(), "fallback");
      await p.close();
    } finally {
      await server.stop();
    }
  });

  await t.step("a name from /etc/hosts (resolved by getaddrinfo)", async () => {
    let name: string | null = null;
    try {
      for (const line of Deno.readTextFileSync("/etc/hosts").split("\n")) {
        const [ip, ...names] = line.replace(/#.*/, "").trim().split(/\s+/);
        if (ip !== "127.0.0.1") continue;
        name = names.find((n) => n !== "" && !n.startsWith("localhost")) ?? null;
        if (name !== null) break;
      }
    } catch {
      // no /etc/hosts
    }
    if (name === null) return;
    const server = startFdwsServer("epoll", "127.0.0.1");
    try {
      const p = await Peer.connect(`ws://${name}:${server.port}/`);
      assert.equal(p.ws.remoteAddress?.hostname, "127.0.0.1");
      p.ws.send(name);
      assert.equal(await p.next(), name);
      await p.close();
    } finally {
      await server.stop();
    }
  });
  await assertNoFdLeak(before);
});

// ------------------------------------------------------------------ managers and classes

Deno.test("client: ws4py style, clients and server connections on one manager", async () => {
  await warmUp();
  const before = openFds();
  for (const poller of POLLERS) {
    const manager = new WebSocketManager({ poller });
    const serverSide: string[] = [];
    const server = serve({
      manager,
      hostname: "127.0.0.1",
      port: 0,
      websocket: {
        message(ws, data) {
          serverSide.push(data as string);
          ws.send(`echo ${data}`);
        },
      },
    });
    try {
      const peers = await Promise.all(
        [0, 1, 2].map(() => Peer.connect(`ws://127.0.0.1:${server.port}/`, { manager })),
      );
      // 3 clients + 3 accepted connections on the same manager.
      assert.equal(manager.size, 6);
      peers.forEach((p, i) => p.ws.send(`c${i}`));
      for (let i = 0; i < 3; i++) assert.equal(await peers[i].next(), `echo c${i}`);
      assert.deepEqual(serverSide.toSorted(), ["c0", "c1", "c2"]);
      // A broadcast goes to every connection: server sides send to the clients, and the
      // clients (masked) to the server, which echoes.
      assert.equal(manager.broadcast("all"), 6);
      for (const p of peers) {
        const got = [await p.next(), await p.next()].toSorted();
        assert.deepEqual(got, ["all", "echo all"]);
      }
      await Promise.all(peers.map((p) => p.close(1000)));
      await waitFor(() => manager.size === 0, 2_000, "all closed");
    } finally {
      await server.shutdown({ timeout: 2_000 });
    }
    assert.equal(manager.running, false);
  }
  await assertNoFdLeak(before);
});

Deno.test("client: webSocketClass hooks, data, and the shared default manager", async (t) => {
  await warmUp();
  const before = openFds();
  const server = startFdwsServer("epoll");
  const url = `ws://127.0.0.1:${server.port}/`;
  try {
    await t.step("a ws4py-style subclass", async () => {
      const log: string[] = [];
      const closed = Promise.withResolvers<void>();
      class Echo extends WebSocket<{ name: string }> {
        override opened(): void {
          log.push(`opened ${this.data.name}`);
          this.send("from opened");
        }
        override receivedMessage(data: string | Uint8Array): void {
          log.push(`message ${data}`);
          this.close(1000, "enough");
        }
        override closed(code: number): void {
          log.push(`closed ${code}`);
          closed.resolve();
        }
      }
      const ws = await connect(url, { webSocketClass: Echo, data: { name: "n1" } });
      assert.ok(ws instanceof Echo);
      assert.equal(log[0], "opened n1");
      await within(closed.promise, 5_000, "subclass closed");
      assert.deepEqual(log, ["opened n1", "message from opened", "closed 1000"]);
    });

    await t.step("connections share one default manager, stopped after the last", async () => {
      const a = await Peer.connect(url);
      const b = await Peer.connect(url);
      const m = a.ws.manager!;
      assert.ok(m !== null && m === b.ws.manager);
      assert.equal(m.running, true);
      a.ws.send("to a");
      b.ws.send("to b");
      assert.equal(await a.next(), "to a");
      assert.equal(await b.next(), "to b");
      await a.close();
      assert.equal(m.running, true);
      b.ws.send("b alone");
      assert.equal(await b.next(), "b alone");
      await b.close();
      await waitFor(() => !m.running, 2_000, "default manager stopped");
      // The next connection gets a fresh manager.
      const c = await Peer.connect(url);
      assert.notEqual(c.ws.manager, m);
      await c.close();
    });

    await t.step("a failed attempt releases the default manager", async () => {
      const err = await rejection(connect(`ws://127.0.0.1:${freePort()}/`));
      assert.equal(err.code, "ECONNREFUSED");
      const p = await Peer.connect(url);
      const m = p.ws.manager!;
      await p.close();
      await waitFor(() => !m.running, 2_000, "default manager stopped");
    });

    await t.step("churn: 60 connect/close and 30 refused cycles", async () => {
      const mid = openFds();
      for (let i = 0; i < 60; i++) {
        const p = await Peer.connect(url);
        p.ws.send(`c${i}`);
        assert.equal(await p.next(), `c${i}`);
        if (i % 3 === 0) p.ws.terminate();
        else await p.close();
      }
      const port = freePort();
      for (let i = 0; i < 30; i++) {
        assert.equal((await rejection(connect(`ws://127.0.0.1:${port}/`))).code, "ECONNREFUSED");
      }
      await assertNoFdLeak(mid);
    });

    await t.step("frames sent with the 101 reach handlers set after the await", async () => {
      // This server's open handler sends and closes at once: its 101, the text frame and
      // the close frame leave in one write, so they arrive together.
      const eager = serve({
        hostname: "127.0.0.1",
        port: 0,
        websocket: {
          open(ws) {
            ws.send("welcome");
            ws.close(4003, "go away");
          },
        },
      });
      try {
        for (let i = 0; i < 5; i++) {
          const ws = await connect(`ws://127.0.0.1:${eager.port}/`);
          const messages: unknown[] = [];
          const closed = Promise.withResolvers<CloseEvent>();
          ws.onmessage = (ev: MessageEvent) => messages.push(ev.data);
          ws.onclose = (ev: CloseEvent) => closed.resolve(ev);
          const ev = await within(closed.promise, 5_000, "close event");
          assert.deepEqual(messages, ["welcome"]);
          assert.equal(ev.code, 4003);
          assert.equal(ev.reason, "go away");
          assert.equal(ev.wasClean, true);
        }
      } finally {
        await eager.shutdown({ timeout: 2_000 });
      }
    });
  } finally {
    await server.stop();
  }
  await assertNoFdLeak(before);
});

// ------------------------------------------------------------------ a client-only process

Deno.test("client: a client-only script exits by itself", async (t) => {
  await warmUp();
  const before = openFds();
  const server = startFdwsServer("epoll");
  const fixture = new URL("../fixtures/client/client_only.ts", import.meta.url).pathname;
  const run = async (mode: string, url: string): Promise<string> => {
    const { code, stdout, stderr, killed } = await runToEnd(Deno.execPath(), [
      "run",
      "--allow-ffi",
      "--no-lock",
      fixture,
      mode,
      url,
    ], 15_000);
    assert.equal(killed, false, `the script did not exit by itself:\n${stdout}\n${stderr}`);
    assert.equal(code, 0, stderr);
    return stdout;
  };
  try {
    const url = `ws://127.0.0.1:${server.port}/`;
    await t.step("echo, then the client closes", async () => {
      const out = await run("echo", url);
      assert.match(out, /echo hello\nws closed 1000\nscript end\n/);
    });
    await t.step("the server closes", async () => {
      const out = await run("server-closes", url);
      assert.match(out, /ws closed 4002\nscript end\n/);
    });
    await t.step("two connections closed one after the other", async () => {
      const out = await run("two", url);
      assert.match(out, /same manager true\na closed 1000\nb echo still here\nb closed 1000\n/);
    });
    await t.step("connection refused", async () => {
      const out = await run("refused", `ws://127.0.0.1:${freePort()}/`);
      assert.match(out, /rejected ECONNREFUSED\nscript end\n/);
    });
  } finally {
    await server.stop();
  }
  await assertNoFdLeak(before);
});

/**
 * The server over real loopback TCP, under every poller that runs on Linux (epoll and
 * select). The client side is a raw `Deno.connect` socket that writes exact bytes (frames
 * come from a small encoder in this file, so that invalid frames can be written too) and
 * reads exact answers.
 *
 * Every step counts the entries of /proc/self/fd before and after, once its servers are
 * shut down and its sockets closed: a leak of the server (or of the test) fails it.
 */

import assert from "node:assert/strict";
import { serve, type ServeOptions, type Server } from "../../server/serve.ts";
import type { WebSocket } from "../../core/websocket.ts";
import type { PollerKind } from "../../poller/poller.ts";
import { concat } from "../fixtures/bytes.ts";
import {
  acceptKey,
  Child,
  closePayload,
  delay,
  indexOfHeadEnd,
  openFds,
  parseFrame,
  POLLERS,
  rawFrame,
  stepPerPoller,
  waitFor,
  type WireFrame,
} from "../fixtures/harness.ts";

const onLinux = Deno.build.os === "linux";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The RFC 6455 §1.3 sample key (its accept value is computed independently by acceptKey). */
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

// ---------------------------------------------------------------------------- helpers

/**
 * Request bytes of an opening handshake. `fields` override the standard ones by name
 * (case-insensitive), `null` removes one.
 */
function handshake(
  fields: Record<string, string | null> = {},
  requestLine = "GET /chat HTTP/1.1",
): string {
  const base: [string, string][] = [
    ["Host", "127.0.0.1"],
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", KEY],
    ["Sec-WebSocket-Version", "13"],
  ];
  const lower = new Map<string, string | null>();
  for (const [k, v] of Object.entries(fields)) lower.set(k.toLowerCase(), v);
  let head = `${requestLine}\r\n`;
  for (const [name, value] of base) {
    const o = lower.get(name.toLowerCase());
    if (o === null) continue;
    head += `${name}: ${o ?? value}\r\n`;
  }
  for (const [name, value] of Object.entries(fields)) {
    if (value === null) continue;
    if (base.some(([b]) => b.toLowerCase() === name.toLowerCase())) continue;
    head += `${name}: ${value}\r\n`;
  }
  return head + "\r\n";
}

/** A plain HTTP/1.1 request. */
function httpRequest(method: string, path: string, extra = "", body = ""): string {
  return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n${body}`;
}

/** An HTTP answer as read by {@link RawClient.readResponse}. */
interface Answer {
  status: number;
  headers: Headers;
  body: string;
  head: string;
}

/** A frame as read by {@link RawClient.readFrame}. */
type Frame = WireFrame;

/**
 * A raw TCP client. A pump reads everything that arrives into a buffer; the `read*`
 * methods consume it with a time bound and fail on end of stream.
 */
class RawClient {
  readonly conn: Deno.TcpConn;
  /** True once the stream ended (EOF, reset or local close). */
  eof = false;
  /** True when the stream ended with ECONNRESET. */
  reset = false;
  #buf: Uint8Array = new Uint8Array(0);
  #wake: (() => void) | null = null;
  readonly #pump: Promise<void>;
  #closed = false;

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    this.#pump = this.#run();
  }

  /** Bytes received and not consumed yet. */
  get buffered(): number {
    return this.#buf.length;
  }

  async #run(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.conn.read(chunk);
        if (n === null) break;
        this.#buf = concat(this.#buf, chunk.subarray(0, n));
        this.#notify();
      }
    } catch (err) {
      if (err instanceof Deno.errors.ConnectionReset) this.reset = true;
      else if (!this.#closed) throw err;
    } finally {
      this.eof = true;
      this.#notify();
    }
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** Waits until `take` returns non-null (it may consume the buffer). */
  async #await<T>(take: () => T | null, timeoutMs: number, what: string): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const v = take();
      if (v !== null) return v;
      if (this.eof) throw new Error(`end of stream while waiting for ${what}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /** Writes all of `data`. */
  async write(data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    let at = 0;
    while (at < bytes.length) at += await this.conn.write(bytes.subarray(at));
  }

  /** Reads an HTTP response head and its Content-Length body (none for HEAD). */
  readResponse(options: { head?: boolean; timeoutMs?: number } = {}): Promise<Answer> {
    return this.#await(
      () => {
        const b = this.#buf;
        const headEnd = indexOfHeadEnd(b);
        if (headEnd < 0) return null;
        const end = headEnd + 4;
        const head = dec.decode(b.subarray(0, end));
        const lines = head.slice(0, -4).split("\r\n");
        const m = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0]);
        assert.ok(m !== null, `bad status line ${JSON.stringify(lines[0])}`);
        const headers = new Headers();
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(":");
          headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
        }
        const status = Number(m[1]);
        const length = options.head || status === 101
          ? 0
          : Number(headers.get("content-length") ?? "0");
        if (b.length < end + length) return null;
        this.#take(end);
        const body = dec.decode(this.#take(length));
        return { status, headers, body, head };
      },
      options.timeoutMs ?? 3000,
      "an HTTP response",
    );
  }

  /** Reads one frame. */
  readFrame(timeoutMs = 3000): Promise<Frame> {
    return this.#await(
      () => {
        const parsed = parseFrame(this.#buf);
        if (parsed === null) return null;
        this.#take(parsed.size);
        return parsed.frame;
      },
      timeoutMs,
      "a frame",
    );
  }

  /** Reads a frame that must be a server close frame; returns its code (1005: none). */
  async readClose(timeoutMs = 3000): Promise<{ code: number; reason: string }> {
    const f = await this.readFrame(timeoutMs);
    assert.equal(f.opcode, 0x8, `expected a close frame, got opcode ${f.opcode}`);
    assert.equal(f.masked, false, "server frames must not be masked");
    assert.ok(f.fin);
    if (f.payload.length === 0) return { code: 1005, reason: "" };
    return {
      code: (f.payload[0] << 8) | f.payload[1],
      reason: dec.decode(f.payload.subarray(2)),
    };
  }

  /** Reads a text message made of one unmasked frame. */
  async readText(timeoutMs = 3000): Promise<string> {
    const f = await this.readFrame(timeoutMs);
    assert.equal(f.opcode, 0x1, `expected a text frame, got opcode ${f.opcode}`);
    assert.equal(f.masked, false, "server frames must not be masked");
    assert.ok(f.fin);
    return dec.decode(f.payload);
  }

  /** Waits for the server to close the stream, with nothing more received before. */
  async expectEof(timeoutMs = 3000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!this.eof) {
      assert.equal(this.#buf.length, 0, "unexpected bytes before end of stream");
      if (performance.now() >= deadline) throw new Error("timed out waiting for end of stream");
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, deadline - performance.now());
      });
      clearTimeout(timer);
    }
    assert.equal(this.#buf.length, 0, "unexpected bytes before end of stream");
  }

  /** Handshakes: sends `request` (plus `after`), reads and checks the 101. */
  async upgrade(request = handshake(), after?: Uint8Array): Promise<Answer> {
    const bytes = after === undefined ? enc.encode(request) : concat(enc.encode(request), after);
    await this.write(bytes);
    const answer = await this.readResponse();
    assert.equal(answer.status, 101, answer.head);
    return answer;
  }

  /** Closes the socket (idempotent) and waits for the pump to stop. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.conn.close();
      } catch {
        // Already closed.
      }
    }
    await this.#pump;
  }
}

/** Servers and sockets of one step, released by {@link Scope.dispose}. */
class Scope {
  readonly kind: PollerKind;
  readonly #servers: { shutdown(): Promise<void> }[] = [];
  readonly #clients: RawClient[] = [];
  readonly #raw: Deno.TcpConn[] = [];

  constructor(kind: PollerKind) {
    this.kind = kind;
  }

  /** Starts a server on 127.0.0.1, a free port and this step's poller. */
  serve<T>(options: ServeOptions<T> = {}): Server<T> {
    const server = serve<T>({ hostname: "127.0.0.1", port: 0, poller: this.kind, ...options });
    this.#servers.push({ shutdown: () => server.shutdown({ timeout: 1000 }) });
    return server;
  }

  /** A raw client with a pump. */
  async client(port: number): Promise<RawClient> {
    const c = new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
    this.#clients.push(c);
    return c;
  }

  /** A bare connection nobody reads from (closing it with unread input resets it). */
  async raw(port: number): Promise<Deno.TcpConn> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    this.#raw.push(conn);
    return conn;
  }

  async dispose(): Promise<void> {
    for (const c of this.#clients) await c.close();
    for (const conn of this.#raw) {
      try {
        conn.close();
      } catch {
        // Closed by the test.
      }
    }
    for (const s of this.#servers) await s.shutdown();
  }
}

let warmedUp = false;

/**
 * One full server round (upgrade, echo, close, reset, shutdown) under each poller before
 * any descriptor is counted, so that what Deno opens lazily on first use is in the baseline.
 */
async function warmUp(): Promise<void> {
  if (warmedUp) return;
  warmedUp = true;
  for (const kind of POLLERS) {
    const scope = new Scope(kind);
    try {
      const server = scope.serve({ websocket: { message: (ws, data) => ws.send(data) } });
      const c = await scope.client(server.port);
      await c.upgrade(handshake(), rawFrame({ opcode: 1, payload: "warm" }));
      assert.equal(await c.readText(), "warm");
      await c.write(rawFrame({ opcode: 8, payload: closePayload(1000) }));
      await c.readClose();
      await c.expectEof();
      const r = await scope.raw(server.port);
      await r.write(enc.encode(handshake()));
      await delay(20);
    } finally {
      await scope.dispose();
    }
  }
}

/**
 * A test run once per poller as steps; each step gets a {@link Scope}, disposed afterwards,
 * and fails when the number of open descriptors differs from before.
 */
function serverTest(
  name: string,
  fn: (scope: Scope, t: Deno.TestContext) => Promise<void> | void,
): void {
  Deno.test({
    name,
    ignore: !onLinux,
    fn: async (t) => {
      await warmUp();
      await stepPerPoller(t, POLLERS, async (kind, t) => {
        const scope = new Scope(kind);
        try {
          await fn(scope, t);
        } finally {
          await scope.dispose();
        }
      });
    },
  });
}

/** Handlers that record what happens, plus echo. */
interface Recorder<T> {
  opens: WebSocket<T>[];
  closes: { ws: WebSocket<T>; code: number; reason: string }[];
  messages: (string | Uint8Array | ArrayBuffer)[];
  errors: unknown[];
}

function echoHandlers<T>(): { rec: Recorder<T>; options: ServeOptions<T> } {
  const rec: Recorder<T> = { opens: [], closes: [], messages: [], errors: [] };
  const options: ServeOptions<T> = {
    websocket: {
      open: (ws) => void rec.opens.push(ws),
      message: (ws, data) => {
        rec.messages.push(data);
        ws.send(data);
      },
      close: (ws, code, reason) => void rec.closes.push({ ws, code, reason }),
      error: (_ws, err) => void rec.errors.push(err),
    },
  };
  return { rec, options };
}

/** Sends `request`, expects an answer with `status`, then the end of the stream. */
async function expectRefusal(
  scope: Scope,
  port: number,
  request: string | Uint8Array,
  status: number,
): Promise<Answer> {
  const c = await scope.client(port);
  await c.write(request);
  const answer = await c.readResponse();
  assert.equal(answer.status, status, answer.head);
  assert.equal(answer.headers.get("connection"), "close");
  await c.expectEof();
  await c.close();
  return answer;
}

// ---------------------------------------------------------------------------- handshake

serverTest("server: handshake answers", async (scope, t) => {
  const { rec, options } = echoHandlers();
  const server = scope.serve(options);
  const port = server.port;

  await t.step("valid upgrade → 101, permessage-deflate declined", async () => {
    const c = await scope.client(port);
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const answer = await c.upgrade(handshake({
      "Sec-WebSocket-Key": key,
      "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
    }));
    assert.match(answer.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.equal(answer.headers.get("upgrade")?.toLowerCase(), "websocket");
    assert.equal(answer.headers.get("connection")?.toLowerCase(), "upgrade");
    assert.equal(answer.headers.get("sec-websocket-accept"), await acceptKey(key));
    assert.equal(answer.headers.get("sec-websocket-extensions"), null);
    assert.equal(answer.headers.get("sec-websocket-protocol"), null);
    // Uncompressed frames work (and RSV1 stays clear on the answer).
    await c.write(rawFrame({ opcode: 1, payload: "plain" }));
    const f = await c.readFrame();
    assert.deepEqual([f.opcode, f.rsv, dec.decode(f.payload)], [1, 0, "plain"]);
    await c.close();
  });

  await t.step("the RFC 6455 sample key", async () => {
    const c = await scope.client(port);
    const answer = await c.upgrade();
    assert.equal(answer.headers.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    await c.close();
  });

  await t.step("POST upgrade → 405 with Allow: GET", async () => {
    const a = await expectRefusal(scope, port, handshake({}, "POST /chat HTTP/1.1"), 405);
    assert.equal(a.headers.get("allow"), "GET");
  });

  await t.step("version 8 → 426 with Sec-WebSocket-Version: 13", async () => {
    const a = await expectRefusal(scope, port, handshake({ "Sec-WebSocket-Version": "8" }), 426);
    assert.equal(a.headers.get("sec-websocket-version"), "13");
  });

  await t.step("bad keys → 400", async () => {
    for (const key of ["abc", "dGhlIHNhbXBsZSBub25jZQ", "AAAAAAAAAAAAAAAAAAAAAAAAAA==", "!!"]) {
      await expectRefusal(scope, port, handshake({ "Sec-WebSocket-Key": key }), 400);
    }
    await expectRefusal(scope, port, handshake({ "Sec-WebSocket-Key": null }), 400);
  });

  await t.step("missing Host → 400", async () => {
    await expectRefusal(scope, port, handshake({ Host: null }), 400);
  });

  await t.step("header block over 8 KiB → 431", async () => {
    const big = handshake({ "X-Padding": "p".repeat(9000) });
    await expectRefusal(scope, port, big, 431);
    // Many small fields add up too.
    const fields: Record<string, string> = {};
    for (let i = 0; i < 200; i++) fields[`X-Field-${i}`] = "v".repeat(40);
    await expectRefusal(scope, port, handshake(fields), 431);
  });

  await t.step("endless request line → 431 before the server buffers it all", async () => {
    const c = await scope.client(port);
    await c.write("GET /");
    const chunk = enc.encode("a".repeat(1024));
    let sent = 5;
    // Bounded: at most 1 MiB, paced so the answer is seen soon after it is sent.
    while (c.buffered === 0 && !c.eof && sent < 1024 * 1024) {
      try {
        await c.write(chunk);
      } catch {
        break; // The server may close once it has answered.
      }
      sent += chunk.length;
      await delay(5);
    }
    const answer = await c.readResponse();
    assert.equal(answer.status, 431);
    assert.ok(sent <= 8192 + 8 * 1024, `answered only after ${sent} bytes`);
    await c.close();
  });

  await t.step("garbage request lines → 400", async () => {
    for (
      const garbage of [
        "HELLO\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTX/1.1\r\nHost: a\r\n\r\n",
        "\x01\x02\x03 junk\r\n\r\n",
      ]
    ) {
      await expectRefusal(scope, port, garbage, 400);
    }
  });

  await t.step("Content-Length: 5 on an upgrade → 400", async () => {
    await expectRefusal(scope, port, handshake({ "Content-Length": "5" }) + "hello", 400);
  });

  await t.step("HTTP/1.0 upgrade → 400, HTTP/2 preface → 505", async () => {
    await expectRefusal(scope, port, handshake({}, "GET /chat HTTP/1.0"), 400);
    await expectRefusal(scope, port, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
  });

  await t.step("non-upgrade GET without fetch → 426", async () => {
    const a = await expectRefusal(scope, port, httpRequest("GET", "/"), 426);
    assert.equal(a.headers.get("upgrade"), "websocket");
  });

  await t.step("counters and handlers", async () => {
    await waitFor(() => rec.closes.length === 2, 2000, "close handlers");
    assert.equal(rec.opens.length, 2);
    assert.equal(server.stats.upgraded, 2);
    assert.equal(server.stats.responses[400], 12);
    assert.equal(server.stats.responses[505], 1);
    assert.equal(server.stats.responses[405], 1);
    assert.equal(server.stats.responses[426], 2);
    assert.equal(server.stats.responses[431], 3);
    await waitFor(() => server.pendingHandshakes === 0, 3000, "pending handshakes to end");
    assert.equal(server.manager.size, 0);
  });
});

// ---------------------------------------------------------------------------- fetch

serverTest("server: fetch handler", async (scope, t) => {
  const closes: number[] = [];
  const errors: unknown[] = [];
  const opened: { user: string }[] = [];
  const server = scope.serve<{ user: string }>({
    maxBodySize: 65536,
    async fetch(request, server) {
      const url = new URL(request.url);
      switch (url.pathname) {
        case "/hello":
          return new Response("hello world", { headers: { "X-Handler": "1" } });
        case "/echo":
          return new Response(`${request.method} ${await request.text()}`);
        case "/throw":
          throw new Error("handler failure");
        case "/big":
          return new Response("z".repeat(3_000_000));
        case "/proto":
          server.upgrade(request, { protocol: "chat", data: { user: "p" } });
          return;
        case "/ws":
          assert.ok(server.upgrade(request, {
            data: { user: url.searchParams.get("user") ?? "" },
            headers: { "X-Extra": "yes", "Set-Cookie": "a=b" },
          }));
          // A second call for the same request is refused.
          assert.equal(server.upgrade(request), false);
          return;
        case "/guarded":
          if (request.headers.get("origin") !== "http://good.example") {
            return new Response("forbidden origin", { status: 403 });
          }
          server.upgrade(request, { data: { user: "guarded" } });
          return;
        default:
          return new Response("nope", { status: 404 });
      }
    },
    websocket: {
      open: (ws) => void opened.push(ws.data),
      message: (ws, data) => void ws.send(`${ws.data.user}:${data as string}`),
      close: (_ws, code) => void closes.push(code),
      error: (_ws, err) => void errors.push(err),
    },
  });
  const port = server.port;

  await t.step("a Response: 200 with body, 404", async () => {
    const c = await scope.client(port);
    await c.write(httpRequest("GET", "/hello"));
    const a = await c.readResponse();
    assert.equal(a.status, 200);
    assert.equal(a.body, "hello world");
    assert.equal(a.headers.get("content-length"), "11");
    assert.equal(a.headers.get("x-handler"), "1");
    await c.expectEof();
    const d = await scope.client(port);
    await d.write(httpRequest("GET", "/missing"));
    const b = await d.readResponse();
    assert.equal(b.status, 404);
    assert.equal(b.body, "nope");
    await d.expectEof();
  });

  await t.step("HEAD: headers only", async () => {
    const c = await scope.client(port);
    await c.write(httpRequest("HEAD", "/hello"));
    const a = await c.readResponse({ head: true });
    assert.equal(a.status, 200);
    assert.equal(a.headers.get("content-length"), "11");
    await c.expectEof();
  });

  await t.step("POST with a Content-Length body", async () => {
    const c = await scope.client(port);
    await c.write(httpRequest("POST", "/echo", "Content-Length: 5\r\n", "abcde"));
    const a = await c.readResponse();
    assert.equal(a.status, 200);
    assert.equal(a.body, "POST abcde");
    await c.expectEof();
    // The body arriving in a later write than the head.
    const d = await scope.client(port);
    await d.write(httpRequest("POST", "/echo", "Content-Length: 7\r\n"));
    await delay(30);
    await d.write("abc");
    await delay(30);
    await d.write("defg");
    const b = await d.readResponse();
    assert.equal(b.body, "POST abcdefg");
    await d.expectEof();
  });

  await t.step("a thrown error → 500, and the server keeps serving", async () => {
    const c = await scope.client(port);
    await c.write(httpRequest("GET", "/throw"));
    const a = await c.readResponse();
    assert.equal(a.status, 500);
    await c.expectEof();
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as Error).message, "handler failure");
    const d = await scope.client(port);
    await d.write(httpRequest("GET", "/hello"));
    assert.equal((await d.readResponse()).status, 200);
  });

  await t.step("server.upgrade(req, { data, headers })", async () => {
    const c = await scope.client(port);
    const a = await c.upgrade(handshake({}, "GET /ws?user=ann HTTP/1.1"));
    assert.equal(a.headers.get("x-extra"), "yes");
    assert.equal(a.headers.get("set-cookie"), "a=b");
    assert.equal(a.headers.get("sec-websocket-accept"), await acceptKey(KEY));
    await c.write(rawFrame({ opcode: 1, payload: "hi" }));
    assert.equal(await c.readText(), "ann:hi");
    assert.deepEqual(opened.at(-1), { user: "ann" });
    await c.write(rawFrame({ opcode: 8, payload: closePayload(1000) }));
    assert.equal((await c.readClose()).code, 1000);
    await c.expectEof();
  });

  await t.step("an Origin check in fetch → 403", async () => {
    const c = await scope.client(port);
    await c.write(handshake({ Origin: "http://evil.example" }, "GET /guarded HTTP/1.1"));
    const a = await c.readResponse();
    assert.equal(a.status, 403);
    assert.equal(a.body, "forbidden origin");
    await c.expectEof();
    const d = await scope.client(port);
    await d.upgrade(handshake({ Origin: "http://good.example" }, "GET /guarded HTTP/1.1"));
    await d.write(rawFrame({ opcode: 1, payload: "x" }));
    assert.equal(await d.readText(), "guarded:x");
  });

  await t.step("a 3 MB Response reaches a client that reads late", async () => {
    const c = await scope.client(port);
    await c.write(httpRequest("GET", "/big"));
    await delay(200);
    const a = await c.readResponse({ timeoutMs: 5000 });
    assert.equal(a.status, 200);
    assert.equal(a.body.length, 3_000_000);
    await c.expectEof();
  });

  await t.step("bodies over maxBodySize → 413, chunked → 411", async () => {
    const c = await scope.client(port);
    await c.write(httpRequest("POST", "/echo", "Content-Length: 70000\r\n"));
    assert.equal((await c.readResponse()).status, 413);
    // The rest of the body is read and dropped: the answer is not destroyed by a reset.
    await c.write("b".repeat(70000));
    await c.expectEof();
    const d = await scope.client(port);
    const chunked = "Transfer-Encoding: chunked\r\n";
    await d.write(httpRequest("POST", "/echo", chunked, "5\r\nhello\r\n0\r\n\r\n"));
    assert.equal((await d.readResponse()).status, 411);
    await d.expectEof();
  });

  await t.step("a body of 60000 bytes in many writes", async () => {
    const c = await scope.client(port);
    await c.write(httpRequest("POST", "/echo", "Content-Length: 60000\r\n"));
    for (let i = 0; i < 6; i++) {
      await c.write(String(i).repeat(10000));
      await delay(5);
    }
    const a = await c.readResponse();
    assert.equal(a.body, `POST ${"012345".split("").map((d) => d.repeat(10000)).join("")}`);
  });

  await t.step("a subprotocol chosen by upgrade()", async () => {
    const c = await scope.client(port);
    const a = await c.upgrade(
      handshake({ "Sec-WebSocket-Protocol": "superchat, chat" }, "GET /proto HTTP/1.1"),
    );
    assert.equal(a.headers.get("sec-websocket-protocol"), "chat");
    // A protocol the client did not offer: the handler throws, the answer is 500.
    const d = await scope.client(port);
    await d.write(handshake({ "Sec-WebSocket-Protocol": "superchat" }, "GET /proto HTTP/1.1"));
    assert.equal((await d.readResponse()).status, 500);
    await d.expectEof();
    errors.length = 0;
  });

  await t.step("an upgrade request the handler does not upgrade gets its Response", async () => {
    const c = await scope.client(port);
    await c.write(handshake({}, "GET /hello HTTP/1.1"));
    const a = await c.readResponse();
    assert.equal(a.status, 200);
    await c.expectEof();
  });

  await scope.dispose();
  assert.ok(closes.every((code) => code === 1000 || code === 1006), String(closes));
});

// ---------------------------------------------------------------------------- framing

serverTest("server: bytes after the head in the same write are processed", async (scope) => {
  const { rec, options } = echoHandlers();
  const server = scope.serve(options);
  const c = await scope.client(server.port);
  // Head, a text frame, a fragmented message and a ping, all in one write.
  await c.upgrade(
    handshake(),
    concat(
      rawFrame({ opcode: 1, payload: "first" }),
      rawFrame({ opcode: 2, payload: new Uint8Array([1, 2]), fin: false }),
      rawFrame({ opcode: 0, payload: new Uint8Array([3]) }),
      rawFrame({ opcode: 9, payload: "p" }),
    ),
  );
  assert.equal(await c.readText(), "first");
  const bin = await c.readFrame();
  assert.deepEqual([bin.opcode, [...bin.payload]], [2, [1, 2, 3]]);
  const pong = await c.readFrame();
  assert.deepEqual([pong.opcode, dec.decode(pong.payload)], [0xa, "p"]);
  assert.equal(rec.messages[0], "first");
  // Same with the handshake head split across writes and the frame glued to its end.
  const d = await scope.client(server.port);
  const req = handshake();
  await d.write(req.slice(0, 10));
  await delay(20);
  await d.upgrade(req.slice(10), rawFrame({ opcode: 1, payload: "second" }));
  assert.equal(await d.readText(), "second");
  // A close frame right behind the head: echoed after the 101, then TCP closed.
  const e = await scope.client(server.port);
  await e.upgrade(handshake(), rawFrame({ opcode: 8, payload: closePayload(1000) }));
  assert.equal((await e.readClose()).code, 1000);
  await e.expectEof();
  await waitFor(() => rec.closes.length === 1, 2000, "the close handler");
  assert.equal(rec.closes[0].code, 1000);
});

serverTest("server: what open() sends follows the 101", async (scope) => {
  const server = scope.serve({
    websocket: {
      open: (ws) => {
        ws.send("welcome");
        if (ws.url === "/bye") ws.close(4000, "go away");
      },
    },
  });
  const c = await scope.client(server.port);
  await c.upgrade();
  assert.equal(await c.readText(), "welcome");
  const d = await scope.client(server.port);
  await d.upgrade(handshake({}, "GET /bye HTTP/1.1"));
  assert.equal(await d.readText(), "welcome");
  assert.deepEqual(await d.readClose(), { code: 4000, reason: "go away" });
  await d.write(rawFrame({ opcode: 8, payload: closePayload(4000) }));
  await d.expectEof();
});

serverTest("server: trickling clients are cut off at the handshake timeout", async (scope) => {
  const server = scope.serve({
    handshakeTimeout: 1000,
    fetch: (req) => new Response(`got ${req.method}`),
    websocket: {},
  });
  const trickles: string[] = [
    handshake(), // a valid handshake, one byte at a time
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: " + "x".repeat(200), // never ends
    httpRequest("POST", "/", "Content-Length: 100\r\n", "y".repeat(100)), // a slow body
  ];
  const silent = (async () => {
    const c = await scope.client(server.port);
    const start = performance.now();
    assert.equal((await c.readResponse({ timeoutMs: 4000 })).status, 408);
    await c.expectEof();
    const elapsed = performance.now() - start;
    assert.ok(elapsed >= 900 && elapsed < 2600, `silent client cut off after ${elapsed} ms`);
    await c.close();
  })();
  const runs = trickles.map(async (text) => {
    const c = await scope.client(server.port);
    const start = performance.now();
    const bytes = enc.encode(text);
    let stop = false;
    const writer = (async () => {
      for (let i = 0; i < 50 && !stop && !c.eof; i++) {
        try {
          await c.write(bytes.subarray(i % bytes.length, i % bytes.length + 1));
        } catch {
          return;
        }
        await delay(200);
      }
    })();
    try {
      const answer = await c.readResponse({ timeoutMs: 4000 });
      assert.equal(answer.status, 408);
      await c.expectEof(4000);
    } finally {
      stop = true;
      await writer;
    }
    const elapsed = performance.now() - start;
    assert.ok(elapsed >= 900 && elapsed < 2600, `cut off after ${elapsed} ms`);
    await c.close();
  });
  await Promise.all([...runs, silent]);
  assert.equal(server.stats.responses[408], 4);
  await waitFor(() => server.pendingHandshakes === 0, 3000, "pending handshakes to end");
});

serverTest("server: maxConnections", async (scope) => {
  const { rec, options } = echoHandlers();
  const server = scope.serve({ ...options, maxConnections: 2 });
  const a = await scope.client(server.port);
  await a.upgrade();
  const b = await scope.client(server.port);
  await b.upgrade();
  const c = await scope.client(server.port);
  const refused = await c.readResponse();
  assert.equal(refused.status, 503);
  await c.expectEof();
  await c.close();
  // A pending handshake counts too.
  await b.write(rawFrame({ opcode: 8, payload: closePayload(1000) }));
  await b.readClose();
  await b.expectEof();
  await waitFor(() => server.manager.size === 1, 2000, "the closed connection to go");
  const pending = await scope.client(server.port);
  await pending.write("GET / HTTP/1.1\r\n");
  await waitFor(() => server.pendingHandshakes === 1, 2000, "the pending handshake");
  const d = await scope.client(server.port);
  assert.equal((await d.readResponse()).status, 503);
  await d.expectEof();
  await d.close();
  // The slot freed: a new connection gets in.
  await pending.close();
  await waitFor(() => server.pendingHandshakes === 0, 2000, "the pending handshake to go");
  const e = await scope.client(server.port);
  await e.upgrade(handshake(), rawFrame({ opcode: 1, payload: "in" }));
  assert.equal(await e.readText(), "in");
  assert.equal(server.stats.responses[503], 2);
  assert.equal(rec.opens.length, 3);
});

/** A frame-level violation and the close code the server must answer with. */
interface Violation {
  name: string;
  bytes: () => Uint8Array;
  code: number;
}

const VIOLATIONS: Violation[] = [
  {
    name: "unmasked client frame",
    bytes: () => rawFrame({ opcode: 1, payload: "hi", mask: false }),
    code: 1002,
  },
  { name: "RSV1 bit", bytes: () => rawFrame({ opcode: 1, payload: "hi", rsv: 4 }), code: 1002 },
  { name: "RSV3 bit", bytes: () => rawFrame({ opcode: 2, rsv: 1 }), code: 1002 },
  { name: "reserved opcode 3", bytes: () => rawFrame({ opcode: 3 }), code: 1002 },
  { name: "reserved opcode 0xB", bytes: () => rawFrame({ opcode: 0xb }), code: 1002 },
  {
    name: "fragmented control frame",
    bytes: () => rawFrame({ opcode: 9, payload: "p", fin: false }),
    code: 1002,
  },
  {
    name: "control frame over 125 bytes",
    bytes: () => rawFrame({ opcode: 9, payload: new Uint8Array(126) }),
    code: 1002,
  },
  { name: "continuation without start", bytes: () => rawFrame({ opcode: 0 }), code: 1002 },
  {
    name: "new message inside a fragmented one",
    bytes: () => concat(rawFrame({ opcode: 1, payload: "a", fin: false }), rawFrame({ opcode: 1 })),
    code: 1002,
  },
  {
    name: "invalid UTF-8 text",
    bytes: () => rawFrame({ opcode: 1, payload: new Uint8Array([0x68, 0xff, 0x69]) }),
    code: 1007,
  },
  {
    name: "UTF-8 surrogate across fragments",
    bytes: () =>
      concat(
        rawFrame({ opcode: 1, payload: new Uint8Array([0xed]), fin: false }),
        rawFrame({ opcode: 0, payload: new Uint8Array([0xa0, 0x80]) }),
      ),
    code: 1007,
  },
  {
    name: "close code 1005",
    bytes: () => rawFrame({ opcode: 8, payload: closePayload(1005) }),
    code: 1002,
  },
  {
    name: "close code 999",
    bytes: () => rawFrame({ opcode: 8, payload: closePayload(999) }),
    code: 1002,
  },
  {
    name: "close code 1006",
    bytes: () => rawFrame({ opcode: 8, payload: closePayload(1006) }),
    code: 1002,
  },
  {
    name: "one-byte close payload",
    bytes: () => rawFrame({ opcode: 8, payload: new Uint8Array([3]) }),
    code: 1002,
  },
  {
    name: "invalid UTF-8 close reason",
    bytes: () => rawFrame({ opcode: 8, payload: closePayload(1000, new Uint8Array([0xc0])) }),
    code: 1007,
  },
  {
    name: "message over maxMessageSize",
    bytes: () => rawFrame({ opcode: 2, payload: new Uint8Array(4096) }),
    code: 1009,
  },
  {
    name: "fragments adding up over maxMessageSize",
    bytes: () =>
      concat(
        rawFrame({ opcode: 1, payload: "a".repeat(800), fin: false }),
        rawFrame({ opcode: 0, payload: "b".repeat(800), fin: false }),
        rawFrame({ opcode: 0, payload: "c".repeat(800) }),
      ),
    code: 1009,
  },
];

serverTest("server: frame-level failures over the wire", async (scope, t) => {
  const { rec, options } = echoHandlers();
  const server = scope.serve({ ...options, maxMessageSize: 1024 });
  for (const v of VIOLATIONS) {
    await t.step(`${v.name} → ${v.code}`, async () => {
      const c = await scope.client(server.port);
      await c.upgrade();
      const closesBefore = rec.closes.length;
      // A valid message first: the connection works until the violation.
      await c.write(concat(rawFrame({ opcode: 1, payload: "ok" }), v.bytes()));
      assert.equal(await c.readText(), "ok");
      const close = await c.readClose();
      assert.equal(close.code, v.code, `reason: ${close.reason}`);
      await c.expectEof();
      await c.close();
      await waitFor(() => rec.closes.length === closesBefore + 1, 2000, "the close handler");
      // The application sees 1006: no close frame was received (or it was invalid).
      assert.equal(rec.closes.at(-1)!.code, 1006);
    });
  }
  await waitFor(() => server.manager.size === 0, 2000, "every connection to close");
  assert.equal(server.manager.stats.protocolErrors, VIOLATIONS.length);
});

serverTest("server: a client close is echoed, then the server closes TCP", async (scope, t) => {
  const { rec, options } = echoHandlers();
  const server = scope.serve(options);
  const cases: { name: string; payload: Uint8Array; echo: number; seen: number }[] = [
    { name: "1000", payload: closePayload(1000, "bye"), echo: 1000, seen: 1000 },
    { name: "4001", payload: closePayload(4001), echo: 4001, seen: 4001 },
    { name: "no code", payload: new Uint8Array(0), echo: 1005, seen: 1005 },
  ];
  for (const k of cases) {
    await t.step(k.name, async () => {
      const c = await scope.client(server.port);
      await c.upgrade();
      const before = rec.closes.length;
      await c.write(rawFrame({ opcode: 8, payload: k.payload }));
      const close = await c.readClose();
      assert.equal(close.code, k.echo);
      await c.expectEof();
      await waitFor(() => rec.closes.length === before + 1, 2000, "the close handler");
      assert.equal(rec.closes.at(-1)!.code, k.seen);
      if (k.seen === 1000) assert.equal(rec.closes.at(-1)!.reason, "bye");
      await c.close();
    });
  }
  await waitFor(() => server.manager.size === 0, 2000, "every connection to close");
  assert.equal(rec.closes.length, cases.length);
});

// ---------------------------------------------------------------------------- resets, churn

serverTest("server: abrupt resets", async (scope, t) => {
  const { rec, options } = echoHandlers();
  const server = scope.serve(options);

  await t.step("half a frame, then a reset → close handler once with 1006", async () => {
    const conn = await scope.raw(server.port);
    const frame = rawFrame({ opcode: 2, payload: new Uint8Array(100) });
    await conn.write(concat(enc.encode(handshake()), frame.subarray(0, 30)));
    await waitFor(() => rec.opens.length === 1, 2000, "the connection to open");
    await delay(20); // the 101 sits unread in our receive buffer: closing now resets
    conn.close();
    await waitFor(() => rec.closes.length === 1, 2000, "the close handler");
    await delay(100);
    assert.equal(rec.closes.length, 1);
    assert.equal(rec.closes[0].code, 1006);
    assert.equal(rec.closes[0].ws, rec.opens[0]);
    assert.equal(rec.opens[0].readyState, 3);
    assert.equal(server.manager.size, 0);
  });

  await t.step("half a frame, then FIN → 1006", async () => {
    const c = await scope.client(server.port);
    await c.upgrade(handshake(), rawFrame({ opcode: 1, payload: "whole" }).subarray(0, 4));
    await waitFor(() => rec.opens.length === 2, 2000, "the connection to open");
    await c.conn.closeWrite();
    await c.expectEof();
    await waitFor(() => rec.closes.length === 2, 2000, "the close handler");
    assert.equal(rec.closes[1].code, 1006);
    await c.close();
  });

  await t.step("a reset in the middle of the handshake", async () => {
    const conn = await scope.raw(server.port);
    await conn.write(enc.encode(handshake().slice(0, 40)));
    await waitFor(() => server.pendingHandshakes === 1, 2000, "the pending handshake");
    conn.close();
    await waitFor(() => server.pendingHandshakes === 0, 2000, "the handshake to go");
  });

  await t.step("a reset after an HTTP answer, before it was read", async () => {
    const conn = await scope.raw(server.port);
    await conn.write(enc.encode(handshake({ "Sec-WebSocket-Version": "8" })));
    await waitFor(() => server.stats.responses[426] === 1, 2000, "the 426");
    await delay(20);
    conn.close();
    await waitFor(() => server.pendingHandshakes === 0, 3000, "the lingering close");
  });

  // Still healthy.
  const c = await scope.client(server.port);
  await c.upgrade(handshake(), rawFrame({ opcode: 1, payload: "alive" }));
  assert.equal(await c.readText(), "alive");
  assert.equal(rec.closes.length, 2);
});

serverTest("server: churn of 300 connections, clean and abrupt", async (scope) => {
  const { rec, options } = echoHandlers();
  const server = scope.serve(options);
  const port = server.port;
  const TOTAL = 300;
  const BATCH = 30;
  let upgrades = 0;
  const one = async (i: number): Promise<void> => {
    switch (i % 6) {
      case 0: { // clean closing handshake
        upgrades++;
        const c = await scope.client(port);
        await c.upgrade(handshake(), rawFrame({ opcode: 1, payload: `m${i}` }));
        assert.equal(await c.readText(), `m${i}`);
        await c.write(rawFrame({ opcode: 8, payload: closePayload(1000) }));
        assert.equal((await c.readClose()).code, 1000);
        await c.expectEof();
        await c.close();
        return;
      }
      case 1: { // reset right after the upgrade (101 unread)
        upgrades++;
        const conn = await scope.raw(port);
        await conn.write(enc.encode(handshake()));
        await delay(5);
        conn.close();
        return;
      }
      case 2: { // reset in the middle of a frame
        upgrades++;
        const conn = await scope.raw(port);
        const frame = rawFrame({ opcode: 2, payload: new Uint8Array(1000) });
        await conn.write(concat(enc.encode(handshake()), frame.subarray(0, 500)));
        await delay(5);
        conn.close();
        return;
      }
      case 3: { // reset in the middle of the handshake
        const conn = await scope.raw(port);
        await conn.write(enc.encode(handshake().slice(0, 50)));
        conn.close();
        return;
      }
      case 4: { // FIN without a close frame after an echo
        upgrades++;
        const c = await scope.client(port);
        await c.upgrade(handshake(), rawFrame({ opcode: 1, payload: "x" }));
        assert.equal(await c.readText(), "x");
        await c.close();
        return;
      }
      default: { // connect and close without a byte
        const conn = await scope.raw(port);
        conn.close();
        return;
      }
    }
  };
  for (let i = 0; i < TOTAL; i += BATCH) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < i + BATCH && j < TOTAL; j++) batch.push(one(j));
    await Promise.all(batch);
  }
  await waitFor(
    () => server.manager.size === 0 && server.pendingHandshakes === 0,
    5000,
    "every connection to be released",
  );
  // Upgrades whose reset beat the server's read are refused before opening: every opened
  // connection closed exactly once.
  assert.equal(rec.closes.length, rec.opens.length);
  assert.equal(new Set(rec.closes.map((c) => c.ws)).size, rec.closes.length);
  assert.ok(rec.opens.length >= upgrades / 2, `only ${rec.opens.length} of ${upgrades} opened`);
  assert.equal(server.stats.accepted, TOTAL);
  const c = await scope.client(port);
  await c.upgrade(handshake(), rawFrame({ opcode: 1, payload: "still here" }));
  assert.equal(await c.readText(), "still here");
});

// ---------------------------------------------------------------------------- shutdown

serverTest("server: shutdown with 20 connected clients", async (scope) => {
  const { rec, options } = echoHandlers();
  const server = scope.serve(options);
  const clients: RawClient[] = [];
  for (let i = 0; i < 20; i++) {
    const c = await scope.client(server.port);
    await c.upgrade();
    clients.push(c);
  }
  // One more in the middle of its handshake: it is dropped.
  const pending = await scope.client(server.port);
  await pending.write("GET /chat HTTP/1.1\r\n");
  await waitFor(() => server.manager.size === 20 && server.pendingHandshakes === 1, 2000, "20");
  let finished = false;
  server.finished.then(() => finished = true);
  const shutdown = server.shutdown();
  await Promise.all(clients.map(async (c) => {
    const close = await c.readClose();
    assert.equal(close.code, 1001);
    await c.write(rawFrame({ opcode: 8, payload: closePayload(1001) }));
    await c.expectEof();
  }));
  await pending.expectEof();
  await shutdown;
  await server.finished;
  assert.ok(finished);
  assert.equal(rec.closes.length, 20);
  assert.ok(
    rec.closes.every((c) => c.code === 1001),
    JSON.stringify(rec.closes.map((c) => c.code)),
  );
  assert.equal(server.manager.size, 0);
  assert.equal(server.manager.running, false);
  // Nobody listens any more.
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: server.port }),
    Deno.errors.ConnectionRefused,
  );
});

serverTest("server: shutdown while fetch handlers are pending", async (scope) => {
  const gates: PromiseWithResolvers<void>[] = [];
  const server = scope.serve({
    async fetch(request, server) {
      const gate = Promise.withResolvers<void>();
      gates.push(gate);
      await gate.promise;
      if (new URL(request.url).pathname === "/ws") {
        server.upgrade(request);
        return;
      }
      return new Response("late");
    },
    websocket: {},
  });
  const a = await scope.client(server.port);
  await a.write(httpRequest("GET", "/"));
  const b = await scope.client(server.port);
  await b.write(handshake({}, "GET /ws HTTP/1.1"));
  await waitFor(() => gates.length === 2, 2000, "both handlers to start");
  await server.shutdown();
  await a.expectEof();
  await b.expectEof();
  // The handlers end after the server: their answers go nowhere, nothing throws.
  for (const g of gates) g.resolve();
  await delay(50);
  assert.equal(server.manager.size, 0);
  assert.equal(server.pendingHandshakes, 0);
  assert.equal(server.stats.upgraded, 0);
});

// ---------------------------------------------------------------------------- resources

serverTest("server: a serve() that cannot bind releases what it created", (scope) => {
  const server = scope.serve({});
  const before = openFds();
  for (let i = 0; i < 5; i++) {
    assert.throws(() => serve({ hostname: "127.0.0.1", port: server.port, poller: scope.kind }));
  }
  assert.throws(() => serve({ hostname: "127.0.0.1", port: 0, maxHeaderBytes: 4 }));
  assert.equal(openFds(), before);
});

serverTest("server: descriptors past FD_SETSIZE get 503 under select, no leak", async (scope) => {
  const errors: unknown[] = [];
  let closes = 0;
  const server = scope.serve({
    websocket: { close: () => void closes++, error: (_ws, err) => void errors.push(err) },
  });
  // Each connection takes two descriptors of this process (client and server side).
  const N = 560;
  const conns: RawClient[] = [];
  const request = enc.encode(handshake());
  for (let i = 0; i < N; i++) {
    const c = await scope.client(server.port);
    conns.push(c);
    await c.write(request);
  }
  const statuses = await Promise.all(conns.map(async (c) => {
    try {
      return (await c.readResponse({ timeoutMs: 5000 })).status;
    } catch {
      return c.reset ? -1 : 0; // reset before the answer could be read
    }
  }));
  const upgraded = statuses.filter((s) => s === 101).length;
  const refused = statuses.filter((s) => s === 503 || s === -1).length;
  assert.equal(upgraded + refused, N, `statuses: ${[...new Set(statuses)]}`);
  if (scope.kind === "select") {
    assert.ok(refused > 0, "expected refusals past FD_SETSIZE");
    assert.equal(errors.length, 1, "the limit is reported once");
  } else {
    assert.equal(upgraded, N);
  }
  assert.equal(server.manager.size, upgraded);
  assert.equal(server.pendingHandshakes, 0);
  for (const c of conns) await c.close();
  await waitFor(() => server.manager.size === 0, 5000, "every connection to close");
  assert.equal(closes, upgraded);
  // Healthy afterwards.
  const c = await scope.client(server.port);
  await c.upgrade();
});

// ---------------------------------------------------------------------------- signals

/**
 * Starts tests/fixtures/server/signal_server.ts (an echo server with `signals: true`) in a
 * child process and connects three clients that each had one echo.
 */
async function signalServerWithClients(scope: Scope): Promise<{
  child: Child;
  clients: RawClient[];
}> {
  const child = new Child(Deno.execPath(), [
    "run",
    "--allow-ffi",
    new URL("../fixtures/server/signal_server.ts", import.meta.url).pathname,
    scope.kind,
  ], { stderr: "inherit" });
  const clients: RawClient[] = [];
  try {
    const first = await child.stdout.line(10_000, "the port line");
    const port = (JSON.parse(first) as { port: number }).port;
    for (let i = 0; i < 3; i++) {
      const c = await scope.client(port);
      await c.upgrade(handshake(), rawFrame({ opcode: 1, payload: `c${i}` }));
      assert.equal(await c.readText(), `c${i}`);
      clients.push(c);
    }
  } catch (err) {
    await child.stop();
    throw err;
  }
  return { child, clients };
}

serverTest("server: SIGTERM with signals: true closes clients with 1001, exit 0", async (scope) => {
  const { child, clients } = await signalServerWithClients(scope);
  try {
    const start = performance.now();
    child.process.kill("SIGTERM");
    await Promise.all(clients.map(async (c) => {
      assert.equal((await c.readClose()).code, 1001);
      await c.write(rawFrame({ opcode: 8, payload: closePayload(1001) }));
      await c.expectEof();
    }));
    const out = await child.stdout.rest();
    const status = await child.status;
    assert.equal(status.code, 0);
    assert.ok(performance.now() - start < 4000, "exit took too long");
    assert.deepEqual(out.trim().split("\n"), ["closed 1001", "closed 1001", "closed 1001"]);
  } finally {
    await child.stop();
  }
});

serverTest(
  "server: a second SIGTERM during the shutdown ends the close wait, exit 0",
  async (scope) => {
    const { child, clients } = await signalServerWithClients(scope);
    try {
      const start = performance.now();
      child.process.kill("SIGTERM");
      // The clients never answer the close: without the second signal the server would wait
      // for its close timeout (5 s); before the fix the second signal killed it (no exit 0).
      for (const c of clients) assert.equal((await c.readClose()).code, 1001);
      child.process.kill("SIGTERM");
      for (const c of clients) await c.expectEof();
      const out = await child.stdout.rest();
      const status = await child.status;
      assert.equal(status.signal, null);
      assert.equal(status.code, 0);
      assert.ok(performance.now() - start < 4000, "the second signal did not end the wait");
      assert.deepEqual(out.trim().split("\n"), ["closed 1006", "closed 1006", "closed 1006"]);
    } finally {
      await child.stop();
    }
  },
);

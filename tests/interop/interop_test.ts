/**
 * Interoperability with WebSocket clients that no one here wrote: Deno's built-in
 * `WebSocket`, the `ws` package from npm, and Python's `websockets` library (Debian's
 * `python3-websockets`, driven by tests/fixtures/interop/ws_client.py).
 *
 * Each client runs against our server, started in this process under the epoll and the
 * select poller: text and binary echo, a 16 MiB message, 1,000 messages in order, pings
 * both ways, close codes both ways, subprotocol selection through `fetch` +
 * `server.upgrade`, and the SIGTERM shutdown of the examples/echo.ts process. Every
 * server is shut down and every step checks that no descriptor leaked.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// An independent client pinned inline, on purpose (not a dependency of the library).
// @ts-types="npm:@types/ws@8"
// deno-lint-ignore no-import-prefix
import NodeWebSocket from "npm:ws@8";
import { serve, type Server, type WebSocket as FdwsWebSocket } from "../../mod.ts";
import { filled } from "../fixtures/bytes.ts";
import {
  Child,
  freePort,
  Inbox,
  LINUX_POLLERS,
  type LinuxPoller,
  stepPerPoller,
  within,
} from "../fixtures/harness.ts";
import { PYTHON_WEBSOCKETS, requireTool } from "../deps/tools.ts";

const onLinux = Deno.build.os === "linux";

const BIG = 16 * 1024 * 1024;
/** Longest wait of one exchange; every wait in this file is bounded. */
const STEP_MS = 15_000;
/** What SIGTERM to exit may take for examples/echo.ts. */
const SIGTERM_EXIT_MS = 7_000;
const ECHO_EXAMPLE = new URL("../../examples/echo.ts", import.meta.url).pathname;
const PY_CLIENT = new URL("../fixtures/interop/ws_client.py", import.meta.url).pathname;
const REPO = new URL("../../", import.meta.url).pathname;

const TEXTS: readonly string[] = [
  "hello, interop",
  "",
  "héllo wörld — 日本語 — ÆØÅ — 🎉🚀 𝄞 — \u0000 end",
];
/** A text message far larger than one read (256 KiB), so multi-byte characters straddle reads. */
const LONG_TEXT = "€😀x—".repeat(150_000);
const BINARY_SIZES: readonly number[] = [0, 1, 125, 126, 127, 256, 65535, 65536, 70000];
const MANY = 1000;

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

async function sha256(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------------ our server

interface ConnData {
  id: string;
  path: string;
}

/** What the server saw of one connection (keyed by the `id` query parameter). */
interface ConnRecord {
  protocol: string | null;
  messages: number;
  bigSha: Promise<string> | null;
  pongs: string[];
  close: PromiseWithResolvers<{ code: number; reason: string }>;
}

/** Our server with the routes the scenarios use: /echo, /ctl (commands) and /proto. */
class Harness {
  readonly server: Server<ConnData>;
  readonly records: Map<string, ConnRecord> = new Map();
  readonly errors: unknown[] = [];

  constructor(poller: LinuxPoller) {
    this.server = serve<ConnData>({
      hostname: "127.0.0.1",
      port: 0,
      poller,
      fetch: (request, server) => {
        const url = new URL(request.url);
        const data: ConnData = { id: url.searchParams.get("id") ?? "anon", path: url.pathname };
        if (url.pathname === "/proto") {
          if (server.upgrade(request, { data, protocol: "b" })) return;
        } else if (url.pathname === "/echo" || url.pathname === "/ctl") {
          if (server.upgrade(request, { data })) return;
        }
        return new Response("not found", { status: 404 });
      },
      websocket: {
        open: (ws) => {
          this.record(ws.data.id).protocol = ws.protocol;
        },
        message: (ws, data) => this.#onMessage(ws, data),
        pong: (ws, payload) => {
          const text = utf8Strict.decode(payload);
          this.record(ws.data.id).pongs.push(text);
          if (ws.data.path === "/ctl") ws.send(`ponged:${text}`);
        },
        close: (ws, code, reason) => {
          this.record(ws.data.id).close.resolve({ code, reason });
        },
        error: (_ws, err) => {
          this.errors.push(err);
        },
      },
    });
  }

  get base(): string {
    return `ws://127.0.0.1:${this.server.port}`;
  }

  record(id: string): ConnRecord {
    let r = this.records.get(id);
    if (r === undefined) {
      r = {
        protocol: null,
        messages: 0,
        bigSha: null,
        pongs: [],
        close: Promise.withResolvers(),
      };
      this.records.set(id, r);
    }
    return r;
  }

  /** The close code and reason the server's `close` handler saw for `id`. */
  serverClose(id: string): Promise<{ code: number; reason: string }> {
    return within(this.record(id).close.promise, STEP_MS, `server close handler of ${id}`);
  }

  #onMessage(ws: FdwsWebSocket<ConnData>, data: string | Uint8Array | ArrayBuffer): void {
    const rec = this.record(ws.data.id);
    rec.messages++;
    if (ws.data.path === "/ctl" && typeof data === "string" && data.startsWith("cmd:")) {
      if (data === "cmd:close") ws.close(4001, "bye");
      else if (data.startsWith("cmd:ping:")) ws.ping(data.slice("cmd:ping:".length));
      return;
    }
    const bytes = typeof data === "string" || data instanceof Uint8Array
      ? data
      : new Uint8Array(data);
    if (typeof bytes !== "string" && bytes.length >= BIG) rec.bigSha = sha256(bytes);
    ws.send(bytes);
  }

  async shutdown(): Promise<void> {
    await within(this.server.shutdown(), STEP_MS, "server.shutdown()");
  }
}

// ------------------------------------------------------------------ JS clients

type Msg = string | Uint8Array;

interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
}

/** One client connection, whatever library made it. */
interface ClientConn {
  readonly protocol: string;
  send(data: Msg): void;
  /** Sends one message as a first frame and continuations; null when the API cannot. */
  readonly sendFragments: ((parts: Msg[], binary: boolean) => void) | null;
  /** The next message, within `ms`. */
  next(ms?: number): Promise<Msg>;
  /** Sends a ping and resolves with the payload of the pong; null when the API has none. */
  readonly ping: ((payload: Uint8Array) => Promise<Uint8Array>) | null;
  close(code: number, reason: string): void;
  /** Resolves when the client saw the connection close. */
  readonly closed: Promise<CloseInfo>;
  /** Closes whatever is still open (for `finally`); bounded. */
  dispose(): Promise<void>;
}

interface ClientKind {
  readonly name: string;
  /** The API can send pings (Deno's built-in client cannot). */
  readonly canPing: boolean;
  /** The API can send a message as several frames. */
  readonly canFragment: boolean;
  connect(url: string, protocols?: string[]): Promise<ClientConn>;
}

/** What both client adapters track of a connection: its open, its messages, its close. */
class ConnEvents {
  readonly inbox: Inbox<Msg> = new Inbox<Msg>();
  readonly opened: PromiseWithResolvers<void> = Promise.withResolvers<void>();
  readonly closed: PromiseWithResolvers<CloseInfo> = Promise.withResolvers<CloseInfo>();
  isClosed = false;

  /** The client's close event. */
  onClose(e: { code: number; reason: string; wasClean: boolean }): void {
    this.isClosed = true;
    this.opened.reject(new Error(`closed before open: ${e.code}`));
    this.inbox.end(`closed with ${e.code}`);
    this.closed.resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean });
  }

  /** Waits for the open; when it fails, `abort()`s the client and waits for its close. */
  async awaitOpen(what: string, abort: () => void, client: string): Promise<void> {
    try {
      await within(this.opened.promise, STEP_MS, what);
    } catch (err) {
      if (!this.isClosed) abort();
      await within(this.closed.promise, STEP_MS, `${client} close after a failed open`);
      throw err;
    }
  }
}

const denoClient: ClientKind = {
  name: "deno",
  canPing: false,
  canFragment: false,
  async connect(url: string, protocols?: string[]): Promise<ClientConn> {
    const ws = new WebSocket(url, protocols);
    ws.binaryType = "arraybuffer";
    const ev = new ConnEvents();
    ws.onopen = () => ev.opened.resolve();
    ws.onerror = (e) => {
      ev.opened.reject(new Error(`Deno WebSocket error: ${(e as ErrorEvent).message ?? e.type}`));
    };
    ws.onmessage = (e: MessageEvent) => {
      ev.inbox.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data as ArrayBuffer));
    };
    ws.onclose = (e: CloseEvent) => ev.onClose(e);
    await ev.awaitOpen(`Deno WebSocket open ${url}`, () => ws.close(), "Deno WebSocket");
    return {
      protocol: ws.protocol,
      send: (data) => ws.send(data as string | BufferSource),
      sendFragments: null,
      next: (ms) => ev.inbox.next(ms ?? STEP_MS),
      ping: null,
      close: (code, reason) => ws.close(code, reason),
      closed: ev.closed.promise,
      dispose: async () => {
        if (!ev.isClosed && ws.readyState !== WebSocket.CLOSING) ws.close();
        await within(ev.closed.promise, STEP_MS, "Deno WebSocket dispose");
      },
    };
  },
};

const npmWsClient: ClientKind = {
  name: "npm-ws",
  canPing: true,
  canFragment: true,
  async connect(url: string, protocols?: string[]): Promise<ClientConn> {
    const ws = new NodeWebSocket(url, protocols, { maxPayload: 64 * 1024 * 1024 });
    const ev = new ConnEvents();
    let pongWaiter: PromiseWithResolvers<Uint8Array> | null = null;
    ws.on("open", () => ev.opened.resolve());
    ws.on("error", (err: Error) => ev.opened.reject(err));
    ws.on("message", (data: NodeWebSocket.RawData, isBinary: boolean) => {
      const bytes = Array.isArray(data)
        ? new Uint8Array(Buffer.concat(data))
        : data instanceof ArrayBuffer
        ? new Uint8Array(data)
        : new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
      ev.inbox.push(isBinary ? bytes : utf8Strict.decode(bytes));
    });
    ws.on("pong", (data: Buffer) => {
      pongWaiter?.resolve(new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
    });
    // The WHATWG-style event carries wasClean (close frames sent and received).
    ws.addEventListener("close", (e: NodeWebSocket.CloseEvent) => ev.onClose(e));
    await ev.awaitOpen(`ws open ${url}`, () => ws.terminate(), "ws");
    return {
      protocol: ws.protocol,
      send: (data) => ws.send(data),
      sendFragments: (parts, binary) => {
        parts.forEach((part, i) => ws.send(part, { fin: i === parts.length - 1, binary }));
      },
      next: (ms) => ev.inbox.next(ms ?? STEP_MS),
      ping: (payload) => {
        pongWaiter = Promise.withResolvers<Uint8Array>();
        ws.ping(payload);
        return within(pongWaiter.promise, STEP_MS, "ws pong");
      },
      close: (code, reason) => ws.close(code, reason),
      closed: ev.closed.promise,
      dispose: async () => {
        if (ws.readyState === NodeWebSocket.OPEN) ws.close(1000);
        try {
          await within(ev.closed.promise, 3_000, "ws closing handshake");
        } finally {
          if (!ev.isClosed) ws.terminate();
          await within(ev.closed.promise, STEP_MS, "ws dispose");
        }
      },
    };
  },
};

/** Runs `fn` on a new connection and always disposes of it. */
async function withConn(
  kind: ClientKind,
  url: string,
  fn: (conn: ClientConn) => Promise<void>,
  protocols?: string[],
): Promise<void> {
  const conn = await kind.connect(url, protocols);
  try {
    await fn(conn);
  } finally {
    await conn.dispose();
  }
}

async function echoOnce(conn: ClientConn, text: string): Promise<void> {
  conn.send(text);
  assert.equal(await conn.next(), text);
}

// ------------------------------------------------------------------ JS scenarios

type Scenario = (h: Harness, kind: ClientKind, id: string) => Promise<void>;

/** Scenarios by step name; those needing an API that a client lacks are ignored for it. */
const NEEDS: Record<string, "canPing" | "canFragment"> = {
  "fragmented messages reassembled": "canFragment",
  "client ping answered with a pong carrying the same payload": "canPing",
};

const SCENARIOS: Record<string, Scenario> = {
  "text echo (ASCII, empty, multi-byte UTF-8 with 4-byte emoji)": (h, kind, id) =>
    withConn(kind, `${h.base}/echo?id=${id}`, async (conn) => {
      for (const s of TEXTS) {
        conn.send(s);
        const got = await conn.next();
        assert.equal(typeof got, "string", `text message ${JSON.stringify(s)} came back as bytes`);
        assert.equal(got, s);
      }
      conn.send(LONG_TEXT);
      const got = await conn.next();
      assert.equal(typeof got, "string");
      assert.equal((got as string).length, LONG_TEXT.length);
      assert.ok(got === LONG_TEXT, "the long multi-byte text changed");
    }),

  "fragmented messages reassembled": (h, kind, id) =>
    withConn(kind, `${h.base}/echo?id=${id}`, async (conn) => {
      assert.ok(conn.sendFragments !== null);
      // The 4-byte emoji is split across frames: only the whole message must be valid UTF-8.
      const emoji = utf8.encode("🎉");
      conn.sendFragments(["frag-1 ", "frag-2 ", "frag-3"], false);
      assert.equal(await conn.next(), "frag-1 frag-2 frag-3");
      conn.sendFragments([emoji.subarray(0, 2), emoji.subarray(2)], false);
      assert.equal(await conn.next(), "🎉");
      const parts = [filled(1000, 1), filled(70000, 2), filled(1, 3)];
      conn.sendFragments(parts, true);
      const whole = new Uint8Array(71001);
      whole.set(parts[0]);
      whole.set(parts[1], 1000);
      whole.set(parts[2], 71000);
      assert.deepEqual(await conn.next(), whole);
      assert.equal(h.record(id).messages, 3);
    }),

  "binary echo (exact bytes, every length encoding)": (h, kind, id) =>
    withConn(kind, `${h.base}/echo?id=${id}`, async (conn) => {
      for (const n of BINARY_SIZES) {
        const data = filled(n, n + 1);
        conn.send(data);
        const got = await conn.next();
        assert.ok(got instanceof Uint8Array, `binary message of ${n} bytes came back as text`);
        assert.equal(got.length, n);
        assert.deepEqual(got, data, `binary message of ${n} bytes changed`);
      }
    }),

  "16 MiB binary message echoed intact": (h, kind, id) =>
    withConn(kind, `${h.base}/echo?id=${id}`, async (conn) => {
      const data = filled(BIG, 0xc0ffee);
      const sent = await sha256(data);
      conn.send(data);
      const got = await conn.next(STEP_MS * 2);
      assert.ok(got instanceof Uint8Array);
      assert.equal(got.length, BIG);
      assert.equal(await sha256(got), sent, "the echoed 16 MiB message differs");
      const rec = h.record(id);
      assert.ok(rec.bigSha !== null, "the server did not see the 16 MiB message");
      assert.equal(await rec.bigSha, sent, "the server received different bytes");
    }),

  "1,000 small messages in order": (h, kind, id) =>
    withConn(kind, `${h.base}/echo?id=${id}`, async (conn) => {
      const expected = (i: number): Msg =>
        i % 10 === 9 ? new Uint8Array([i >> 8, i & 0xff, 0xee]) : `#${i}`;
      for (let i = 0; i < MANY; i++) conn.send(expected(i));
      for (let i = 0; i < MANY; i++) {
        assert.deepEqual(await conn.next(), expected(i), `message ${i} out of order or changed`);
      }
      assert.equal(h.record(id).messages, MANY);
    }),

  "client ping answered with a pong carrying the same payload": (h, kind, id) =>
    withConn(kind, `${h.base}/echo?id=${id}`, async (conn) => {
      assert.ok(conn.ping !== null);
      for (const text of ["", `ping-✓-${id}`, "p".repeat(125)]) {
        const payload = utf8.encode(text);
        assert.deepEqual(await conn.ping(payload), payload, "pong payload differs from the ping");
      }
      await echoOnce(conn, "still alive");
    }),

  "server ping answered; the client survives": (h, kind, id) =>
    withConn(kind, `${h.base}/ctl?id=${id}`, async (conn) => {
      // The client's automatic pong reaches the server's pong handler, which tells the
      // client; then the connection still echoes.
      conn.send(`cmd:ping:srv-${id}`);
      assert.equal(await conn.next(), `ponged:srv-${id}`);
      assert.deepEqual(h.record(id).pongs, [`srv-${id}`]);
      await echoOnce(conn, "still alive");
    }),

  "client closes with 4000 + reason": (h, kind, id) =>
    withConn(kind, `${h.base}/echo?id=${id}`, async (conn) => {
      await echoOnce(conn, "before close");
      const t0 = performance.now();
      conn.close(4000, "client done ✓");
      const seen = await within(conn.closed, STEP_MS, "client close event");
      assert.equal(seen.code, 4000, "the server did not echo the close code");
      assert.equal(seen.wasClean, true, "the closing handshake was not clean");
      assert.ok(performance.now() - t0 < 3_000, "the server did not close TCP promptly");
      assert.deepEqual(await h.serverClose(id), { code: 4000, reason: "client done ✓" });
    }),

  "server closes with 4001 'bye'": (h, kind, id) =>
    withConn(kind, `${h.base}/ctl?id=${id}`, async (conn) => {
      conn.send("cmd:close");
      const seen = await within(conn.closed, STEP_MS, "client close event");
      assert.deepEqual(seen, { code: 4001, reason: "bye", wasClean: true });
      assert.equal((await h.serverClose(id)).code, 4001);
    }),

  "subprotocol selected by fetch + server.upgrade": (h, kind, id) =>
    withConn(kind, `${h.base}/proto?id=${id}`, async (conn) => {
      assert.equal(conn.protocol, "b");
      assert.equal(h.record(id).protocol, "b");
      await echoOnce(conn, "protocol b");
    }, ["a", "b"]),
};

// ------------------------------------------------------------------ subprocesses

/** Starts examples/echo.ts on a free port and waits for its "listening" line. */
async function startEchoExample(poller: LinuxPoller): Promise<{ child: Child; port: number }> {
  // The free port is probed, then released: another process may take it in between, so
  // a start that fails with EADDRINUSE is tried again on another port (at most 3 times).
  for (let attempt = 1;; attempt++) {
    const port = freePort();
    const child = new Child(Deno.execPath(), [
      "run",
      "--allow-ffi",
      ECHO_EXAMPLE,
      "--port",
      String(port),
      "--poller",
      poller,
    ], { cwd: REPO });
    try {
      await child.waitFor((l) => l.includes("listening"), STEP_MS, "examples/echo.ts 'listening'");
      return { child, port };
    } catch (err) {
      const stderr = await child.stop();
      if (attempt < 3 && /EADDRINUSE|address already in use/i.test(stderr)) continue;
      throw new Error(`${(err as Error).message}; stderr: ${stderr}`);
    }
  }
}

/** SIGTERM to examples/echo.ts: the process must exit with 0 within 7 s. */
async function terminateEchoExample(child: Child): Promise<{ code: number; ms: number }> {
  const t0 = performance.now();
  child.process.kill("SIGTERM");
  const status = await within(child.status, SIGTERM_EXIT_MS, "examples/echo.ts exit after SIGTERM");
  return { code: status.code, ms: performance.now() - t0 };
}

async function echoExampleSigterm(kind: ClientKind, poller: LinuxPoller): Promise<void> {
  const { child, port } = await startEchoExample(poller);
  let conn: ClientConn | null = null;
  try {
    conn = await kind.connect(`ws://127.0.0.1:${port}/any/path`);
    await echoOnce(conn, "hello before SIGTERM");
    conn.send(filled(70000, 7));
    assert.deepEqual(await conn.next(), filled(70000, 7));
    const exit = await terminateEchoExample(child);
    const seen = await within(conn.closed, SIGTERM_EXIT_MS, "client close event after SIGTERM");
    assert.equal(seen.code, 1001, `the client saw ${seen.code} instead of 1001`);
    assert.equal(seen.wasClean, true, "the 1001 close was not a clean closing handshake");
    assert.equal(exit.code, 0, `examples/echo.ts exited with ${exit.code}`);
  } finally {
    await conn?.dispose();
    const stderr = await child.stop();
    assert.ok(!/error|uncaught/i.test(stderr), `examples/echo.ts wrote to stderr: ${stderr}`);
  }
}

// ------------------------------------------------------------------ Python

/**
 * The Python interpreter that has `websockets` (FDWS_PYTHON, set by `deno task test`, else
 * `python3`, then the system's `/usr/bin/python3`: see tests/deps/tools.ts). Fails, never
 * skips, without it.
 */
function findPython(): Promise<string> {
  return requireTool(PYTHON_WEBSOCKETS);
}

interface PyResult {
  scenario: string;
  ok: boolean;
  error?: string;
  [key: string]: unknown;
}

async function runPythonSuite(h: Harness, tag: string): Promise<Map<string, PyResult>> {
  const python = await findPython();
  const child = new Child(python, [PY_CLIENT, "suite", h.base, tag], { cwd: REPO });
  const results = new Map<string, PyResult>();
  try {
    const deadline = performance.now() + 45_000;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error("the Python suite did not finish within 45 s");
      const line = await child.stdout.next(left);
      if (line === null) break;
      if (line.trim() === "") continue;
      const r = JSON.parse(line) as PyResult;
      results.set(r.scenario, r);
    }
    const status = await within(child.status, STEP_MS, "python exit");
    assert.equal(
      status.code,
      0,
      `ws_client.py exited with ${status.code}: ${await child.stderrWithin(STEP_MS)}`,
    );
  } finally {
    await child.stop();
  }
  return results;
}

function pyResult(results: Map<string, PyResult>, name: string): PyResult {
  const r = results.get(name);
  assert.ok(r !== undefined, `the Python client reported nothing for ${name}`);
  assert.ok(r.ok, `Python ${name} failed: ${r.error}`);
  return r;
}

async function checkPythonResults(
  t: Deno.TestContext,
  h: Harness,
  results: Map<string, PyResult>,
  tag: string,
): Promise<void> {
  await t.step("text echo (ASCII, empty, multi-byte UTF-8 with 4-byte emoji)", () => {
    const r = pyResult(results, "text");
    assert.deepEqual(r.got, r.sent);
    assert.deepEqual(r.sent, TEXTS);
    assert.deepEqual(r.types, TEXTS.map(() => "str"));
    assert.equal(r.long_bytes, utf8.encode(LONG_TEXT).length);
    assert.equal(r.long_equal, true, "the long multi-byte text changed");
  });
  await t.step("fragmented messages reassembled", () => {
    const r = pyResult(results, "fragments");
    assert.equal(r.text, "frag-1 frag-2 frag-3");
    assert.equal(r.binary_equal, true);
    assert.equal(h.record(`py-frag-${tag}`).messages, 2);
  });
  await t.step("binary echo (exact bytes, every length encoding)", () => {
    const r = pyResult(results, "binary");
    const rows = r.results as { size: number; type: string; equal: boolean; got_len: number }[];
    assert.deepEqual(rows.map((row) => row.size), BINARY_SIZES);
    for (const row of rows) {
      assert.deepEqual(row, { size: row.size, type: "bytes", equal: true, got_len: row.size });
    }
  });
  await t.step("16 MiB binary message echoed intact", async () => {
    const r = pyResult(results, "big");
    assert.equal(r.got_len, BIG);
    assert.equal(r.type, "bytes");
    assert.equal(r.got_sha, r.sent_sha);
    const rec = h.record(`py-big-${tag}`);
    assert.ok(rec.bigSha !== null, "the server did not see the 16 MiB message");
    assert.equal(await rec.bigSha, r.sent_sha, "the server received different bytes");
  });
  await t.step("1,000 small messages in order", () => {
    const r = pyResult(results, "many");
    assert.equal(r.first_bad, null);
    assert.equal(r.count, MANY);
    assert.equal(h.record(`py-many-${tag}`).messages, MANY);
  });
  await t.step("client ping answered with a pong carrying the same payload", () => {
    const r = pyResult(results, "ping");
    // Each of the three futures completes only on a pong with its exact payload.
    assert.equal((r.latency as number[]).length, 3);
  });
  await t.step("server ping answered; the client survives", () => {
    const r = pyResult(results, "ping");
    assert.equal(r.notice, `ponged:srv-${tag}`);
    assert.equal(r.after, "still alive");
    assert.deepEqual(h.record(`py-ping-${tag}`).pongs, [`srv-${tag}`]);
  });
  await t.step("client closes with 4000 + reason", async () => {
    const r = pyResult(results, "client_close");
    assert.equal(r.sent, 4000);
    assert.equal(r.rcvd, 4000, "the server did not echo the close code");
    assert.equal(r.code, 4000);
    assert.ok((r.seconds as number) < 3, `closing took ${r.seconds} s: TCP not closed promptly`);
    assert.deepEqual(await h.serverClose(`py-cclose-${tag}`), {
      code: 4000,
      reason: "client done ✓",
    });
  });
  await t.step("server closes with 4001 'bye'", async () => {
    const r = pyResult(results, "server_close");
    assert.equal(r.rcvd, 4001);
    assert.equal(r.rcvd_reason, "bye");
    assert.equal(r.code, 4001);
    assert.equal(r.reason, "bye");
    assert.equal(r.sent, 4001, "the client's echo of the close frame was not sent");
    assert.ok((r.seconds as number) < 3, `closing took ${r.seconds} s: TCP not closed promptly`);
    assert.equal((await h.serverClose(`py-sclose-${tag}`)).code, 4001);
  });
  await t.step("subprotocol selected by fetch + server.upgrade", () => {
    const r = pyResult(results, "proto");
    assert.equal(r.protocol, "b");
    assert.equal(r.echo, "proto echo");
    assert.equal(h.record(`py-proto-${tag}`).protocol, "b");
  });
}

async function pythonEchoExampleSigterm(poller: LinuxPoller): Promise<void> {
  const python = await findPython();
  const { child, port } = await startEchoExample(poller);
  let py: Child | null = null;
  try {
    py = new Child(python, [PY_CLIENT, "hold", `ws://127.0.0.1:${port}/`], { cwd: REPO });
    const ready = JSON.parse(
      await py.waitFor((l) => l.includes('"ready"'), STEP_MS, "Python client ready"),
    );
    assert.equal(ready.echo, "hello before SIGTERM");
    const exit = await terminateEchoExample(child);
    const line = await py.waitFor((l) => l.includes('"code"'), STEP_MS, "Python close report");
    assert.deepEqual(JSON.parse(line), { code: 1001, reason: "server shutting down", clean: true });
    assert.equal(exit.code, 0, `examples/echo.ts exited with ${exit.code}`);
    const pyStatus = await within(py.status, STEP_MS, "python exit");
    assert.equal(pyStatus.code, 0, `ws_client.py hold exited with ${pyStatus.code}`);
  } finally {
    await py?.stop();
    const stderr = await child.stop();
    assert.ok(!/error|uncaught/i.test(stderr), `examples/echo.ts wrote to stderr: ${stderr}`);
  }
}

// ------------------------------------------------------------------ tests

/** One connection, one echo, one shutdown: lets Deno open what it opens lazily. */
async function warmUp(kind: ClientKind | null): Promise<void> {
  const h = new Harness("epoll");
  try {
    if (kind !== null) {
      await withConn(kind, `${h.base}/echo?id=warm-up`, (conn) => echoOnce(conn, "warm"));
    } else {
      const python = await findPython();
      const out = await new Deno.Command(python, {
        args: ["-c", "pass"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
        signal: AbortSignal.timeout(STEP_MS),
      }).output();
      assert.ok(out.success);
    }
  } finally {
    await h.shutdown();
  }
  // A child process (and its pipes) once, for the SIGTERM step.
  await new Deno.Command(Deno.execPath(), { args: ["--version"], stdout: "null", stderr: "null" })
    .output();
}

/** A test per client: every scenario under each poller, then the echo.ts SIGTERM check. */
function interopTest(
  name: string,
  kind: ClientKind | null,
): void {
  Deno.test({
    name,
    ignore: !onLinux,
    fn: async (t) => {
      await warmUp(kind);
      await stepPerPoller(t, LINUX_POLLERS, async (poller, t) => {
        const h = new Harness(poller);
        try {
          if (kind !== null) {
            for (const [i, [title, scenario]] of Object.entries(SCENARIOS).entries()) {
              const need = NEEDS[title];
              await t.step({
                name: title,
                ignore: need !== undefined && !kind[need],
                fn: () => scenario(h, kind, `${kind.name}-${poller}-${i}`),
              });
            }
          } else {
            const results = await runPythonSuite(h, poller);
            await checkPythonResults(t, h, results, poller);
          }
        } finally {
          await h.shutdown();
        }
        assert.equal(h.server.manager.size, 0, "connections left after shutdown");
        assert.deepEqual(h.errors, [], "the server reported callback errors");
        await t.step(
          "examples/echo.ts: SIGTERM closes the client with 1001, exit 0",
          () => kind !== null ? echoExampleSigterm(kind, poller) : pythonEchoExampleSigterm(poller),
        );
      }, 0);
    },
  });
}

interopTest("interop: Deno built-in WebSocket client", denoClient);
interopTest("interop: npm ws@8 client", npmWsClient);
interopTest("interop: Python websockets client", null);

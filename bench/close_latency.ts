/**
 * Close handshakes under load: how long the server takes to answer a client's close frame
 * after a large message, while other clients do the same and background traffic runs.
 *
 *   deno run -A bench/close_latency.ts [--clients 4] [--size 16777216] [--rounds 3]
 *     [--background 50] [--read-before-close all|NUMBER] [--read-rate BYTES_PER_S]
 *     [--poller epoll|select] [--port P (an already running server: none is started)]
 *
 * One fdws echo server (bench/server.ts, pinned to cpu0) unless --port names a running one;
 * the clients run in this process (pinned to cpu1). Each round, --clients connections at once
 * each send one binary message of --size bytes, then read its echo: all of it
 * (`--read-before-close all`, what Autobahn's case 9.2.6 does once the echo arrived), or only
 * the first NUMBER bytes (what a client whose wait timed out does: it closes while megabytes
 * of the echo are still queued on the server), optionally at --read-rate (a slow reader such
 * as a Python client). Then it sends a close frame (1000) and measures until the server's
 * close frame arrives (the bytes of the echo still in flight are read and counted on the way)
 * and until the server closes TCP. Meanwhile --background connections echo 64-byte messages
 * without pause, so the server's loop is busy.
 *
 * Prints per round and in total: close-reply latency (p50, max), the echo bytes the client
 * had to read before the close frame, and the time to the server's FIN. A close reply is late
 * when it comes after more than the frame in progress (RFC 6455 §5.5.1 lets the server finish
 * the frame it is sending; everything queued behind it is the problem measured here).
 *
 * Needs: deno, taskset.
 */

const ROOT = new URL("..", import.meta.url).pathname;

interface Options {
  clients: number;
  size: number;
  rounds: number;
  background: number;
  readBeforeClose: number;
  readRate: number;
  poller: string;
  port: number;
}

function parse(args: string[]): Options {
  const o: Options = {
    clients: 4,
    size: 16 << 20,
    rounds: 3,
    background: 50,
    readBeforeClose: Infinity,
    readRate: 0,
    poller: "epoll",
    port: 0,
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2);
    const value = inline ?? args[++i];
    switch (flag) {
      case "--clients":
        o.clients = Number(value);
        break;
      case "--size":
        o.size = Number(value);
        break;
      case "--rounds":
        o.rounds = Number(value);
        break;
      case "--background":
        o.background = Number(value);
        break;
      case "--read-before-close":
        o.readBeforeClose = value === "all" ? Infinity : Number(value);
        break;
      case "--read-rate":
        o.readRate = Number(value);
        break;
      case "--poller":
        o.poller = value;
        break;
      case "--port":
        o.port = Number(value);
        break;
      default:
        console.error(`unknown flag ${flag}`);
        Deno.exit(2);
    }
  }
  return o;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw WebSocket client connection on Deno's TCP, with a read buffer. */
class Raw {
  conn: Deno.TcpConn;
  buf = new Uint8Array(1 << 20);
  have = 0;
  eof = false;
  /** Payload bytes of a skipped frame still to come (a read may stop inside a frame). */
  frameLeft = 0;
  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }
  static async open(port: number): Promise<Raw> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const raw = new Raw(conn);
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    await raw.writeAll(
      new TextEncoder().encode(
        `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
    for (;;) {
      const text = new TextDecoder().decode(raw.buf.subarray(0, raw.have));
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        if (!text.startsWith("HTTP/1.1 101")) throw new Error(`handshake refused: ${text}`);
        raw.consume(end + 4);
        return raw;
      }
      if (!(await raw.fill())) throw new Error("closed during the handshake");
    }
  }
  async writeAll(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) at += await this.conn.write(bytes.subarray(at));
  }
  /** Reads more into the buffer; false at EOF. */
  async fill(max = Infinity): Promise<boolean> {
    if (this.have === this.buf.length) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    const room = this.buf.subarray(this.have, Math.min(this.buf.length, this.have + max));
    let n: number | null;
    try {
      n = await this.conn.read(room);
    } catch {
      n = null;
    }
    if (n === null) {
      this.eof = true;
      return false;
    }
    this.have += n;
    return true;
  }
  consume(n: number): void {
    this.buf.copyWithin(0, n, this.have);
    this.have -= n;
  }
  /**
   * Skips over frames and returns the first frame of `opcode` (header parsed, payload
   * consumed), counting the payload bytes of other frames; reads at most `rate` bytes/s.
   */
  async until(
    opcode: number,
    rate: number,
    limit: number,
  ): Promise<{ found: boolean; fin: boolean; skipped: number; payload: Uint8Array }> {
    let skipped = 0;
    const started = performance.now();
    for (;;) {
      // Drain payload of a frame we skip, without keeping it.
      if (this.frameLeft > 0) {
        const take = Math.min(this.frameLeft, this.have);
        this.consume(take);
        this.frameLeft -= take;
        skipped += take;
        if (skipped >= limit) {
          return { found: false, fin: false, skipped, payload: new Uint8Array(0) };
        }
      }
      if (this.frameLeft === 0 && this.have >= 2) {
        const b0 = this.buf[0];
        let len = this.buf[1] & 0x7f;
        let h = 2;
        if (len === 126) {
          if (this.have < 4) len = -1;
          else {
            len = (this.buf[2] << 8) | this.buf[3];
            h = 4;
          }
        } else if (len === 127) {
          if (this.have < 10) len = -1;
          else {
            len = Number(new DataView(this.buf.buffer, 2, 8).getBigUint64(0));
            h = 10;
          }
        }
        if (len >= 0 && (b0 & 0x0f) === opcode) {
          if (this.have >= h + len) {
            const payload = this.buf.slice(h, h + len);
            this.consume(h + len);
            return { found: true, fin: (b0 & 0x80) !== 0, skipped, payload };
          }
        } else if (len >= 0) {
          this.consume(h);
          this.frameLeft = len;
          continue;
        }
      }
      if (rate > 0) {
        const due = started + (skipped / rate) * 1000 - performance.now();
        if (due > 0) await sleep(due);
      }
      if (!(await this.fill(rate > 0 ? 64 * 1024 : Infinity))) {
        return { found: false, fin: false, skipped, payload: new Uint8Array(0) };
      }
    }
  }
}

/** A masked client frame (key 0: the payload bytes stay as they are). */
function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const h = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = new Uint8Array(h + 4 + n);
  out[0] = 0x80 | opcode;
  if (h === 2) out[1] = 0x80 | n;
  else if (h === 4) {
    out[1] = 0x80 | 126;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(n));
  }
  out.set(payload, h + 4);
  return out;
}

interface Sample {
  closeReplyMs: number;
  finMs: number;
  echoBytesBeforeClose: number;
  bytesAfterCloseSent: number;
  gotClose: boolean;
}

async function bigClient(port: number, o: Options): Promise<Sample> {
  const raw = await Raw.open(port);
  const message = new Uint8Array(o.size);
  for (let i = 0; i < message.length; i += 4096) message[i] = i & 0xff;
  const send = raw.writeAll(frame(2, message));
  // Read the echo (or its first bytes) before closing.
  const limit = o.readBeforeClose;
  // All of it: wait for the whole echo frame. Else skip over its first `limit` bytes.
  let before = 0;
  if (limit === Infinity) {
    // The whole message: its first frame, then continuations until FIN (a server may
    // fragment it).
    let frame = await raw.until(2, o.readRate, Infinity);
    before += frame.payload.length;
    while (frame.found && !frame.fin) {
      frame = await raw.until(0, o.readRate, Infinity);
      before += frame.payload.length;
    }
  } else {
    before = (await raw.until(8, o.readRate, limit)).skipped;
  }
  await send;
  const t0 = performance.now();
  await raw.writeAll(frame(8, Uint8Array.of(0x03, 0xe8)));
  const reply = await raw.until(8, o.readRate, Infinity);
  const t1 = performance.now();
  while (!raw.eof) await raw.fill();
  const t2 = performance.now();
  raw.conn.close();
  return {
    closeReplyMs: t1 - t0,
    finMs: t2 - t0,
    echoBytesBeforeClose: before,
    bytesAfterCloseSent: reply.skipped,
    gotClose: reply.found,
  };
}

async function backgroundClient(port: number, stop: { done: boolean }): Promise<number> {
  const raw = await Raw.open(port);
  const f = frame(2, new Uint8Array(64));
  let n = 0;
  while (!stop.done) {
    await raw.writeAll(f);
    const r = await raw.until(2, 0, Infinity);
    if (!r.found) break;
    n++;
  }
  raw.conn.close();
  return n;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function main(): Promise<void> {
  const o = parse(Deno.args);
  let server: Deno.ChildProcess | null = null;
  let port = o.port;
  if (port === 0) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    port = (l.addr as Deno.NetAddr).port;
    l.close();
    server = new Deno.Command("taskset", {
      args: [
        "-c",
        "0",
        Deno.execPath(),
        "run",
        "--allow-ffi",
        "--allow-read",
        "bench/server.ts",
        "--port",
        String(port),
        "--mode",
        "echo",
        "--poller",
        o.poller,
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("listening")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("server exited");
      out += value;
    }
    reader.releaseLock();
    server.stdout.cancel().catch(() => {});
  }
  const all: Sample[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    const stop = { done: false };
    const bg = Array.from({ length: o.background }, () => backgroundClient(port, stop));
    await sleep(200);
    const samples = await Promise.all(
      Array.from({ length: o.clients }, () => bigClient(port, o)),
    );
    stop.done = true;
    const echoed = (await Promise.all(bg)).reduce((a, b) => a + b, 0);
    all.push(...samples);
    const ms = samples.map((s) => s.closeReplyMs);
    console.log(
      `round ${round}: close reply p50 ${pct(ms, 50).toFixed(1)} ms, max ${
        Math.max(...ms).toFixed(1)
      } ms; echo bytes read after sending close: max ${
        Math.max(...samples.map((s) => s.bytesAfterCloseSent))
      }; FIN max ${Math.max(...samples.map((s) => s.finMs)).toFixed(1)} ms; ` +
        `missing close replies ${samples.filter((s) => !s.gotClose).length}; ` +
        `background echoes ${echoed}`,
    );
  }
  const ms = all.map((s) => s.closeReplyMs);
  const result = {
    options: { ...o, readBeforeClose: String(o.readBeforeClose) },
    samples: all.length,
    close_reply_ms: { p50: pct(ms, 50), p90: pct(ms, 90), max: Math.max(...ms) },
    fin_ms_max: Math.max(...all.map((s) => s.finMs)),
    bytes_after_close_max: Math.max(...all.map((s) => s.bytesAfterCloseSent)),
    missing_close_replies: all.filter((s) => !s.gotClose).length,
  };
  console.log(JSON.stringify(result));
  if (server !== null) {
    server.kill("SIGTERM");
    await server.status;
  }
}

await main();

/**
 * Running out of descriptors (EMFILE) must not spin the accept loop: the server keeps a
 * spare descriptor to accept and close what it cannot serve, stays idle while clients
 * keep knocking, and serves again once descriptors are free. No descriptor of this process
 * may outlive a test.
 *
 * The server runs with DENO_NO_UPDATE_CHECK=1. Deno's update check otherwise opens
 * descriptors on another thread of the server (the CA file, nscd sockets, resolv.conf, a
 * DNS socket held until the resolver gives up, seconds here without network), and a thread
 * that takes the number the listener just freed leaves it without a spare: connections
 * past the limit then wait instead of being refused (for good, before net/tcp.ts took the
 * spare back on the next accept). Tests under tests/net/ cover that case directly.
 */
import assert from "node:assert/strict";
import { assertNoFdLeak, Child, openFds, parseFrame, within } from "../fixtures/harness.ts";

const CLK_TCK = 100;
const LIMIT = 64;

function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/**
 * How long a handshake may go unanswered before it counts as left hanging. A refusal at
 * the limit is an accept and a close: milliseconds even on a loaded machine.
 */
const HANG_MS = 5000;

/**
 * Opens a WebSocket: the connection, "refused" when the server closed or reset it instead,
 * or "hung" when it did not answer within {@link HANG_MS}.
 */
async function handshake(port: number): Promise<Deno.TcpConn | "refused" | "hung"> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const answer = await upgrade(conn);
    if (answer !== conn) conn.close();
    return answer;
  } catch (err) {
    // Connections the server cannot hold are accepted and closed unread: a reset.
    if (!(err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe)) {
      throw err;
    }
    conn.close();
    return "refused";
  }
}

async function upgrade(conn: Deno.TcpConn): Promise<Deno.TcpConn | "refused" | "hung"> {
  const req = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  await conn.write(new TextEncoder().encode(req));
  const buf = new Uint8Array(1024);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const n = await Promise.race([
    conn.read(buf),
    new Promise<"hung">((r) => timer = setTimeout(() => r("hung"), HANG_MS)),
  ]).finally(() => clearTimeout(timer));
  if (n === "hung") return "hung";
  if (n === null || n === 0) return "refused";
  const head = new TextDecoder().decode(buf.subarray(0, n));
  return head.startsWith("HTTP/1.1 101") ? conn : "refused";
}

/**
 * Sends a masked text frame and reads the echo: the payload of the first text frame that
 * comes back, or "" when the connection ends first. Control frames before it (the
 * server's heartbeat ping, due after 30 s of silence) are skipped.
 */
async function echo(conn: Deno.TcpConn, text: string): Promise<string> {
  const payload = new TextEncoder().encode(text);
  const frame = new Uint8Array(6 + payload.length);
  frame[0] = 0x81;
  frame[1] = 0x80 | payload.length;
  const mask = [1, 2, 3, 4];
  frame.set(mask, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ mask[i & 3];
  await conn.write(frame);
  let got = new Uint8Array(0);
  const buf = new Uint8Array(256);
  for (let reads = 0; reads < 16; reads++) {
    for (let parsed = parseFrame(got); parsed !== null; parsed = parseFrame(got)) {
      got = got.slice(parsed.size);
      if (parsed.frame.opcode === 0x1) return new TextDecoder().decode(parsed.frame.payload);
    }
    const n = await conn.read(buf);
    if (n === null) return "";
    const more = new Uint8Array(got.length + n);
    more.set(got);
    more.set(buf.subarray(0, n), got.length);
    got = more;
  }
  return "";
}

for (const poller of ["epoll", "select"]) {
  Deno.test(`EMFILE: the accept loop does not spin and recovers (${poller})`, async () => {
    const fdsBefore = openFds();
    const child = new Child("bash", [
      "-c",
      `ulimit -n ${LIMIT}; exec "${Deno.execPath()}" run --allow-ffi ` +
      `tests/fixtures/limits/emfile_server.ts ${poller}`,
    ], { stdin: "piped", stderr: "inherit", env: { DENO_NO_UPDATE_CHECK: "1" } });
    const nextLine = (): Promise<string> => child.stdout.line(10_000, "a line from the server");
    const stdin = child.process.stdin.getWriter();
    const clients: Deno.TcpConn[] = [];
    try {
      const port = Number((await nextLine()).split(" ")[1]);
      // Fill the server's descriptor table, then keep knocking past it.
      let refused = 0;
      for (let i = 0; i < LIMIT + 40; i++) {
        const c = await handshake(port);
        // One is enough to tell: the others would each wait as long.
        if (c === "hung") {
          assert.fail(`connection ${i} (${clients.length} served) was left hanging`);
        }
        if (c === "refused") refused++;
        else clients.push(c);
      }
      assert.ok(clients.length > 10, `some connections are served (${clients.length})`);
      assert.ok(refused > 0, "connections past the limit are refused, not left hanging");
      const pid = child.process.pid;
      const before = cpuSeconds(pid);
      // Knock for a second while at the limit: a spinning accept loop would burn ~1 s.
      const knockers: Promise<void>[] = [];
      const until = Date.now() + 1000;
      for (let k = 0; k < 2; k++) {
        knockers.push((async () => {
          while (Date.now() < until) {
            const c = await handshake(port);
            if (typeof c !== "string") c.close();
          }
        })());
      }
      await Promise.all(knockers);
      await new Promise((r) => setTimeout(r, 200));
      const spent = cpuSeconds(pid) - before;
      // Accepting and closing each knock is real work; a loop spinning on the listener
      // would take the whole core (1.2 s). Allow well under that on a loaded machine.
      assert.ok(spent < 0.9, `server CPU at the descriptor limit: ${spent.toFixed(2)} s in 1.2 s`);
      await stdin.write(new TextEncoder().encode("stats\n"));
      const stats = JSON.parse(await nextLine());
      assert.ok(
        stats.droppedAtLimit > 0,
        `spare-descriptor drops counted (${stats.droppedAtLimit})`,
      );
      // Existing connections still work; free some descriptors and a new client is served.
      assert.equal(await echo(clients[0], "still here"), "still here");
      for (const c of clients.splice(1)) c.close();
      await new Promise((r) => setTimeout(r, 300));
      const fresh = await handshake(port);
      assert.ok(typeof fresh !== "string", "a new client is served once descriptors are free");
      assert.equal(await echo(fresh, "hello again"), "hello again");
      fresh.close();
    } finally {
      for (const c of clients) c.close();
      await stdin.close().catch(() => {});
      child.kill("SIGTERM");
      const status = await within(child.status, 10_000, "the server to exit after SIGTERM");
      await child.stop();
      assert.equal(status.code, 0, "server exits 0 on SIGTERM");
    }
    await assertNoFdLeak(fdsBefore);
  });
}

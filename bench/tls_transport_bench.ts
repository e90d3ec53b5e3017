/**
 * The TLS transport (socket BIO, with its default 64 KiB read-ahead buffer and with
 * OpenSSL's one-record buffer) against plain TCP as the floor, on one loopback
 * connection driven by a poller, both ends in this process: the client sends messages, the
 * server echoes every byte back in the same tick (one write per tick with all it holds),
 * the client counts them.
 *
 *   deno run -A bench/tls_transport_bench.ts [--rounds 3] [--quick] [--no-strace]
 *                                            [--variants plain,socket,socket-ra17k]
 *
 * Cases: 32 B and 16 KiB messages, one in flight (ping-pong: per-message latency cost) and
 * many in flight (pipelined: throughput, records coalesce). Reported per message: CPU time
 * of the process (user + system: both TLS ends, the kernel's loopback TCP work for the
 * sends, the poller), wall time, and, from a separate run under `strace -c -f`, the I/O
 * system calls per message (read/write are OpenSSL's socket BIO, recvfrom/sendto are
 * ours). The memory-BIO variant measured against it is gone (docs/tls.md has its figures). Each case runs in its own process, the variants take turns; CPU is given as the
 * median over rounds and the minimum (the least disturbed run on a shared machine).
 *
 * One process per case: `--child VARIANT SIZE INFLIGHT COUNT PKI_DIR` runs one and prints
 * its JSON.
 *
 * @module
 */

import process from "node:process";
import { connectTcp, finishConnect, listenTcp } from "../net/tcp.ts";
import { addressOf } from "../net/io.ts";
import { createPoller } from "../poller/default.ts";
import { Events, Interest } from "../poller/poller.ts";
import { plainTransport } from "../transport/plain.ts";
import { TlsTransport } from "../transport/tls.ts";
import { TlsClientContext } from "../transport/tls/client_context.ts";
import { TlsServerContext } from "../transport/tls/server_context.ts";
import {
  HANDSHAKE_DONE,
  HANDSHAKE_FAILED,
  HANDSHAKE_WANT_WRITE,
  IO_FAILED,
  type Transport,
  WOULD_BLOCK,
} from "../transport/transport.ts";
import { makeTestPki } from "../tests/fixtures/tls.ts";

type Variant = "plain" | "socket" | "socket-ra17k";

interface Result {
  variant: Variant;
  size: number;
  inflight: number;
  messages: number;
  cpuUsPerMsg: number;
  wallUsPerMsg: number;
  ticks: number;
}

// ---------------------------------------------------------------- one case (child)

const READ_SIZE = 65536;
const READ_LEN = BigInt(READ_SIZE);

/** One end: an off-heap outbox written from its address, as the manager's arena is. */
class End {
  readonly out = new Uint8Array(new ArrayBuffer(8 << 20));
  readonly outAddress = addressOf(this.out);
  start = 0;
  end = 0;
  readonly rbuf = new Uint8Array(new ArrayBuffer(READ_SIZE));
  done = false;
  constructor(readonly fd: number, readonly t: Transport) {}

  queue(bytes: Uint8Array, n: number): void {
    if (this.start === this.end) this.start = this.end = 0;
    this.out.set(n === bytes.length ? bytes : bytes.subarray(0, n), this.end);
    this.end += n;
  }

  flush(): void {
    if (this.start === this.end) return;
    const n = this.t.writeAddress(this.fd, this.outAddress + this.start, this.end - this.start);
    if (n > 0) this.start += n;
    else if (n === IO_FAILED) throw new Error(`write failed: ${this.t.lastErrorMessage}`);
  }

  interest(): number {
    return Interest.READABLE | (this.start !== this.end ? Interest.WRITABLE : 0) | this.t.wants;
  }
}

async function runCase(
  variant: Variant,
  size: number,
  inflight: number,
  count: number,
  pkiDir: string,
): Promise<Result> {
  // socket-ra17k: OpenSSL's one-record read-ahead buffer instead of the default 64 KiB.
  const readBufferSize = variant === "socket-ra17k" ? 0 : undefined;
  const server = new TlsServerContext({
    cert: `${pkiDir}/server.pem`,
    key: `${pkiDir}/server.key`,
    readBufferSize,
  });
  const client = new TlsClientContext({ ca: `${pkiDir}/ca.pem`, readBufferSize });
  const poller = createPoller();
  const events = new Events(16);
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0 });
  const pending = connectTcp("127.0.0.1", listener.address.port);
  let sfd = -1;
  while ((sfd = listener.accept()) < 0) await new Promise((r) => setTimeout(r, 1));
  if (pending.inProgress) finishConnect(pending.fd);
  listener.close();
  const cfd = pending.fd;
  const make = (fd: number, role: "s" | "c"): Transport => {
    if (variant === "plain") return plainTransport;
    return role === "s"
      ? TlsTransport.accept(server, fd)
      : TlsTransport.connect(client, fd, "localhost");
  };
  const s = new End(sfd, make(sfd, "s"));
  const c = new End(cfd, make(cfd, "c"));
  poller.register(sfd, 0, Interest.READABLE);
  poller.register(cfd, 1, Interest.WRITABLE);

  // Handshake.
  const steps = [s.t.handshake(sfd), c.t.handshake(cfd)];
  while (steps.some((x) => x !== HANDSHAKE_DONE)) {
    if (steps.includes(HANDSHAKE_FAILED)) throw new Error("handshake failed");
    poller.modify(
      sfd,
      0,
      steps[0] === HANDSHAKE_WANT_WRITE ? Interest.WRITABLE : Interest.READABLE,
    );
    poller.modify(
      cfd,
      1,
      steps[1] === HANDSHAKE_WANT_WRITE ? Interest.WRITABLE : Interest.READABLE,
    );
    await poller.wait(events, 1000);
    steps[0] = s.t.handshake(sfd);
    steps[1] = c.t.handshake(cfd);
  }

  const message = new Uint8Array(size).map((_, i) => i * 7);
  let sent = 0;
  let echoed = 0; // bytes back at the client
  let ticks = 0;

  const serveRead = (): void => {
    for (let round = 0; round < 64; round++) {
      const n = s.t.read(sfd, s.rbuf, READ_LEN);
      if (n > 0) {
        s.queue(s.rbuf, n);
        if (s.t.pending || (variant === "plain" && n === READ_SIZE)) continue;
        return;
      }
      if (n === WOULD_BLOCK) return;
      throw new Error(`server read ${n}: ${s.t.lastErrorMessage}`);
    }
  };
  const clientRead = (): void => {
    for (let round = 0; round < 64; round++) {
      const n = c.t.read(cfd, c.rbuf, READ_LEN);
      if (n > 0) {
        echoed += n;
        if (c.t.pending || (variant === "plain" && n === READ_SIZE)) continue;
        return;
      }
      if (n === WOULD_BLOCK) return;
      throw new Error(`client read ${n}: ${c.t.lastErrorMessage}`);
    }
  };
  // Warm-up, then measure.
  const measure = async (n: number): Promise<void> => {
    const target = echoed + n * size;
    const limit = sent + n;
    while (echoed < target) {
      const done = Math.floor(echoed / size);
      while (sent < limit && sent - done < inflight) {
        c.queue(message, size);
        sent++;
      }
      c.flush();
      poller.modify(sfd, 0, s.interest());
      poller.modify(cfd, 1, c.interest());
      const k = await poller.wait(events, s.t.pending || c.t.pending ? 0 : 1000);
      ticks++;
      let sReady = s.t.pending;
      let cReady = c.t.pending;
      for (let i = 0; i < k; i++) {
        if (events.tokens[i] === 0) sReady = true;
        else cReady = true;
      }
      if (sReady) {
        serveRead();
        s.flush();
      }
      if (cReady) {
        clientRead();
        c.flush();
      }
    }
  };
  const warm = Math.max(100, Math.floor(count / 10));
  await measure(warm);
  ticks = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await measure(count);
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  s.t.close(sfd);
  c.t.close(cfd);
  poller.close();
  server.close();
  client.close();
  return {
    variant,
    size,
    inflight,
    messages: count,
    cpuUsPerMsg: (cpu.user + cpu.system) / count,
    wallUsPerMsg: (wall * 1000) / count,
    ticks,
  };
}

// ---------------------------------------------------------------- the matrix (parent)

interface Case {
  size: number;
  inflight: number;
  count: number;
}

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i < 0 ? undefined : Deno.args[i + 1];
}

async function child(args: string[], strace: string | null): Promise<string> {
  const self = new URL(import.meta.url).pathname;
  const deno = Deno.execPath();
  const cmd = strace === null ? deno : "strace";
  const full = strace === null
    ? ["run", "-A", self, "--child", ...args]
    : ["-f", "-c", "-o", strace, deno, "run", "-A", self, "--child", ...args];
  const out = await new Deno.Command(cmd, { args: full, stdout: "piped", stderr: "piped" })
    .output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

const IO_CALLS = ["read", "write", "recvfrom", "sendto", "epoll_wait", "epoll_ctl", "select"];

function straceCounts(path: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of Deno.readTextFileSync(path).split("\n")) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
    if (m !== null && IO_CALLS.includes(m[2])) counts[m[2]] = Number(m[1]);
  }
  return counts;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  if (Deno.args[0] === "--child") {
    const [variant, size, inflight, count, dir] = Deno.args.slice(1);
    const r = await runCase(variant as Variant, Number(size), Number(inflight), Number(count), dir);
    console.log(JSON.stringify(r));
    return;
  }
  const quick = Deno.args.includes("--quick");
  const rounds = Number(flag("rounds") ?? (quick ? 1 : 3));
  const useStrace = !Deno.args.includes("--no-strace");
  const scale = quick ? 0.2 : 1;
  const cases: Case[] = [
    { size: 32, inflight: 1, count: Math.floor(20000 * scale) },
    { size: 32, inflight: 64, count: Math.floor(200000 * scale) },
    { size: 16384, inflight: 1, count: Math.floor(5000 * scale) },
    { size: 16384, inflight: 16, count: Math.floor(20000 * scale) },
  ];
  const variants = (flag("variants") ?? "plain,socket,socket-ra17k").split(",") as Variant[];
  const pki = makeTestPki();
  try {
    const rows: string[] = [];
    rows.push("| case | variant | CPU µs/msg, median (min) | wall µs/msg | syscalls/msg (I/O) |");
    rows.push("|---|---|---:|---:|---|");
    for (const k of cases) {
      const label = `${k.size === 32 ? "32 B" : "16 KiB"}, ${k.inflight} in flight`;
      const byVariant = new Map<Variant, Result[]>();
      for (let r = 0; r < rounds; r++) {
        // Take turns, starting with a different variant each round.
        for (let i = 0; i < variants.length; i++) {
          const v = variants[(i + r) % variants.length];
          const out = await child(
            [v, String(k.size), String(k.inflight), String(k.count), pki.dir],
            null,
          );
          const res = JSON.parse(out) as Result;
          byVariant.set(v, [...(byVariant.get(v) ?? []), res]);
          console.error(`${label} ${v}: ${res.cpuUsPerMsg.toFixed(2)} µs CPU/msg`);
        }
      }
      for (const v of variants) {
        const rs = byVariant.get(v)!;
        let sys = "";
        if (useStrace) {
          const file = `${pki.dir}/strace-${v}-${k.size}-${k.inflight}.txt`;
          const n = Math.max(200, Math.floor(k.count / 4));
          await child([v, String(k.size), String(k.inflight), String(n), pki.dir], file);
          const counts = straceCounts(file);
          // The warm-up ran n/10 (at least 100) more messages under strace.
          const msgs = n + Math.max(100, Math.floor(n / 10));
          sys = Object.entries(counts)
            .filter(([, c]) => c / msgs >= 0.005)
            .map(([name, c]) => `${name} ${(c / msgs).toFixed(c / msgs < 0.1 ? 3 : 2)}`)
            .join(", ");
        }
        const cpu = rs.map((x) => x.cpuUsPerMsg);
        rows.push(
          `| ${label} | ${v} | ${median(cpu).toFixed(2)} (${Math.min(...cpu).toFixed(2)}) | ${
            median(rs.map((x) => x.wallUsPerMsg)).toFixed(2)
          } | ${sys} |`,
        );
      }
    }
    console.log(rows.join("\n"));
  } finally {
    pki.remove();
  }
}

await main();

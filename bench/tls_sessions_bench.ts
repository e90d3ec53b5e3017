/**
 * What a TLS session costs besides its messages: N loopback pairs, both ends in this
 * process, handshaken and one 32 B message exchanged each way, then left idle. Reports the
 * CPU time per pair for connect + handshake + the exchange (one server and one client
 * handshake, ECDSA P-256 certificate, TLS 1.3), and the growth of the process's resident
 * memory per pair against the same with plain TCP transports. Kernel socket memory is not
 * in RSS.
 *
 *   deno run -A --v8-flags=--expose-gc bench/tls_sessions_bench.ts [pairs=2000]
 *
 * @module
 */

import process from "node:process";
import { connectTcp, listenTcp } from "../net/tcp.ts";
import { createPoller } from "../poller/default.ts";
import { Events, Interest } from "../poller/poller.ts";
import { plainTransport } from "../transport/plain.ts";
import { TlsTransport } from "../transport/tls.ts";
import { TlsClientContext } from "../transport/tls/client_context.ts";
import { TlsServerContext } from "../transport/tls/server_context.ts";
import {
  HANDSHAKE_DONE,
  HANDSHAKE_WANT_WRITE,
  type Transport,
  WOULD_BLOCK,
} from "../transport/transport.ts";
import { makeTestPki } from "../tests/fixtures/tls.ts";

const pairs = Number(Deno.args[0] ?? "2000");

function rss(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) * 1024;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function run(
  tls: boolean,
  pki: ReturnType<typeof makeTestPki>,
): Promise<{ rssPerPair: number; cpuUsPerPair: number }> {
  const server = new TlsServerContext({ cert: pki.cert, key: pki.key });
  const client = new TlsClientContext({ ca: pki.ca });
  const poller = createPoller();
  const events = new Events(256);
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0, backlog: 4096 });
  const ends: { fd: number; t: Transport }[] = [];
  // Warm up OpenSSL's lazy tables with one pair before measuring.
  const open = async (count: number): Promise<void> => {
    for (let i = 0; i < count; i++) {
      const { fd: cfd } = connectTcp("127.0.0.1", listener.address.port);
      let sfd = -1;
      while ((sfd = listener.accept()) < 0) await new Promise((r) => setTimeout(r, 0));
      const st = tls ? TlsTransport.accept(server, sfd) : plainTransport;
      const ct = tls ? TlsTransport.connect(client, cfd, "localhost") : plainTransport;
      ends.push({ fd: sfd, t: st }, { fd: cfd, t: ct });
      const pair = [ends[ends.length - 2], ends[ends.length - 1]];
      poller.register(sfd, 0, Interest.READABLE);
      poller.register(cfd, 1, Interest.WRITABLE);
      const steps = pair.map((e) => e.t.handshake(e.fd));
      while (steps.some((s) => s !== HANDSHAKE_DONE)) {
        for (let k = 0; k < 2; k++) {
          const want = steps[k] === HANDSHAKE_WANT_WRITE ? Interest.WRITABLE : Interest.READABLE;
          poller.modify(pair[k].fd, k, steps[k] === HANDSHAKE_DONE ? 0 : want);
        }
        await poller.wait(events, 1000);
        for (let k = 0; k < 2; k++) steps[k] = pair[k].t.handshake(pair[k].fd);
        if (steps.includes(3)) throw new Error("handshake failed");
      }
      const msg = new Uint8Array(32);
      const buf = new Uint8Array(64);
      for (const [a, b] of [[0, 1], [1, 0]]) {
        pair[a].t.write(pair[a].fd, msg, 32);
        let got = 0;
        while (got < 32) {
          const n = pair[b].t.read(pair[b].fd, buf, 64n);
          if (n > 0) got += n;
          else if (n === WOULD_BLOCK) await new Promise((r) => setTimeout(r, 0));
          else throw new Error(`read ${n}`);
        }
      }
      poller.unregister(sfd);
      poller.unregister(cfd);
    }
  };
  await open(1);
  gc();
  const before = rss();
  const cpu0 = process.cpuUsage();
  await open(pairs);
  const cpu = process.cpuUsage(cpu0);
  gc();
  await new Promise((r) => setTimeout(r, 200));
  gc();
  const after = rss();
  for (const e of ends) e.t.close(e.fd);
  listener.close();
  poller.close();
  server.close();
  client.close();
  return { rssPerPair: (after - before) / pairs, cpuUsPerPair: (cpu.user + cpu.system) / pairs };
}

const pki = makeTestPki();
try {
  const plain = await run(false, pki);
  const tls = await run(true, pki);
  const kib = (n: number) => (n / 1024).toFixed(1);
  console.log(`pairs: ${pairs}`);
  console.log(
    `plain TCP: ${kib(plain.rssPerPair)} KiB RSS, ${plain.cpuUsPerPair.toFixed(0)} µs CPU per pair`,
  );
  console.log(
    `TLS:       ${kib(tls.rssPerPair)} KiB RSS, ${tls.cpuUsPerPair.toFixed(0)} µs CPU per pair`,
  );
  console.log(
    `TLS cost per session (half a pair): ${kib((tls.rssPerPair - plain.rssPerPair) / 2)} KiB, ` +
      `${((tls.cpuUsPerPair - plain.cpuUsPerPair) / 2).toFixed(0)} µs CPU`,
  );
} finally {
  pki.remove();
}

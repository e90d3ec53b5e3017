/**
 * TlsTransport on real loopback sockets, driven by each poller of this system without the
 * manager: handshakes, data both ways (1 MiB included), partial writes against a full
 * socket buffer with retries from a copy, close_notify and EOF, failed handshakes (reset,
 * plaintext, garbage, alert, wrong CA, wrong host, expired), SNI, ALPN, certificate
 * reload, kTLS detection, and the `openssl` command as an independent peer on both sides.
 * Every step checks that no descriptor leaks.
 */

import assert from "node:assert/strict";
import { libc } from "../../ffi/libc.ts";
import { recvInto, sendFrom, WOULD_BLOCK } from "../../net/io.ts";
import { closeFd, connectTcp, listenTcp, shutdownFd } from "../../net/tcp.ts";

/** setsockopt with an int value (a small send buffer makes partial writes happen). */
function setIntOption(fd: number, level: number, name: number, value: number): void {
  const v = new Int32Array([value]);
  assert.equal(libc().sym.setsockopt(fd, level, name, new Uint8Array(v.buffer), 4), 0);
}
import type { PollerKind } from "../../poller/poller.ts";
import { TlsTransport } from "../../transport/tls.ts";
import type { TlsContext } from "../../transport/tls/context.ts";
import { TlsClientContext, type TlsClientOptions } from "../../transport/tls/client_context.ts";
import { TlsServerContext, type TlsServerOptions } from "../../transport/tls/server_context.ts";
import {
  HANDSHAKE_DONE,
  HANDSHAKE_FAILED,
  HANDSHAKE_WANT_READ,
  IO_FAILED,
  type Transport,
} from "../../transport/transport.ts";
import {
  Child,
  delay,
  freePort,
  openFds,
  POLLERS,
  stepPerPoller,
  waitFor,
} from "../fixtures/harness.ts";
import { makeTestPki, type TestPki } from "../fixtures/tls.ts";
import { opensslCommand } from "../deps/tools.ts";
import { Driver, Peer, tcpPair } from "../fixtures/tls_pair.ts";

const enc = new TextEncoder();

/** What the tests read of a TLS transport besides the Transport interface. */
type Tls = Transport & {
  readonly alpnProtocol: string | null;
  readonly protocol: string;
  readonly cipher: string;
  readonly serverName: string;
  readonly closeNotifyReceived: boolean;
  readonly ktlsSend: boolean;
};

const V = {
  accept: (c: TlsContext, fd: number): Tls => TlsTransport.accept(c, fd),
  connect: (c: TlsContext, fd: number, host: string): Tls => TlsTransport.connect(c, fd, host),
};

/** A driver with a server and a client peer on a fresh loopback connection. */
interface Pair {
  d: Driver;
  s: Peer;
  c: Peer;
  st: Tls;
  ct: Tls;
}

async function pair(
  kind: PollerKind,
  server: TlsServerContext,
  client: TlsClientContext,
  host = "localhost",
  ip = "127.0.0.1",
): Promise<Pair> {
  const d = new Driver(kind);
  const fds = await tcpPair(d.poller, ip);
  const st = V.accept(server, fds.server);
  const ct = V.connect(client, fds.client, host);
  const s = d.add(new Peer("server", fds.server, st));
  const c = d.add(new Peer("client", fds.client, ct));
  return { d, s, c, st, ct };
}

/** Handshakes a fresh pair and asserts the outcome of each side. */
async function shaken(
  kind: PollerKind,
  server: TlsServerContext,
  client: TlsClientContext,
  host = "localhost",
  ip = "127.0.0.1",
): Promise<Pair> {
  const p = await pair(kind, server, client, host, ip);
  assert.ok(await p.d.handshake(), "handshake did not end in time");
  return p;
}

function pattern(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** SO_LINGER {on, 0}: close(2) then resets the connection. */
function setLingerZero(fd: number): void {
  const SO_LINGER: Record<string, number> = { linux: 13, darwin: 0x80, freebsd: 0x80 };
  const lib = libc();
  const linger = new Int32Array([1, 0]);
  lib.sym.setsockopt(
    fd,
    lib.c.SOL_SOCKET,
    SO_LINGER[Deno.build.os],
    new Uint8Array(linger.buffer),
    8,
  );
}

/** A raw (non-TLS) client: sends `bytes`, then the server's handshake must fail. */
async function rawClientFails(
  kind: PollerKind,
  server: TlsServerContext,
  bytes: Uint8Array,
): Promise<string> {
  const d = new Driver(kind);
  const fds = await tcpPair(d.poller);
  const st = V.accept(server, fds.server);
  const s = d.add(new Peer("server", fds.server, st));
  try {
    assert.equal(sendFrom(fds.client, bytes, bytes.length), bytes.length);
    shutdownFd(fds.client, "write");
    assert.ok(await d.handshake());
    assert.equal(s.step, HANDSHAKE_FAILED);
    assert.notEqual(st.lastErrorMessage, "");
    // Asking again is answered, not counted again.
    assert.equal(st.handshake(fds.server), HANDSHAKE_FAILED);
    // What the server sent back (an alert, or nothing) is the raw client's to drain.
    recvInto(fds.client, new Uint8Array(4096), 4096n);
    return st.lastErrorMessage;
  } finally {
    d.close();
    closeFd(fds.client);
  }
}

function ulpHasTls(): boolean {
  try {
    return Deno.readTextFileSync("/proc/sys/net/ipv4/tcp_available_ulp").split(/\s+/)
      .includes("tls");
  } catch {
    return false;
  }
}

Deno.test("TlsTransport over loopback", async (t) => {
  const pki: TestPki = makeTestPki();
  const serverOptions: TlsServerOptions = { cert: pki.cert, key: pki.key };
  const server = new TlsServerContext(serverOptions);
  const client = new TlsClientContext({ ca: pki.ca });
  const newClient = (o: TlsClientOptions) => new TlsClientContext({ ca: pki.ca, ...o });
  try {
    await stepPerPoller(t, POLLERS, async (kind, t) => {
      await t.step("handshake, ALPN, data both ways, 1 MiB", async () => {
        const failedBefore = server.stats.handshakesFailed;
        const { d, s, c, st, ct } = await shaken(kind, server, client);
        try {
          assert.equal(s.step, HANDSHAKE_DONE, st.lastErrorMessage);
          assert.equal(c.step, HANDSHAKE_DONE, ct.lastErrorMessage);
          assert.equal(ct.protocol, "TLSv1.3");
          assert.equal(st.alpnProtocol, "http/1.1");
          assert.equal(ct.alpnProtocol, "http/1.1");
          assert.equal(st.serverName, "localhost");
          assert.ok(ct.cipher.startsWith("TLS_"), ct.cipher);
          const mib = pattern(1 << 20);
          c.queue(enc.encode("GET / HTTP/1.1\r\n\r\n"));
          s.queue(mib);
          c.queue(mib);
          const want = mib.length + 18;
          assert.ok(await d.run(() => s.received === want && c.received === mib.length));
          assert.equal(
            new TextDecoder().decode(s.bytes().subarray(0, 18)),
            "GET / HTTP/1.1\r\n\r\n",
          );
          assert.deepEqual(s.bytes().subarray(18), mib);
          assert.deepEqual(c.bytes(), mib);
          assert.equal(server.stats.handshakesFailed, failedBefore);
        } finally {
          d.close();
        }
      });

      await t.step("over IPv6 with the address checked against the certificate", async () => {
        const { d, s, c, ct } = await shaken(kind, server, client, "::1", "::1");
        try {
          assert.equal(c.step, HANDSHAKE_DONE, ct.lastErrorMessage);
          c.queue(enc.encode("ping"));
          assert.ok(await d.run(() => s.received === 4));
          assert.equal(s.text(), "ping");
        } finally {
          d.close();
        }
      });

      await t.step("bytes that came with the last handshake flight are pending", async () => {
        const p = await pair(kind, server, client);
        const { d, s, c, st, ct } = p;
        try {
          // Drive by hand: the server never runs after the client's last handshake step, so
          // the client's Finished is still unread when its first record follows it.
          for (let i = 0; i < 400 && c.step !== HANDSHAKE_DONE; i++) {
            s.shake();
            await delay(5);
            c.shake();
          }
          assert.equal(c.step, HANDSHAKE_DONE, ct.lastErrorMessage);
          assert.equal(s.step, HANDSHAKE_WANT_READ);
          const request = enc.encode("GET /chat HTTP/1.1\r\n\r\n");
          assert.equal(ct.write(c.fd, request, request.length), request.length);
          // Both records are in the server's socket now (loopback); one handshake call takes
          // them in (read-ahead), and the request must not wait for the poller.
          await delay(20);
          s.shake();
          assert.equal(s.step, HANDSHAKE_DONE, st.lastErrorMessage);
          assert.equal(st.pending, true, "the request is buffered inside OpenSSL");
          s.drain();
          assert.equal(s.text(), "GET /chat HTTP/1.1\r\n\r\n");
          assert.equal(st.pending, false);
        } finally {
          d.close();
        }
      });

      await t.step("a small read buffer: pending until every record is read", async () => {
        const { d, s, c } = await shaken(kind, server, client);
        const small = new Peer("small", c.fd, c.transport, 1000);
        small.step = HANDSHAKE_DONE;
        d.peers[1] = small;
        try {
          const data = pattern(100_000, 7);
          s.queue(data);
          assert.ok(await d.run(() => small.received === data.length));
          assert.deepEqual(small.bytes(), data);
          assert.ok(small.largestRead <= 1000);
          // close_notify after data: everything before it is read, then the end.
          s.transport.shutdownWrite(s.fd);
          assert.ok(await d.run(() => small.eof));
          assert.equal((small.transport as Tls).closeNotifyReceived, true);
        } finally {
          d.close();
        }
      });

      await t.step("OpenSSL's one-record read-ahead (readBufferSize: 0)", async () => {
        const sc = new TlsServerContext({ ...serverOptions, readBufferSize: 0 });
        const cc = newClient({ readBufferSize: 0 });
        const { d, s, c } = await shaken(kind, sc, cc);
        const small = new Peer("small", c.fd, c.transport, 1000);
        small.step = HANDSHAKE_DONE;
        d.peers[1] = small;
        try {
          const mib = pattern(1 << 20, 13);
          s.queue(mib);
          small.queue(mib);
          assert.ok(await d.run(() => small.received === mib.length && s.received === mib.length));
          assert.deepEqual(small.bytes(), mib);
          assert.deepEqual(s.bytes(), mib);
        } finally {
          d.close();
          sc.close();
          cc.close();
        }
      });

      await t.step("partial writes against a full socket, retried from a copy", async () => {
        const { d, s, c, st } = await shaken(kind, server, client);
        try {
          setIntOption(s.fd, libc().c.SOL_SOCKET, libc().c.SO_SNDBUF, 4096);
          c.paused = true;
          const data = pattern(1 << 20, 3);
          s.queue(data);
          // Without a reader the server fills both socket buffers and must stop.
          assert.ok(await d.run(() => s.shortWrites + s.blockedWrites > 0, 5_000));
          await d.run(() => false, 100);
          assert.ok(s.out.length > 0 && s.out.length < data.length, `${s.out.length} left`);
          assert.equal(st.wants, 0);
          c.paused = false;
          assert.ok(await d.run(() => c.received === data.length));
          assert.deepEqual(c.bytes(), data);
          assert.ok(s.writeCalls > 2, `${s.writeCalls} write calls`);
        } finally {
          d.close();
        }
      });

      await t.step("the same-buffer rule: a retry with other bytes fails", async () => {
        const { d, s, c, st } = await shaken(kind, server, client);
        try {
          setIntOption(s.fd, libc().c.SOL_SOCKET, libc().c.SO_SNDBUF, 4096);
          c.paused = true;
          const data = pattern(1 << 20, 5);
          let blocked = false;
          let off = 0;
          for (let i = 0; i < 1000 && !blocked; i++) {
            const n = st.write(s.fd, data.subarray(off), data.length - off);
            if (n === WOULD_BLOCK) blocked = true;
            else if (n > 0) off += n;
            else assert.fail(`write returned ${n}`);
          }
          assert.ok(blocked);
          const other = new Uint8Array(10);
          assert.equal(st.write(s.fd, other, other.length), IO_FAILED);
          assert.match(st.lastErrorMessage, /bad (write retry|length)|retry is shorter/);
        } finally {
          d.close();
        }
      });

      await t.step("writeAddress from an arena, partial and retried", async () => {
        const { d, s, c, st } = await shaken(kind, server, client);
        try {
          setIntOption(s.fd, libc().c.SOL_SOCKET, libc().c.SO_SNDBUF, 4096);
          const arena = new Uint8Array(new ArrayBuffer(1 << 19));
          arena.set(pattern(arena.length, 9));
          const address = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(arena)));
          let off = 0;
          const deadline = performance.now() + 10_000;
          while (off < arena.length && performance.now() < deadline) {
            const n = st.writeAddress(s.fd, address + off, arena.length - off);
            assert.notEqual(n, IO_FAILED, st.lastErrorMessage);
            if (n > 0) off += n;
            else await delay(1);
            c.drain();
          }
          assert.equal(off, arena.length);
          assert.ok(await d.run(() => c.received === arena.length));
          assert.deepEqual(c.bytes(), arena);
        } finally {
          d.close();
        }
      });

      await t.step("close_notify both ways; a bare FIN reads as the end too", async () => {
        const { d, s, c, st, ct } = await shaken(kind, server, client);
        try {
          ct.shutdownWrite(c.fd);
          assert.ok(await d.run(() => s.eof));
          assert.equal(st.closeNotifyReceived, true);
          // Half-closed: the server may still answer.
          s.queue(enc.encode("bye"));
          s.flush();
          st.shutdownWrite(s.fd);
          assert.ok(await d.run(() => c.eof));
          assert.equal(c.text(), "bye");
        } finally {
          d.close();
        }
        const p = await shaken(kind, server, client);
        try {
          shutdownFd(p.c.fd, "write");
          assert.ok(await p.d.run(() => p.s.eof));
          assert.equal(p.st.closeNotifyReceived, false);
          assert.equal(p.s.failed, false);
        } finally {
          p.d.close();
        }
      });

      await t.step("a peer reset mid-handshake fails that handshake only", async () => {
        const failed = server.stats.handshakesFailed;
        const { d, s, c, st } = await pair(kind, server, client);
        try {
          c.shake();
          d.remove(c);
          setLingerZero(c.fd);
          c.transport.close(c.fd);
          assert.ok(await d.handshake());
          assert.equal(s.step, HANDSHAKE_FAILED);
          assert.equal(server.stats.handshakesFailed, failed + 1);
          assert.notEqual(st.lastErrorMessage, "");
        } finally {
          d.close();
        }
      });

      await t.step("plaintext HTTP, garbage and an alert on the TLS port", async () => {
        const failed = server.stats.handshakesFailed;
        const http = await rawClientFails(
          kind,
          server,
          enc.encode("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        );
        assert.match(http, /http request|wrong version|packet length/i);
        await rawClientFails(kind, server, pattern(3000, 11));
        await rawClientFails(kind, server, new Uint8Array([0x15, 3, 3, 0, 2, 2, 40]));
        await rawClientFails(kind, server, new Uint8Array([0x16, 3, 1]));
        assert.equal(server.stats.handshakesFailed, failed + 4);
        // The server context still serves.
        const p = await shaken(kind, server, client);
        assert.equal(p.s.step, HANDSHAKE_DONE);
        p.d.close();
      });

      await t.step(
        "the client refuses a wrong CA, a wrong host and an expired certificate",
        async () => {
          const wrongCa = newClient({ ca: pki.otherCa });
          const wrongHost = new TlsServerContext({
            cert: pki.wrongHostCert,
            key: pki.wrongHostKey,
          });
          const expired = new TlsServerContext({ cert: pki.expiredCert, key: pki.expiredKey });
          try {
            const cases: [TlsServerContext, TlsClientContext, string, RegExp][] = [
              [server, wrongCa, "localhost", /unable to get local issuer/],
              [wrongHost, client, "localhost", /hostname mismatch/],
              [server, client, "127.0.0.2", /IP address mismatch/],
              [expired, client, "localhost", /expired/],
            ];
            for (const [sc, cc, host, why] of cases) {
              const failed = cc.stats.handshakesFailed;
              const p = await shaken(kind, sc, cc, host);
              try {
                assert.equal(p.c.step, HANDSHAKE_FAILED, host);
                assert.match(p.ct.lastErrorMessage, why);
                assert.notEqual(p.s.step, HANDSHAKE_DONE);
                assert.equal(cc.stats.handshakesFailed, failed + 1);
              } finally {
                p.d.close();
              }
            }
            // verify: false accepts the same server (tests against throw-away certificates).
            const trusting = newClient({ ca: pki.otherCa, verify: false });
            const p = await shaken(kind, wrongHost, trusting, "localhost");
            assert.equal(p.c.step, HANDSHAKE_DONE);
            p.d.close();
            trusting.close();
          } finally {
            wrongCa.close();
            wrongHost.close();
            expired.close();
          }
        },
      );

      await t.step("a chain: the intermediate is sent with the leaf", async () => {
        const chained = new TlsServerContext({ cert: pki.chainCert, key: pki.chainKey });
        const leafOnly = new TlsServerContext({
          cert: `${pki.dir}/chain_leaf.pem`,
          key: pki.chainKey,
        });
        try {
          const ok = await shaken(kind, chained, client);
          assert.equal(ok.c.step, HANDSHAKE_DONE, ok.ct.lastErrorMessage);
          ok.d.close();
          const bad = await shaken(kind, leafOnly, client);
          assert.equal(bad.c.step, HANDSHAKE_FAILED);
          assert.match(bad.ct.lastErrorMessage, /unable to get local issuer/);
          bad.d.close();
        } finally {
          chained.close();
          leafOnly.close();
        }
      });

      await t.step("SNI picks the certificate for the name asked", async () => {
        const sni = new TlsServerContext({
          cert: pki.cert,
          key: pki.key,
          sni: {
            "a.test": { cert: pki.aCert, key: pki.aKey },
            "*.b.test": { cert: Deno.readTextFileSync(pki.bCert), key: pki.bKey },
          },
        });
        try {
          // The client checks the name, so a handshake completes only with the right one.
          for (
            const [host, ok] of [
              ["a.test", true],
              ["x.b.test", true],
              ["localhost", true],
              ["A.TEST", true],
              ["c.test", false],
              ["y.x.b.test", false],
            ] as const
          ) {
            const p = await shaken(kind, sni, client, host);
            try {
              assert.equal(
                p.c.step,
                ok ? HANDSHAKE_DONE : HANDSHAKE_FAILED,
                `${host}: ${p.ct.lastErrorMessage}`,
              );
              if (ok) {
                assert.equal(p.st.serverName.toLowerCase(), host.toLowerCase());
                assert.equal(p.st.alpnProtocol, "http/1.1");
              }
            } finally {
              p.d.close();
            }
          }
        } finally {
          sni.close();
        }
      });

      await t.step(
        "ALPN: no overlap goes on without ALPN; none offered, none chosen",
        async () => {
          const h2 = newClient({ alpn: ["h2"] });
          const none = newClient({ alpn: [] });
          try {
            for (const cc of [h2, none]) {
              const p = await shaken(kind, server, cc);
              assert.equal(p.c.step, HANDSHAKE_DONE, p.ct.lastErrorMessage);
              assert.equal(p.st.alpnProtocol, null);
              assert.equal(p.ct.alpnProtocol, null);
              p.d.close();
            }
          } finally {
            h2.close();
            none.close();
          }
        },
      );

      await t.step(
        "reload: new connections get the new certificate, open ones go on",
        async () => {
          const dir = Deno.makeTempDirSync({ dir: pki.dir });
          Deno.copyFileSync(pki.cert, `${dir}/cert.pem`);
          Deno.copyFileSync(pki.key, `${dir}/key.pem`);
          const ctx = new TlsServerContext({ cert: `${dir}/cert.pem`, key: `${dir}/key.pem` });
          try {
            const before = await shaken(kind, ctx, client);
            assert.equal(before.c.step, HANDSHAKE_DONE);
            // Renewed in place (here: a certificate for another name), then reloaded.
            Deno.copyFileSync(pki.wrongHostCert, `${dir}/cert.pem`);
            Deno.copyFileSync(pki.wrongHostKey, `${dir}/key.pem`);
            ctx.reload();
            assert.equal(ctx.generation, 2);
            const after = await shaken(kind, ctx, client, "localhost");
            assert.equal(after.c.step, HANDSHAKE_FAILED);
            assert.match(after.ct.lastErrorMessage, /hostname mismatch/);
            after.d.close();
            const named = await shaken(kind, ctx, client, "wrong.test");
            assert.equal(named.c.step, HANDSHAKE_DONE);
            named.d.close();
            // The connection made before the reload still works both ways.
            before.c.queue(enc.encode("still"));
            before.s.queue(enc.encode("here"));
            assert.ok(
              await before.d.run(() => before.s.received === 5 && before.c.received === 4),
            );
            before.d.close();
            // A reload with bad input keeps the current configuration.
            assert.throws(() => ctx.reload({ key: pki.strayKey }), { code: "KEY_MISMATCH" });
            assert.equal(ctx.generation, 2);
            ctx.reload({ cert: pki.cert, key: pki.key });
            const back = await shaken(kind, ctx, client, "localhost");
            assert.equal(back.c.step, HANDSHAKE_DONE);
            back.d.close();
          } finally {
            ctx.close();
          }
        },
      );

      await t.step(
        "kTLS: detected honestly, SSL_write used when the kernel cannot",
        async () => {
          const off = new TlsServerContext({ ...serverOptions, ktls: false });
          try {
            const p = await shaken(kind, server, client);
            const hasUlp = ulpHasTls();
            if (!hasUlp) {
              assert.equal(p.st.ktlsSend, false);
              assert.equal(p.ct.ktlsSend, false);
            } else {
              console.log(
                `kernel has the tls ULP: ktlsSend server=${p.st.ktlsSend} client=${p.ct.ktlsSend}`,
              );
            }
            p.s.queue(pattern(200_000));
            assert.ok(await p.d.run(() => p.c.received === 200_000));
            p.d.close();
            if (Deno.build.os === "linux" && !hasUlp) {
              assert.equal(server.stats.ktlsSessions, 0);
            }
            const q = await shaken(kind, off, client);
            assert.equal(q.st.ktlsSend, false);
            q.d.close();
          } finally {
            off.close();
          }
        },
      );

      await t.step("openssl s_client against our server (TLS 1.3 and 1.2)", async () => {
        for (const version of ["-tls1_3", "-tls1_2"]) {
          await sClientEcho(kind, server, pki, version);
        }
        // Below the minimum version: refused, counted.
        const failed = server.stats.handshakesFailed;
        await sClientRefused(kind, server, pki);
        assert.equal(server.stats.handshakesFailed, failed + 1);
      });

      await t.step("our client against openssl s_server", async () => {
        await againstSServer(kind, client, pki);
      });
    });
  } finally {
    server.close();
    client.close();
    pki.remove();
  }
});

/** Runs the server side of one accepted connection on `port` until `done`. */
async function serveOne(
  kind: PollerKind,
  server: TlsServerContext,
  port: number,
  onPeer: (p: Peer, d: Driver) => Promise<void>,
): Promise<void> {
  const listener = listenTcp({ hostname: "127.0.0.1", port });
  const d = new Driver(kind);
  try {
    let fd = -1;
    await waitFor(() => (fd = listener.accept()) >= 0, 10_000, "s_client connects");
    const p = d.add(new Peer("server", fd, V.accept(server, fd)));
    await onPeer(p, d);
  } finally {
    d.close();
    listener.close();
  }
}

async function sClientEcho(
  kind: PollerKind,
  server: TlsServerContext,
  pki: TestPki,
  version: string,
): Promise<void> {
  const port = freePort();
  const args = [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "localhost",
    "-verify_hostname",
    "localhost",
    "-CAfile",
    pki.ca,
    "-verify_return_error",
    "-alpn",
    "http/1.1",
    "-brief",
    version,
  ];
  let child: Child | null = null;
  const serving = serveOne(kind, server, port, async (p, d) => {
    assert.ok(await d.handshake());
    assert.equal(p.step, HANDSHAKE_DONE, p.transport.lastErrorMessage);
    const st = p.transport as Tls;
    assert.equal(st.protocol, version === "-tls1_2" ? "TLSv1.2" : "TLSv1.3");
    assert.equal(st.alpnProtocol, "http/1.1");
    assert.ok(await d.run(() => p.text().includes("ping\n")));
    p.queue(enc.encode("PONG\n"));
    // s_client ends at stdin's end; its close reaches us as close_notify or EOF.
    assert.ok(await d.run(() => p.out.length === 0));
    await child!.waitFor((l) => l.includes("PONG"), 10_000, "s_client prints the answer");
    const w = child!.process.stdin.getWriter();
    await w.close();
    assert.ok(await d.run(() => p.eof));
  });
  // Start the client once the listener is there.
  await delay(50);
  child = new Child(opensslCommand(), args, { stdin: "piped" });
  const w = child.process.stdin.getWriter();
  await w.write(enc.encode("ping\n"));
  w.releaseLock();
  try {
    await serving;
    const status = await child.status;
    const stderr = await child.stderrWithin(5_000);
    assert.equal(status.code, 0, stderr);
    assert.match(stderr, /Verification: OK|CONNECTION ESTABLISHED/);
  } finally {
    await child.stop();
  }
}

async function sClientRefused(
  kind: PollerKind,
  server: TlsServerContext,
  pki: TestPki,
): Promise<void> {
  const port = freePort();
  const serving = serveOne(kind, server, port, async (p, d) => {
    assert.ok(await d.handshake());
    assert.equal(p.step, HANDSHAKE_FAILED);
    assert.match(p.transport.lastErrorMessage, /unsupported protocol|version/i);
  });
  await delay(50);
  const child = new Child(opensslCommand(), [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-CAfile",
    pki.ca,
    "-tls1_1",
    "-cipher",
    "DEFAULT:@SECLEVEL=0",
  ]);
  try {
    await serving;
    const status = await child.status;
    assert.notEqual(status.code, 0);
  } finally {
    await child.stop();
  }
}

async function againstSServer(
  kind: PollerKind,
  client: TlsClientContext,
  pki: TestPki,
): Promise<void> {
  const port = freePort();
  const child = new Child(opensslCommand(), [
    "s_server",
    "-accept",
    `127.0.0.1:${port}`,
    "-cert",
    `${pki.dir}/chain_leaf.pem`,
    "-cert_chain",
    `${pki.dir}/intermediate.pem`,
    "-key",
    pki.chainKey,
    "-alpn",
    "http/1.1",
    "-www",
    "-naccept",
    "1",
  ]);
  const d = new Driver(kind);
  try {
    await child.waitFor((l) => l.includes("ACCEPT"), 10_000, "s_server listens");
    const pending = connectTcp("127.0.0.1", port);
    const ct = V.connect(client, pending.fd, "localhost");
    const c = d.add(new Peer("client", pending.fd, ct));
    assert.ok(await d.handshake());
    assert.equal(c.step, HANDSHAKE_DONE, ct.lastErrorMessage);
    assert.equal(ct.alpnProtocol, "http/1.1");
    c.queue(enc.encode("GET / HTTP/1.0\r\n\r\n"));
    assert.ok(await d.run(() => c.eof || c.failed));
    assert.match(c.text(), /^HTTP\/1\.0 200 ok/);
  } finally {
    d.close();
    await child.stop();
  }
}

Deno.test("TlsTransport: wrong context roles are refused", () => {
  const before = openFds();
  const client = new TlsClientContext({ verify: false });
  try {
    assert.throws(() => TlsTransport.accept(client, -1), { code: "TLS_INVALID_ARGUMENT" });
  } finally {
    client.close();
  }
  assert.equal(openFds(), before);
});

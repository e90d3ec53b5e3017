/**
 * TCP sockets on raw descriptors: how they are prepared, and what the listener does when
 * preparing an accepted connection fails.
 *
 * The BSD/macOS path (no SOCK_NONBLOCK/SOCK_CLOEXEC, no accept4, SO_NOSIGPIPE) runs here on
 * Linux through a C library binding whose constants say so: flags then come from fcntl,
 * and the SO_NOSIGPIPE step is a stand-in option whose setsockopt a test can make fail
 * with a real errno (EINVAL, as macOS answers for a connection the peer already reset).
 */

import assert from "node:assert/strict";
import { SyscallError } from "../../ffi/errno.ts";
import { type Libc, libc } from "../../ffi/libc.ts";
import { connectTcp, finishConnect, listenTcp, type TcpListener } from "../../net/tcp.ts";
import { openFds } from "../fixtures/harness.ts";

const real = libc();
const c = real.c;
/** Stands in for SO_NOSIGPIPE: no SOL_SOCKET option has this number on Linux. */
const NOSIGPIPE = 0x7f01;
/** Linux's errno for an unknown socket option (<asm-generic/errno.h>). */
const ENOPROTOOPT = 92;

/** What the stand-in SO_NOSIGPIPE setsockopt does, one entry per call; "ok" once empty. */
type Outcome = "ok" | "reset" | "other";

interface FakeLibc {
  lib: Libc;
  /** Outcomes of the next stand-in calls, in order. */
  outcomes: Outcome[];
  /** Descriptors the stand-in was called on, and how each call ended. */
  calls: { fd: number; outcome: Outcome }[];
}

/**
 * The real C library with macOS's constants and its SO_NOSIGPIPE step. Every call is the
 * real one; the stand-in option is SO_KEEPALIVE when it succeeds (so that a test can read
 * back that it was applied), an optlen of 0 when it must fail with EINVAL, and an
 * unknown option when it must fail otherwise (ENOPROTOOPT).
 */
function macosLike(): FakeLibc {
  const outcomes: Outcome[] = [];
  const calls: { fd: number; outcome: Outcome }[] = [];
  const setsockopt: Libc["sym"]["setsockopt"] = (fd, level, name, value, len) => {
    if (level !== c.SOL_SOCKET || name !== NOSIGPIPE) {
      return real.sym.setsockopt(fd, level, name, value, len);
    }
    const outcome = outcomes.shift() ?? "ok";
    calls.push({ fd, outcome });
    if (outcome === "reset") return real.sym.setsockopt(fd, c.SOL_SOCKET, c.SO_KEEPALIVE, value, 0);
    if (outcome === "other") return real.sym.setsockopt(fd, c.SOL_SOCKET, NOSIGPIPE, value, len);
    return real.sym.setsockopt(fd, c.SOL_SOCKET, c.SO_KEEPALIVE, value, len);
  };
  const lib: Libc = {
    ...real,
    sym: { ...real.sym, setsockopt },
    accept4: null,
    c: { ...c, SOCK_NONBLOCK: 0, SOCK_CLOEXEC: 0, SO_NOSIGPIPE: NOSIGPIPE },
  };
  return { lib, outcomes, calls };
}

function isNonBlocking(fd: number): boolean {
  return (real.fcntl(fd, c.F_GETFL, 0) & c.O_NONBLOCK) !== 0;
}

function isCloseOnExec(fd: number): boolean {
  return real.fcntl(fd, c.F_GETFD, 0) === c.FD_CLOEXEC;
}

function keepAlive(fd: number): number {
  const out = new Int32Array(1);
  const len = new Uint32Array([4]);
  assert.equal(real.sym.getsockopt(fd, c.SOL_SOCKET, c.SO_KEEPALIVE, out, len), 0);
  return out[0];
}

/** Accepts the next connection, waiting a bounded time for it to reach the backlog. */
async function acceptSoon(listener: TcpListener): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const fd = listener.accept();
    if (fd >= 0) return fd;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error("no connection arrived");
}

/** Connects `n` clients one after another; each is in the backlog when its connect resolves. */
async function clients(port: number, n: number): Promise<Deno.TcpConn[]> {
  const out: Deno.TcpConn[] = [];
  for (let i = 0; i < n; i++) out.push(await Deno.connect({ hostname: "127.0.0.1", port }));
  return out;
}

/** True when the server side of `conn` was closed: end of stream or a reset. */
async function closedByServer(conn: Deno.TcpConn): Promise<boolean> {
  try {
    return await conn.read(new Uint8Array(1)) === null;
  } catch (err) {
    return err instanceof Deno.errors.ConnectionReset;
  }
}

Deno.test("sockets are non-blocking and close-on-exec", async (t) => {
  const before = openFds();

  await t.step("this system's way (flags at creation, accept4)", async () => {
    const listener = listenTcp({ hostname: "127.0.0.1", port: 0 });
    const { fd: client } = connectTcp("127.0.0.1", listener.address.port);
    const server = await acceptSoon(listener);
    try {
      for (const fd of [listener.fd, client, server]) {
        assert.ok(isNonBlocking(fd), `O_NONBLOCK on ${fd}`);
        assert.ok(isCloseOnExec(fd), `FD_CLOEXEC on ${fd}`);
      }
      finishConnect(client);
    } finally {
      real.sym.close(server);
      real.sym.close(client);
      listener.close();
    }
  });

  await t.step("the macOS way (fcntl after the fact, SO_NOSIGPIPE on each)", async () => {
    const fake = macosLike();
    const listener = listenTcp({ hostname: "127.0.0.1", port: 0 }, fake.lib);
    const { fd: client } = connectTcp("127.0.0.1", listener.address.port, fake.lib);
    const server = await acceptSoon(listener);
    try {
      for (const fd of [listener.fd, client, server]) {
        assert.ok(isNonBlocking(fd), `O_NONBLOCK on ${fd}`);
        assert.ok(isCloseOnExec(fd), `FD_CLOEXEC on ${fd}`);
        assert.equal(keepAlive(fd), 1, `the SO_NOSIGPIPE stand-in applied to ${fd}`);
      }
      assert.deepEqual(fake.calls.map((call) => call.fd), [listener.fd, client, server]);
      assert.equal(listener.peer.hostname, "127.0.0.1");
      finishConnect(client);
    } finally {
      real.sym.close(server);
      real.sym.close(client);
      listener.close();
    }
  });

  assert.equal(openFds(), before, "descriptor leak");
});

Deno.test("an accepted connection that cannot be prepared is closed", async (t) => {
  const before = openFds();

  await t.step("EINVAL (reset by the peer): counted, skipped, accepting goes on", async () => {
    const fake = macosLike();
    const listener = listenTcp({ hostname: "127.0.0.1", port: 0 }, fake.lib);
    const conns = await clients(listener.address.port, 3);
    try {
      fake.outcomes.push("reset", "reset");
      const open = openFds();
      const fd = listener.accept();
      assert.ok(fd >= 0, "the third connection is accepted");
      assert.equal(listener.droppedReset, 2);
      assert.equal(listener.droppedAtLimit, 0);
      assert.equal(openFds(), open + 1, "the two that failed were closed");
      assert.deepEqual(fake.calls.map((call) => call.outcome), ["ok", "reset", "reset", "ok"]);
      assert.ok(isNonBlocking(fd) && isCloseOnExec(fd));
      assert.equal(listener.accept(), -1, "nothing else is waiting");
      // The first two clients were accepted in order and closed; the third is served.
      assert.ok(await closedByServer(conns[0]), "client 1 closed");
      assert.ok(await closedByServer(conns[1]), "client 2 closed");
      const hello = new TextEncoder().encode("hi");
      assert.equal(real.sym.send(fd, hello, 2n, c.MSG_NOSIGNAL), 2);
      const got = new Uint8Array(2);
      assert.equal(await conns[2].read(got), 2);
      assert.equal(new TextDecoder().decode(got), "hi");
      real.sym.close(fd);
    } finally {
      for (const conn of conns) conn.close();
      listener.close();
    }
  });

  await t.step("another error: thrown, the descriptor closed, the next one accepted", async () => {
    const fake = macosLike();
    const listener = listenTcp({ hostname: "127.0.0.1", port: 0 }, fake.lib);
    const conns = await clients(listener.address.port, 2);
    try {
      fake.outcomes.push("other");
      const open = openFds();
      assert.throws(
        () => listener.accept(),
        (err: unknown) =>
          err instanceof SyscallError && err.syscall === "setsockopt" &&
          err.errno === ENOPROTOOPT,
      );
      assert.equal(openFds(), open, "no descriptor left open");
      assert.equal(listener.droppedReset, 0);
      assert.ok(await closedByServer(conns[0]), "client 1 closed");
      const fd = listener.accept();
      assert.ok(fd >= 0, "the next connection is accepted");
      real.sym.close(fd);
    } finally {
      for (const conn of conns) conn.close();
      listener.close();
    }
  });

  assert.equal(openFds(), before, "descriptor leak");
});

/** This thread's errno, writable: a fake call sets it as the real one would. */
const errnoCell = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(real.errnoView.pointer, 4));

Deno.test("a spare descriptor lost to another thread is taken back", async (t) => {
  const before = openFds();
  // open() fails while `spareBlocked` (another thread holds the last free number);
  // accept4() fails with EMFILE while `full`; every other call is the real one.
  let spareBlocked = true;
  let full = false;
  /** How many more opens fail even once the spare is no longer blocked. */
  let failOpens = 0;
  const missing = new TextEncoder().encode("/nonexistent/fdws\0");
  const lib: Libc = {
    ...real,
    sym: {
      ...real.sym,
      open: (path, flags) => {
        const fail = spareBlocked || failOpens-- > 0;
        return real.sym.open(fail ? missing : path, flags);
      },
    },
    accept4: (fd, addr, len, flags) => {
      if (!full) return real.accept4!(fd, addr, len, flags);
      errnoCell[0] = c.errno.EMFILE;
      return -1;
    },
  };
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0 }, lib);
  const conns: Deno.TcpConn[] = [];
  try {
    await t.step("at the limit with no spare: EMFILE goes to the caller", async () => {
      conns.push(...await clients(listener.address.port, 1));
      full = true;
      assert.throws(
        () => listener.accept(),
        (err: unknown) => err instanceof SyscallError && err.errno === c.errno.EMFILE,
      );
    });
    await t.step("once a number is free, the next accept takes the spare back", async () => {
      spareBlocked = false;
      assert.equal(listener.accept(), -1, "the waiting connection is dropped, not served");
      assert.equal(listener.droppedAtLimit, 1);
      assert.ok(await closedByServer(conns[0]), "client closed");
    });
    await t.step("losing it again in the exchange is survived the same way", async () => {
      conns.push(...await clients(listener.address.port, 2));
      // The spare is lent for the first waiting connection and cannot be reopened: that
      // one is dropped, then EMFILE goes to the caller, who retries later.
      failOpens = 1;
      assert.throws(
        () => listener.accept(),
        (err: unknown) => err instanceof SyscallError && err.errno === c.errno.EMFILE,
      );
      assert.equal(listener.droppedAtLimit, 2);
      assert.ok(await closedByServer(conns[1]));
      assert.equal(listener.accept(), -1, "the retry takes the spare back and drops the next");
      assert.equal(listener.droppedAtLimit, 3);
      assert.ok(await closedByServer(conns[2]));
    });
    full = false;
  } finally {
    for (const conn of conns) conn.close();
    listener.close();
  }
  assert.equal(openFds(), before, "descriptor leak");
});

Deno.test("connect and listen close their socket when it cannot be prepared", async (t) => {
  const before = openFds();
  const port = (() => {
    const l = listenTcp({ hostname: "127.0.0.1", port: 0 });
    const p = l.address.port;
    l.close();
    return p;
  })();
  for (const outcome of ["reset", "other"] as const) {
    await t.step(`connectTcp, ${outcome}`, () => {
      const fake = macosLike();
      fake.outcomes.push(outcome);
      const open = openFds();
      assert.throws(
        () => connectTcp("127.0.0.1", port, fake.lib),
        (err: unknown) =>
          err instanceof SyscallError &&
          err.errno === (outcome === "reset" ? c.errno.EINVAL : ENOPROTOOPT),
      );
      assert.equal(openFds(), open);
    });
    await t.step(`listenTcp, ${outcome}`, () => {
      const fake = macosLike();
      fake.outcomes.push(outcome);
      const open = openFds();
      assert.throws(() => listenTcp({ hostname: "127.0.0.1", port: 0 }, fake.lib), SyscallError);
      assert.equal(openFds(), open);
    });
  }
  assert.equal(openFds(), before, "descriptor leak");
});

Deno.test("finishConnect tells a connect still in progress from one that completed", async () => {
  const before = openFds();
  // A listener whose queue is full drops further SYNs: their connects stay in progress.
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0, backlog: 1 });
  const fds: number[] = [];
  try {
    let pending = -1;
    for (let i = 0; i < 8 && pending < 0; i++) {
      const c = connectTcp("127.0.0.1", listener.address.port);
      fds.push(c.fd);
      // Let the handshake finish when it can.
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (!finishConnect(c.fd)) pending = c.fd;
    }
    assert.ok(pending >= 0, "a connect stays in progress behind a full queue");
    // The earlier ones completed.
    assert.equal(finishConnect(fds[0]), true);
  } finally {
    for (const fd of fds) libc().sym.close(fd);
    listener.close();
  }
  assert.equal(openFds(), before);
});

/**
 * Pollers on real descriptors: every poller that runs on this system (epoll and select on
 * Linux), plus the pure parts of the kqueue poller, which run anywhere.
 *
 * Every test counts the entries of /proc/self/fd before and after: a poller (or a test)
 * that leaks a descriptor fails. The count is process-wide, so this file must not share its
 * process with other test modules running at the same time (no `deno test --parallel`).
 */

import assert from "node:assert/strict";
import { KQUEUE } from "../../ffi/constants.ts";
import { decodeKevent, encodeKevent, type KeventLayout, keventLayout } from "../../ffi/layout.ts";
import { libc } from "../../ffi/libc.ts";
import { connectTcp, finishConnect, listenTcp, shutdownFd } from "../../net/tcp.ts";
import { BasePoller } from "../../poller/base.ts";
import { createPoller, defaultPollerKind } from "../../poller/default.ts";
import { EpollPoller } from "../../poller/epoll.ts";
import {
  decodeKevents,
  encodeInterestChanges,
  evfiltUser,
  KeventKind,
  type KqueueEvent,
  KqueuePoller,
  readReceipts,
  translateKevent,
  writeChange,
} from "../../poller/kqueue.ts";
import { Events, Interest, type Poller, PollerError, Ready } from "../../poller/poller.ts";
import { Registry } from "../../poller/registry.ts";
import { SelectPoller } from "../../poller/select.ts";
import { openFds, runToEnd, stepPerPoller } from "../fixtures/harness.ts";

const lib = libc();
const { c, sym } = lib;
const R = Interest.READABLE;
const W = Interest.WRITABLE;
const onLinux = Deno.build.os === "linux";

/** The pollers that run on this system. */
const KINDS: { name: "epoll" | "select"; make: () => Poller }[] = onLinux
  ? [
    { name: "epoll", make: () => new EpollPoller() },
    { name: "select", make: () => new SelectPoller() },
  ]
  : [{ name: "select", make: () => new SelectPoller() }];

/**
 * Runs `fn` once per poller kind as steps of one test, and fails when the number of open
 * descriptors differs right afterwards (no settle wait: closing a poller is synchronous).
 */
function pollerTest(
  name: string,
  fn: (poller: Poller, kind: "epoll" | "select", t: Deno.TestContext) => Promise<void> | void,
  kinds: readonly ("epoll" | "select")[] = ["epoll", "select"],
): void {
  Deno.test({
    name,
    ignore: !onLinux,
    fn: async (t) => {
      const names = KINDS.map((k) => k.name).filter((name) => kinds.includes(name));
      await stepPerPoller(t, names, async (name, t) => {
        const kind = KINDS.find((k) => k.name === name);
        assert.ok(kind !== undefined);
        const poller = kind.make();
        try {
          await fn(poller, name, t);
        } finally {
          poller.close();
        }
      }, 0);
    },
  });
}

/** A non-blocking, close-on-exec AF_UNIX stream socketpair. */
function socketpair(): [number, number] {
  const fds = new Int32Array(2);
  const type = c.SOCK_STREAM | c.SOCK_NONBLOCK | c.SOCK_CLOEXEC;
  assert.equal(sym.socketpair(c.AF_UNIX, type, 0, fds), 0, "socketpair");
  return [fds[0], fds[1]];
}

/** A non-blocking, close-on-exec pipe: [read end, write end]. */
function pipe(): [number, number] {
  const fds = new Int32Array(2);
  assert.equal(lib.pipe2!(fds, c.O_NONBLOCK | c.O_CLOEXEC), 0, "pipe2");
  return [fds[0], fds[1]];
}

const one = new Uint8Array([0x2a]);
const sink = new Uint8Array(4096);

function writeByte(fd: number): void {
  assert.equal(sym.write(fd, one, 1n), 1);
}

/** Reads what is buffered on fd; returns the byte count (0 at end of stream). */
function drain(fd: number): number {
  let total = 0;
  for (;;) {
    const n = sym.read(fd, sink, BigInt(sink.length));
    if (n <= 0) return total;
    total += n;
  }
}

function close(...fds: number[]): void {
  for (const fd of fds) sym.close(fd);
}

/** The events of the last wait as (fd → ready) pairs, failing on a duplicate descriptor. */
function byFd(events: Events): Map<number, { token: number; ready: number }> {
  const map = new Map<number, { token: number; ready: number }>();
  for (let i = 0; i < events.length; i++) {
    assert.ok(!map.has(events.fds[i]), `fd ${events.fds[i]} reported twice`);
    map.set(events.fds[i], { token: events.tokens[i], ready: events.ready[i] });
  }
  return map;
}

async function waitFor(poller: Poller, events: Events, ms = 1000): Promise<number> {
  return await poller.wait(events, ms);
}

pollerTest("socketpair: readable, writable, hang-up", async (poller, kind) => {
  const [a, b] = socketpair();
  try {
    const events = new Events(8);
    poller.register(a, 11, R);
    assert.equal(poller.size, 1);
    assert.ok(poller.has(a));
    assert.equal(poller.pollNow(events), 0, "nothing ready yet");
    assert.equal(await poller.wait(events, 0), 0);

    writeByte(b);
    assert.equal(await waitFor(poller, events), 1);
    assert.deepEqual([events.fds[0], events.tokens[0], events.ready[0]], [a, 11, Ready.READABLE]);
    // Level-triggered: reported again until read.
    assert.equal(poller.pollNow(events), 1);
    assert.equal(drain(a), 1);
    assert.equal(poller.pollNow(events), 0);

    poller.register(b, 22, W);
    assert.equal(await waitFor(poller, events), 1);
    assert.deepEqual([events.fds[0], events.tokens[0], events.ready[0]], [b, 22, Ready.WRITABLE]);

    close(b);
    poller.unregister(b);
    assert.equal(await waitFor(poller, events), 1);
    assert.equal(events.fds[0], a);
    const expected = kind === "epoll" ? Ready.READABLE | Ready.HANGUP : Ready.READABLE;
    assert.equal(events.ready[0], expected);
    assert.equal(drain(a), 0, "end of stream");
  } finally {
    poller.unregister(a);
    close(a);
  }
});

pollerTest("pipe: read end, write end, both hang-ups", async (poller, kind) => {
  const events = new Events(8);
  {
    const [r, w] = pipe();
    poller.register(r, 1, R);
    poller.register(w, 2, W);
    assert.equal(await waitFor(poller, events), 1);
    assert.deepEqual([events.fds[0], events.ready[0]], [w, Ready.WRITABLE]);
    writeByte(w);
    await waitFor(poller, events);
    const seen = byFd(events);
    assert.deepEqual(seen.get(r), { token: 1, ready: Ready.READABLE });
    assert.deepEqual(seen.get(w), { token: 2, ready: Ready.WRITABLE });
    assert.equal(drain(r), 1);
    // The writer goes away: the read end reports end of stream.
    poller.unregister(w);
    close(w);
    assert.equal(await waitFor(poller, events), 1);
    assert.equal(events.fds[0], r);
    assert.equal(
      events.ready[0],
      kind === "epoll" ? Ready.READABLE | Ready.HANGUP : Ready.READABLE,
    );
    assert.equal(drain(r), 0);
    poller.unregister(r);
    close(r);
  }
  {
    const [r, w] = pipe();
    poller.register(w, 3, W);
    // The reader goes away: writing would fail with EPIPE, which epoll flags as an error.
    close(r);
    assert.equal(await waitFor(poller, events), 1);
    assert.equal(events.fds[0], w);
    const expected = kind === "epoll"
      ? Ready.WRITABLE | Ready.ERROR | Ready.READABLE
      : Ready.WRITABLE;
    assert.equal(events.ready[0], expected);
    poller.unregister(w);
    close(w);
  }
});

pollerTest("TCP loopback: accept, connect, data, end of stream", async (poller) => {
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0, backlog: 16 });
  const fds: number[] = [];
  try {
    const events = new Events(8);
    poller.register(listener.fd, 100, R);
    assert.equal(poller.pollNow(events), 0);
    const client = connectTcp("127.0.0.1", listener.address.port);
    fds.push(client.fd);
    poller.register(client.fd, 200, W);
    // Loopback connects complete at once or nearly; the writable event means done.
    let server = -1;
    let connected = false;
    const deadline = Date.now() + 2000;
    while ((server < 0 || !connected) && Date.now() < deadline) {
      await poller.wait(events, 500);
      for (const [fd, ev] of byFd(events)) {
        if (fd === listener.fd) {
          assert.deepEqual(ev, { token: 100, ready: Ready.READABLE });
          server = listener.accept();
          assert.ok(server >= 0);
          fds.push(server);
        } else if (fd === client.fd) {
          assert.deepEqual(ev, { token: 200, ready: Ready.WRITABLE });
          finishConnect(client.fd);
          connected = true;
        }
      }
    }
    assert.ok(server >= 0 && connected);
    assert.equal(listener.accept(), -1, "no second connection");

    poller.register(server, 300, R);
    poller.modify(client.fd, 200, 0); // stop the writable stream of events
    assert.equal(poller.pollNow(events), 0);
    assert.equal(sym.send(client.fd, new Uint8Array([1, 2, 3]), 3n, c.MSG_NOSIGNAL), 3);
    assert.equal(await waitFor(poller, events), 1);
    assert.deepEqual([events.fds[0], events.tokens[0], events.ready[0]], [
      server,
      300,
      Ready.READABLE,
    ]);
    assert.equal(drain(server), 3);

    shutdownFd(client.fd, "write");
    assert.equal(await waitFor(poller, events), 1);
    assert.equal(events.fds[0], server);
    assert.ok(events.ready[0] & Ready.READABLE);
    assert.equal(drain(server), 0, "FIN read as end of stream");
  } finally {
    for (const fd of fds) {
      poller.unregister(fd);
      close(fd);
    }
    poller.unregister(listener.fd);
    listener.close();
  }
});

pollerTest("modify, unregister and misuse", async (poller) => {
  const [a, b] = socketpair();
  try {
    const events = new Events(8);
    poller.register(a, 1, R);
    assert.equal(poller.pollNow(events), 0);
    poller.modify(a, 2, R | W);
    assert.equal(await waitFor(poller, events), 1);
    assert.deepEqual([events.fds[0], events.tokens[0], events.ready[0]], [a, 2, Ready.WRITABLE]);
    writeByte(b);
    assert.equal(await waitFor(poller, events), 1);
    assert.equal(events.ready[0], Ready.READABLE | Ready.WRITABLE);
    // The same interest with a new token: only the token changes.
    poller.modify(a, 3, R | W);
    assert.equal(poller.pollNow(events), 1);
    assert.equal(events.tokens[0], 3);
    poller.modify(a, 3, R);
    assert.equal(poller.pollNow(events), 1);
    assert.equal(events.ready[0], Ready.READABLE);
    poller.modify(a, 3, 0);
    assert.equal(poller.pollNow(events), 0, "interest 0 watches nothing");
    poller.modify(a, 3, W);
    assert.equal(poller.pollNow(events), 1);
    assert.equal(events.ready[0], Ready.WRITABLE);

    poller.unregister(a);
    assert.ok(!poller.has(a));
    assert.equal(poller.size, 0);
    assert.equal(poller.pollNow(events), 0, "nothing after unregister");
    poller.unregister(a); // unknown descriptors are ignored
    poller.unregister(123456);

    assert.throws(() => poller.modify(a, 1, R), { name: "PollerError", code: "NOT_REGISTERED" });
    poller.register(a, 4, R);
    assert.throws(() => poller.register(a, 4, R), { code: "ALREADY_REGISTERED" });
    assert.throws(() => poller.register(-1, 4, R), { code: "INVALID_ARGUMENT" });
    assert.throws(() => poller.register(b, 2 ** 32, R), { code: "INVALID_ARGUMENT" });
    assert.throws(() => poller.register(b, -1, R), { code: "INVALID_ARGUMENT" });
    assert.ok(!poller.has(b), "a refused registration leaves nothing behind");
    assert.equal(poller.size, 1);
    poller.unregister(a);
  } finally {
    close(a, b);
  }
});

pollerTest("wake() from a timer ends a pending wait early", async (poller) => {
  const [a, b] = socketpair();
  try {
    poller.register(a, 1, R);
    const events = new Events(8);
    const start = performance.now();
    const timer = setTimeout(() => poller.wake(), 50);
    const n = await poller.wait(events, 5000);
    const elapsed = performance.now() - start;
    clearTimeout(timer);
    assert.equal(n, 0);
    assert.ok(elapsed >= 40 && elapsed < 1000, `woke after ${elapsed} ms`);
    // The wake-up was consumed: the next wait times out normally.
    const t0 = performance.now();
    assert.equal(await poller.wait(events, 30), 0);
    assert.ok(performance.now() - t0 >= 25);
    // A registered descriptor that became ready in the meantime is still reported.
    writeByte(b);
    poller.wake();
    const seen = new Set<number>();
    for (let i = 0; i < 3 && !seen.has(a); i++) {
      await poller.wait(events, 1000);
      for (let j = 0; j < events.length; j++) seen.add(events.fds[j]);
    }
    assert.ok(seen.has(a));
    poller.unregister(a);
  } finally {
    close(a, b);
  }
});

pollerTest(
  "waitAfterPoll() after an empty pollNow(): blocks, ends on a wake-up, reports readiness",
  async (poller) => {
    assert.ok(poller instanceof BasePoller);
    const [a, b] = socketpair();
    try {
      poller.register(a, 1, R);
      const events = new Events(8);
      // Nothing ready: it blocks until the timeout.
      assert.equal(poller.pollNow(events), 0);
      let t0 = performance.now();
      assert.equal(await poller.waitAfterPoll(events, 30), 0);
      assert.ok(performance.now() - t0 >= 25);
      // A wake-up consumed by that poll still ends the wait at once.
      poller.wake();
      assert.equal(poller.pollNow(events), 0);
      t0 = performance.now();
      assert.equal(await poller.waitAfterPoll(events, 5000), 0);
      assert.ok(performance.now() - t0 < 1000, "a consumed wake-up was lost");
      // Readiness that arrives while it blocks is reported.
      assert.equal(poller.pollNow(events), 0);
      const timer = setTimeout(() => writeByte(b), 30);
      const n = await poller.waitAfterPoll(events, 5000);
      clearTimeout(timer);
      assert.equal(n, 1);
      assert.equal(events.fds[0], a);
      // Its arguments are checked as wait()'s are.
      await assert.rejects(poller.waitAfterPoll(events, NaN), { code: "INVALID_ARGUMENT" });
      poller.unregister(a);
    } finally {
      close(a, b);
    }
  },
);

pollerTest("timeouts are honoured", async (poller) => {
  const [a, b] = socketpair();
  try {
    poller.register(a, 1, R);
    const events = new Events(8);
    for (const ms of [0, 20, 150]) {
      const start = performance.now();
      assert.equal(await poller.wait(events, ms), 0);
      const elapsed = performance.now() - start;
      assert.ok(elapsed >= ms - 3, `${ms} ms wait returned after ${elapsed} ms`);
      assert.ok(elapsed < ms + 500, `${ms} ms wait returned after ${elapsed} ms`);
    }
    // A fractional timeout is rounded up, never down to a busy poll.
    const start = performance.now();
    await poller.wait(events, 5.5);
    assert.ok(performance.now() - start >= 5 - 1);
    poller.unregister(a);
  } finally {
    close(a, b);
  }
});

pollerTest(
  "10,000 descriptors: exactly the readable subset is reported",
  async (poller) => {
    const pairs: [number, number][] = [];
    try {
      for (let i = 0; i < 5000; i++) pairs.push(socketpair());
      // Both ends registered: 10,000 descriptors, most of them above FD_SETSIZE.
      for (const [x, y] of pairs) {
        poller.register(x, x, R);
        poller.register(y, y, R);
      }
      assert.equal(poller.size, 10_000);
      assert.ok(pairs[4999][1] >= 10_000);
      const subset = new Set<number>();
      for (let i = 0; i < pairs.length; i += 7) {
        // Alternate ends so the subset has low and high descriptors of both parities.
        const [x, y] = pairs[i];
        const [src, dst] = i % 2 === 0 ? [y, x] : [x, y];
        writeByte(src);
        subset.add(dst);
      }
      // One wait with room for everything.
      const big = new Events(16_384);
      assert.equal(await poller.wait(big, 1000), subset.size);
      const seen = byFd(big);
      assert.deepEqual(new Set(seen.keys()), subset);
      for (const [fd, ev] of seen) assert.deepEqual(ev, { token: fd, ready: Ready.READABLE });
      // Several small waits, consuming what each reports.
      const small = new Events(100);
      const collected = new Set<number>();
      for (let round = 0; round < 100; round++) {
        const n = await poller.wait(small, 0);
        if (n === 0) break;
        assert.ok(n <= 100);
        for (let i = 0; i < n; i++) {
          const fd = small.fds[i];
          assert.ok(!collected.has(fd), `fd ${fd} reported after it was drained`);
          collected.add(fd);
          assert.equal(drain(fd), 1);
        }
      }
      assert.deepEqual(collected, subset);
      assert.equal(poller.pollNow(big), 0);
    } finally {
      for (const [x, y] of pairs) {
        poller.unregister(x);
        poller.unregister(y);
        close(x, y);
      }
    }
    assert.equal(poller.size, 0);
  },
  ["epoll"],
);

pollerTest("select refuses descriptors at or above FD_SETSIZE", async (poller) => {
  const [a, b] = socketpair();
  // fcntl(F_DUPFD, 1024): the lowest free descriptor >= 1024. F_DUPFD is 0 on Linux.
  const high = lib.fcntl(a, 0, c.FD_SETSIZE);
  try {
    assert.ok(high >= c.FD_SETSIZE, `dup gave ${high}`);
    assert.throws(
      () => poller.register(high, 1, R),
      (err: unknown) => err instanceof PollerError && err.code === "FD_SETSIZE",
    );
    assert.ok(!poller.has(high));
    assert.equal(poller.size, 0);
    // The poller is still usable below the limit.
    poller.register(a, 2, R);
    writeByte(b);
    assert.equal(await waitFor(poller, new Events(4)), 1);
    poller.unregister(a);
  } finally {
    close(high, a, b);
  }
}, ["select"]);

pollerTest("a reused descriptor number does not inherit stale events", async (poller, kind) => {
  const events = new Events(8);
  const [a, peerA] = socketpair();
  poller.register(a, 1, R);
  writeByte(peerA);
  assert.equal(await waitFor(poller, events), 1);
  assert.deepEqual([events.fds[0], events.tokens[0]], [a, 1]);
  // Before the event is "delivered", the connection ends and the number is reused.
  poller.unregister(a);
  close(a, peerA);
  const [b, peerB] = socketpair();
  assert.equal(b, a, "the lowest free number is reused");
  poller.register(b, 2, R);
  try {
    assert.equal(await poller.wait(events, 50), 0, "nothing for the new registration");
    writeByte(peerB);
    assert.equal(await waitFor(poller, events), 1);
    assert.deepEqual([events.fds[0], events.tokens[0]], [b, 2]);
    drain(b);

    if (kind === "epoll") {
      // Closing before unregistering, while a duplicate keeps the socket alive, leaves the
      // old registration in the kernel's interest list (EPOLL_CTL_DEL then fails with EBADF):
      // its events keep coming, tagged with the old generation, and must be dropped.
      const [x, peerX] = socketpair();
      poller.register(x, 3, R);
      const dup = lib.fcntl(x, 0, 0); // F_DUPFD
      close(x);
      poller.unregister(x);
      const [y, peerY] = socketpair();
      assert.equal(y, x);
      poller.register(y, 4, R);
      writeByte(peerX); // readable through the zombie registration
      assert.equal(await poller.wait(events, 50), 0, "stale generation dropped");
      writeByte(peerY);
      assert.equal(await waitFor(poller, events), 1);
      assert.deepEqual([events.fds[0], events.tokens[0]], [y, 4]);
      poller.unregister(y);
      close(y, peerY, dup, peerX);
    } else {
      // select: a wait pending on the old descriptor's bit while the number changes hands.
      const [x, peerX] = socketpair();
      poller.register(x, 3, R);
      const pending = poller.wait(events, 2000);
      await new Promise((r) => setTimeout(r, 20));
      poller.unregister(x); // wakes the pending call
      close(x, peerX);
      const [y, peerY] = socketpair();
      assert.equal(y, x);
      poller.register(y, 4, R);
      writeByte(peerY);
      await pending;
      for (let i = 0; i < events.length; i++) {
        assert.notEqual(events.tokens[i], 4, "the old call's bit is not the new registration's");
      }
      assert.equal(await waitFor(poller, events), 1);
      assert.deepEqual([events.fds[0], events.tokens[0]], [y, 4]);
      poller.unregister(y);
      close(y, peerY);
    }
  } finally {
    poller.unregister(b);
    close(b, peerB);
  }
});

pollerTest("a second concurrent wait is refused with BUSY", async (poller) => {
  const first = poller.wait(new Events(4), 5000);
  await assert.rejects(
    poller.wait(new Events(4), 10),
    (err: unknown) => err instanceof PollerError && err.code === "BUSY",
  );
  poller.wake();
  assert.equal(await first, 0);
});

pollerTest("close() during a pending wait resolves it with 0", async (poller) => {
  const [a, b] = socketpair();
  try {
    poller.register(a, 1, R);
    const before = openFds();
    const start = performance.now();
    const pending = poller.wait(new Events(4), -1);
    setTimeout(() => poller.close(), 30);
    assert.equal(await pending, 0);
    assert.ok(performance.now() - start < 2000);
    assert.ok(poller.closed);
    // The kernel objects were released once the wait returned.
    assert.ok(openFds() < before, "poller descriptors released");
    poller.close(); // idempotent
    poller.wake(); // harmless after close
    poller.unregister(a); // harmless after close
    assert.throws(() => poller.register(b, 2, R), { code: "CLOSED" });
    assert.throws(() => poller.pollNow(new Events(1)), { code: "CLOSED" });
    await assert.rejects(poller.wait(new Events(1), 0), { code: "CLOSED" });
  } finally {
    close(a, b);
  }
});

Deno.test({
  name: "a closed poller lets the process exit (subprocess)",
  ignore: !onLinux,
  fn: async (t) => {
    const script = new URL("../fixtures/close_pending_wait.ts", import.meta.url);
    await stepPerPoller(t, KINDS.map((k) => k.name), async (name) => {
      const out = await runToEnd(
        Deno.execPath(),
        ["run", "--allow-ffi", "--no-config", script.pathname, name],
        5000,
      );
      assert.ok(!out.killed, `child still running after 5 s: ${out.stdout}`);
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, new RegExp(`^${name} wait resolved 0 closed=true`));
      assert.ok(out.elapsedMs < 5000);
    }, 0);
  },
});

Deno.test("createPoller picks and builds each mechanism", async (t) => {
  const before = openFds();
  await t.step("default kinds", () => {
    assert.equal(defaultPollerKind("linux"), "epoll");
    assert.equal(defaultPollerKind("darwin"), "kqueue");
    assert.equal(defaultPollerKind("freebsd"), "kqueue");
    assert.equal(defaultPollerKind("windows"), "select");
  });
  await t.step({
    name: "on Linux",
    ignore: !onLinux,
    fn: () => {
      for (const kind of ["epoll", "select"] as const) {
        const p = createPoller(kind);
        assert.equal(p.kind, kind);
        p.close();
      }
      const p = createPoller();
      assert.equal(p.kind, "epoll");
      p.close();
      assert.throws(() => createPoller("kqueue"), { name: "PollerError", code: "UNSUPPORTED" });
      assert.throws(() => new KqueuePoller(), { code: "UNSUPPORTED" });
      assert.throws(() => createPoller("nope" as "epoll"), { code: "INVALID_ARGUMENT" });
    },
  });
  assert.equal(openFds(), before);
});

// --- kqueue: the pure parts, on both BSD layouts ---------------------------------------

const PLATFORMS = [
  { os: "darwin", layout: keventLayout("darwin"), user: -10 },
  { os: "freebsd", layout: keventLayout("freebsd"), user: -11 },
] as const;

const ADD = KQUEUE.EV_ADD | KQUEUE.EV_RECEIPT;
const DEL = KQUEUE.EV_DELETE | KQUEUE.EV_RECEIPT;

function changes(
  layout: KeventLayout,
  fd: number,
  gen: number,
  prev: number,
  next: number,
): { filter: number; flags: number }[] {
  const view = new DataView(new ArrayBuffer(4 * layout.size));
  new Uint8Array(view.buffer).fill(0xcc);
  const n = encodeInterestChanges(view, 1, layout, fd, gen, prev, next);
  const out: { filter: number; flags: number }[] = [];
  for (let i = 1; i <= n; i++) {
    const ev = decodeKevent(view, i, layout);
    assert.equal(ev.ident, fd);
    assert.equal(ev.fflags, 0);
    assert.equal(ev.data, 0);
    assert.equal(ev.udata, gen * 2 ** 32 + fd);
    out.push({ filter: ev.filter, flags: ev.flags });
  }
  // Entries around the written ones are untouched.
  const bytes = new Uint8Array(view.buffer);
  assert.ok(bytes.subarray(0, layout.size).every((x) => x === 0xcc));
  assert.ok(bytes.subarray((1 + n) * layout.size).every((x) => x === 0xcc));
  return out;
}

/** A kevent as the kernel returns it for (fd, gen). */
function kernelEvent(
  view: DataView,
  index: number,
  layout: KeventLayout,
  fd: number,
  gen: number,
  filter: number,
  flags = 0,
  fflags = 0,
): void {
  writeChange(view, index, layout, fd, gen, filter, flags);
  view.setUint32(index * layout.size + layout.fflags, fflags, true);
}

Deno.test("kqueue pure parts", async (t) => {
  for (const { os, layout, user } of PLATFORMS) {
    await t.step(`${os}: EVFILT_USER`, () => {
      assert.equal(evfiltUser(os), user);
    });

    await t.step(`${os}: change lists of interest transitions`, () => {
      const READ = KQUEUE.EVFILT_READ;
      const WRITE = KQUEUE.EVFILT_WRITE;
      const table: [number, number, { filter: number; flags: number }[]][] = [
        [0, 0, []],
        [0, R, [{ filter: READ, flags: ADD }]],
        [0, W, [{ filter: WRITE, flags: ADD }]],
        [0, R | W, [{ filter: READ, flags: ADD }, { filter: WRITE, flags: ADD }]],
        [R, R, []],
        [R, R | W, [{ filter: WRITE, flags: ADD }]],
        [R | W, R, [{ filter: WRITE, flags: DEL }]],
        [R | W, W, [{ filter: READ, flags: DEL }]],
        [R, W, [{ filter: READ, flags: DEL }, { filter: WRITE, flags: ADD }]],
        [W, R, [{ filter: READ, flags: ADD }, { filter: WRITE, flags: DEL }]],
        [R | W, 0, [{ filter: READ, flags: DEL }, { filter: WRITE, flags: DEL }]],
        [R, 0, [{ filter: READ, flags: DEL }]],
      ];
      for (const [prev, next, expected] of table) {
        assert.deepEqual(changes(layout, 9, 5, prev, next), expected, `${prev} -> ${next}`);
      }
    });

    await t.step(`${os}: writeChange bytes, large generations, zeroed tail`, () => {
      const buf = new Uint8Array(layout.size).fill(0xaa);
      const view = new DataView(buf.buffer);
      writeChange(view, 0, layout, 0x7fffffff, 0xfffffffe, KQUEUE.EVFILT_WRITE, ADD);
      const expected = [
        ...[0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0], // ident
        ...[0xfe, 0xff], // filter -2
        ...[0x41, 0x00], // EV_ADD | EV_RECEIPT
        ...[0, 0, 0, 0], // fflags
        ...[0, 0, 0, 0, 0, 0, 0, 0], // data
        ...[0xff, 0xff, 0xff, 0x7f, 0xfe, 0xff, 0xff, 0xff], // udata: gen << 32 | fd
      ];
      assert.deepEqual(Array.from(buf.subarray(0, 32)), expected);
      assert.ok(buf.subarray(32).every((x) => x === 0), "FreeBSD ext[4] zeroed");
      // With a small generation it is byte-identical to the layout's encoder.
      const mine = new Uint8Array(layout.size);
      const theirs = new Uint8Array(layout.size);
      writeChange(new DataView(mine.buffer), 0, layout, 12, 34, KQUEUE.EVFILT_READ, DEL);
      encodeKevent(new DataView(theirs.buffer), 0, layout, {
        ident: 12,
        filter: KQUEUE.EVFILT_READ,
        flags: DEL,
        fflags: 0,
        data: 0,
        udata: 34 * 2 ** 32 + 12,
      });
      assert.deepEqual(mine, theirs);
    });

    await t.step(`${os}: receipts`, () => {
      const view = new DataView(new ArrayBuffer(2 * layout.size));
      const receipt = (i: number, filter: number, data: number): void =>
        encodeKevent(view, i, layout, {
          ident: 9,
          filter,
          flags: KQUEUE.EV_ERROR,
          fflags: 0,
          data,
          udata: 0,
        });
      const out = { addErrno: -1, failedAdds: -1 };
      receipt(0, KQUEUE.EVFILT_READ, 0);
      receipt(1, KQUEUE.EVFILT_WRITE, 0);
      assert.deepEqual(readReceipts(view, 2, layout, R | W, out), { addErrno: 0, failedAdds: 0 });
      // EV_ADD of the write filter failed with EBADF (9 everywhere).
      receipt(1, KQUEUE.EVFILT_WRITE, 9);
      assert.deepEqual(readReceipts(view, 2, layout, R | W, out), { addErrno: 9, failedAdds: W });
      // The same failure on a deletion (write not in `added`) is ignored: ENOENT, gone.
      receipt(1, KQUEUE.EVFILT_WRITE, 2);
      assert.deepEqual(readReceipts(view, 2, layout, R, out), { addErrno: 0, failedAdds: 0 });
      // Both additions failed: the first errno is kept.
      receipt(0, KQUEUE.EVFILT_READ, 22);
      receipt(1, KQUEUE.EVFILT_WRITE, 9);
      assert.deepEqual(readReceipts(view, 2, layout, R | W, out), {
        addErrno: 22,
        failedAdds: R | W,
      });
      // Entries without EV_ERROR are not receipts, and count is respected.
      assert.deepEqual(readReceipts(view, 0, layout, R | W, out), { addErrno: 0, failedAdds: 0 });
      encodeKevent(view, 0, layout, {
        ident: 9,
        filter: -1,
        flags: 0,
        fflags: 0,
        data: 5,
        udata: 0,
      });
      assert.deepEqual(readReceipts(view, 1, layout, R | W, out), { addErrno: 0, failedAdds: 0 });
    });

    await t.step(`${os}: translating kevents`, () => {
      const reg = new Registry();
      const g5 = reg.add(5, 50, R | W);
      const g6 = reg.add(6, 60, R);
      const view = new DataView(new ArrayBuffer(layout.size));
      const out: KqueueEvent = { fd: -1, token: -1, ready: -1 };
      const tr = (fd: number, gen: number, filter: number, flags = 0, fflags = 0): number => {
        out.fd = out.token = out.ready = -1;
        kernelEvent(view, 0, layout, fd, gen, filter, flags, fflags);
        return translateKevent(view, 0, layout, user, reg, out);
      };
      const READ = KQUEUE.EVFILT_READ;
      const WRITE = KQUEUE.EVFILT_WRITE;
      assert.equal(tr(5, g5, READ), KeventKind.READY);
      assert.deepEqual({ ...out }, { fd: 5, token: 50, ready: Ready.READABLE });
      assert.equal(tr(5, g5, WRITE), KeventKind.READY);
      assert.deepEqual({ ...out }, { fd: 5, token: 50, ready: Ready.WRITABLE });
      assert.equal(tr(5, g5, READ, KQUEUE.EV_EOF), KeventKind.READY);
      assert.deepEqual(out.ready, Ready.READABLE | Ready.HANGUP);
      // EV_EOF on the write filter: the peer stopped reading.
      assert.equal(tr(5, g5, WRITE, KQUEUE.EV_EOF), KeventKind.READY);
      assert.deepEqual(out.ready, Ready.WRITABLE | Ready.READABLE | Ready.HANGUP);
      // A socket error travels in fflags with EV_EOF (ECONNRESET = 54).
      assert.equal(tr(5, g5, READ, KQUEUE.EV_EOF, 54), KeventKind.READY);
      assert.deepEqual(out.ready, Ready.READABLE | Ready.HANGUP | Ready.ERROR);
      assert.equal(tr(5, g5, READ, KQUEUE.EV_ERROR), KeventKind.READY);
      assert.deepEqual(out.ready, Ready.READABLE | Ready.ERROR);
      // A queued write event after the interest dropped WRITABLE.
      assert.equal(tr(6, g6, WRITE), KeventKind.STALE);
      assert.equal(tr(6, g6, WRITE, KQUEUE.EV_EOF), KeventKind.READY);
      assert.equal(out.ready, Ready.READABLE | Ready.HANGUP);
      // Wrong generation, unknown fd, unknown filter.
      assert.equal(tr(5, g5 + 100, READ), KeventKind.STALE);
      assert.equal(tr(7, g5, READ), KeventKind.STALE);
      assert.equal(tr(1 << 20, 1, READ), KeventKind.STALE);
      assert.equal(tr(5, g5, -3), KeventKind.STALE);
      assert.deepEqual(
        { ...out },
        { fd: -1, token: -1, ready: -1 },
        "out untouched when not READY",
      );
      // The wake-up: EVFILT_USER, ident 0, udata 0.
      encodeKevent(view, 0, layout, {
        ident: 0,
        filter: user,
        flags: KQUEUE.EV_CLEAR,
        fflags: KQUEUE.NOTE_TRIGGER,
        data: 0,
        udata: 0,
      });
      assert.equal(translateKevent(view, 0, layout, user, reg, out), KeventKind.WAKE);
      // The other system's EVFILT_USER number is not a wake-up here.
      const other = user === -10 ? -11 : -10;
      assert.equal(translateKevent(view, 0, layout, other, reg, out), KeventKind.STALE);
    });

    await t.step(`${os}: a reused descriptor drops the old generation's events`, () => {
      const reg = new Registry();
      const view = new DataView(new ArrayBuffer(2 * layout.size));
      const out: KqueueEvent = { fd: 0, token: 0, ready: 0 };
      const oldGen = reg.add(5, 1, R);
      kernelEvent(view, 0, layout, 5, oldGen, KQUEUE.EVFILT_READ); // queued for the old one
      reg.remove(5); // unregister + close; the number is reused:
      const newGen = reg.add(5, 2, R);
      assert.equal(translateKevent(view, 0, layout, user, reg, out), KeventKind.STALE);
      kernelEvent(view, 1, layout, 5, newGen, KQUEUE.EVFILT_READ);
      assert.equal(translateKevent(view, 1, layout, user, reg, out), KeventKind.READY);
      assert.deepEqual({ ...out }, { fd: 5, token: 2, ready: Ready.READABLE });
    });

    await t.step(`${os}: batches merge each descriptor's filters`, () => {
      const reg = new Registry();
      const gens = new Map<number, number>();
      for (const fd of [3, 4, 200]) gens.set(fd, reg.add(fd, fd * 10, R | W));
      const staleGen = reg.add(9, 90, R);
      reg.remove(9);
      const view = new DataView(new ArrayBuffer(8 * layout.size));
      const READ = KQUEUE.EVFILT_READ;
      const WRITE = KQUEUE.EVFILT_WRITE;
      let i = 0;
      kernelEvent(view, i++, layout, 3, gens.get(3)!, WRITE);
      kernelEvent(view, i++, layout, 4, gens.get(4)!, READ);
      kernelEvent(view, i++, layout, 9, staleGen, READ);
      encodeKevent(view, i++, layout, {
        ident: 0,
        filter: user,
        flags: 0,
        fflags: 0,
        data: 0,
        udata: 0,
      });
      kernelEvent(view, i++, layout, 200, gens.get(200)!, READ);
      kernelEvent(view, i++, layout, 3, gens.get(3)!, READ, KQUEUE.EV_EOF);
      kernelEvent(view, i++, layout, 200, gens.get(200)!, WRITE);
      const events = new Events(8);
      events.length = 5; // emptied first
      const slots = new Int32Array(256);
      const scratch: KqueueEvent = { fd: 0, token: 0, ready: 0 };
      assert.equal(decodeKevents(view, i, layout, user, reg, events, slots, scratch), true);
      assert.equal(events.length, 3);
      assert.deepEqual([...byFd(events)], [
        [3, { token: 30, ready: Ready.WRITABLE | Ready.READABLE | Ready.HANGUP }],
        [4, { token: 40, ready: Ready.READABLE }],
        [200, { token: 2000, ready: Ready.READABLE | Ready.WRITABLE }],
      ]);
      assert.ok(slots.every((s) => s === 0), "scratch slots left clean");
      // Descriptors beyond the slots are still reported, just not merged.
      const tiny = new Int32Array(100);
      assert.equal(decodeKevents(view, i, layout, user, reg, events, tiny, scratch), true);
      assert.equal(events.length, 4);
      assert.ok(tiny.every((s) => s === 0));
      // No wake-up among the events.
      assert.equal(decodeKevents(view, 3, layout, user, reg, events, slots, scratch), false);
      assert.equal(events.length, 2);
      assert.equal(decodeKevents(view, 0, layout, user, reg, events, slots, scratch), false);
      assert.equal(events.length, 0);
    });
  }
});

/**
 * Byte-level tests of every C structure and constant table, for every platform and
 * architecture. Expected bytes and numbers are written out by hand from the system headers
 * (glibc, the macOS SDK, FreeBSD's <sys/*.h>), never computed by the code under test.
 * A few steps also check the running system's kernel and C library against the tables.
 */

import assert from "node:assert/strict";
import {
  type Constants,
  constantsFor,
  DARWIN,
  EPOLL,
  type ErrnoName,
  EVENTFD,
  FREEBSD,
  KQUEUE,
  LINUX,
  type Platform,
} from "../../ffi/constants.ts";
import {
  addrinfoLayout,
  decodeKevent,
  decodeSockaddr,
  encodeKevent,
  encodeSockaddr,
  encodeTimespec,
  encodeTimeval,
  epollEventLayout,
  fdClr,
  fdIsSet,
  fdSet,
  fdSetBytes,
  IOVEC_SIZE,
  keventLayout,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
  SOCKADDR_STORAGE_SIZE,
  type SockaddrPlatform,
  TIMESPEC_SIZE,
  TIMEVAL_SIZE,
  writeKevent,
} from "../../ffi/layout.ts";
import { libc, libraryPath } from "../../ffi/libc.ts";
import { errno } from "../../ffi/errno.ts";
import { evfiltUser } from "../../poller/kqueue.ts";

const LINUX_P: SockaddrPlatform = { platform: "linux", AF_INET: 2, AF_INET6: 10 };
const DARWIN_P: SockaddrPlatform = { platform: "darwin", AF_INET: 2, AF_INET6: 30 };
const FREEBSD_P: SockaddrPlatform = { platform: "freebsd", AF_INET: 2, AF_INET6: 28 };

/** Bytes of `buf` as an ordinary array, so assertion failures print readable diffs. */
function bytes(buf: Uint8Array, length = buf.length): number[] {
  return Array.from(buf.subarray(0, length));
}

function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

Deno.test("sockaddr_in: exact bytes and round trips per platform", async (t) => {
  const v4 = { family: 4 as const, address: new Uint8Array([127, 0, 0, 1]), port: 8080 };
  // <netinet/in.h>: port 8080 = 0x1f90 in network byte order, then the address, then 8
  // bytes of sin_zero.
  const tail = [0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
  const cases: [SockaddrPlatform, number[]][] = [
    // glibc: sa_family_t is a host-order uint16 at 0 (AF_INET = 2).
    [LINUX_P, [2, 0, ...tail]],
    // BSD: uint8 sin_len (16) at 0, uint8 sin_family (2) at 1.
    [DARWIN_P, [16, 2, ...tail]],
    [FREEBSD_P, [16, 2, ...tail]],
  ];
  for (const [p, expected] of cases) {
    await t.step(p.platform, () => {
      assert.equal(SOCKADDR_IN_SIZE, 16);
      const buf = new Uint8Array(SOCKADDR_STORAGE_SIZE).fill(0xaa);
      assert.equal(encodeSockaddr(buf, p, v4), 16);
      assert.deepEqual(bytes(buf, 16), expected);
      // Nothing past the structure is touched.
      assert.ok(buf.subarray(16).every((b) => b === 0xaa));
      assert.deepEqual(decodeSockaddr(buf, p), {
        family: 4,
        address: new Uint8Array([127, 0, 0, 1]),
        port: 8080,
      });
    });
  }
  await t.step("ports are big-endian, including the top bit", () => {
    const buf = new Uint8Array(16);
    encodeSockaddr(buf, LINUX_P, { family: 4, address: new Uint8Array(4), port: 65535 });
    assert.deepEqual(bytes(buf, 4), [2, 0, 0xff, 0xff]);
    encodeSockaddr(buf, LINUX_P, { family: 4, address: new Uint8Array(4), port: 0x8001 });
    assert.deepEqual(bytes(buf, 4), [2, 0, 0x80, 0x01]);
    assert.equal(decodeSockaddr(buf, LINUX_P)?.port, 0x8001);
  });
  await t.step("BSD decoding ignores sin_len; Linux reads a 16-bit family", () => {
    const bsd = new Uint8Array([0, 2, 0, 80, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(decodeSockaddr(bsd, DARWIN_P)?.address, new Uint8Array([10, 0, 0, 1]));
    // The same bytes read as Linux: family 0x0200 = 512 is neither AF_INET nor AF_INET6.
    assert.equal(decodeSockaddr(bsd, LINUX_P), null);
  });
  await t.step("AF_UNIX decodes to null", () => {
    assert.equal(decodeSockaddr(new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]), LINUX_P), null);
    assert.equal(decodeSockaddr(new Uint8Array([106, 1, 0, 0, 0, 0, 0, 0]), DARWIN_P), null);
  });
  await t.step("a subarray at a non-zero offset", () => {
    const backing = new Uint8Array(64);
    const buf = backing.subarray(8, 40);
    encodeSockaddr(buf, DARWIN_P, v4);
    assert.deepEqual(bytes(backing, 10), [0, 0, 0, 0, 0, 0, 0, 0, 16, 2]);
    assert.equal(decodeSockaddr(buf, DARWIN_P)?.port, 8080);
  });
});

Deno.test("sockaddr_in6: exact bytes and round trips per platform", async (t) => {
  const addr = new Uint8Array([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  const v6 = { family: 6 as const, address: addr, port: 443, flowinfo: 0x12345, scopeId: 3 };
  // <netinet/in.h>, <netinet6/in6.h>: port 443 = 0x01bb big-endian at 2; sin6_flowinfo
  // (network order) at 4; sin6_addr at 8; sin6_scope_id (host order) at 24; 28 bytes.
  const tail = [
    0x01,
    0xbb,
    0x00,
    0x01,
    0x23,
    0x45,
    ...[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    3,
    0,
    0,
    0,
  ];
  const cases: [SockaddrPlatform, number[]][] = [
    [LINUX_P, [10, 0, ...tail]], // AF_INET6 = 10, uint16 host order
    [DARWIN_P, [28, 30, ...tail]], // sin6_len = 28, AF_INET6 = 30
    [FREEBSD_P, [28, 28, ...tail]], // sin6_len = 28, AF_INET6 = 28
  ];
  for (const [p, expected] of cases) {
    await t.step(p.platform, () => {
      assert.equal(SOCKADDR_IN6_SIZE, 28);
      const buf = new Uint8Array(SOCKADDR_STORAGE_SIZE).fill(0xaa);
      assert.equal(encodeSockaddr(buf, p, v6), 28);
      assert.deepEqual(bytes(buf, 28), expected);
      assert.ok(buf.subarray(28).every((b) => b === 0xaa));
      assert.deepEqual(decodeSockaddr(buf, p), v6);
    });
  }
  await t.step("flowinfo and scope default to 0", () => {
    const buf = new Uint8Array(28).fill(0xff);
    encodeSockaddr(buf, LINUX_P, { family: 6, address: new Uint8Array(16), port: 1 });
    assert.deepEqual(bytes(buf), [10, 0, 0, 1, ...new Array(24).fill(0)]);
  });
});

Deno.test("epoll_event: packed on x86_64, natural alignment on aarch64", async (t) => {
  await t.step("x86_64: 12 bytes, data at 4", () => {
    assert.deepEqual(epollEventLayout("x86_64"), { size: 12, eventsOffset: 0, dataOffset: 4 });
  });
  await t.step("aarch64: 16 bytes, data at 8", () => {
    assert.deepEqual(epollEventLayout("aarch64"), { size: 16, eventsOffset: 0, dataOffset: 8 });
  });
  await t.step({
    name: `the running kernel agrees (${Deno.build.arch})`,
    ignore: Deno.build.os !== "linux",
    fn: () => {
      const before = openFds();
      const linux = libc().linux!;
      const layout = epollEventLayout(Deno.build.arch as "x86_64" | "aarch64");
      const epfd = linux.epoll_create1(EPOLL.CLOEXEC);
      const efd = linux.eventfd(1, EVENTFD.NONBLOCK | EVENTFD.CLOEXEC); // readable at once
      try {
        assert.ok(epfd >= 0 && efd >= 0);
        const ctl = new Uint8Array(16);
        const view = new DataView(ctl.buffer);
        view.setUint32(layout.eventsOffset, EPOLL.IN, true);
        view.setUint32(layout.dataOffset, 0x11223344, true);
        view.setUint32(layout.dataOffset + 4, 0x55667788, true);
        assert.equal(linux.epoll_ctl(epfd, EPOLL.CTL_ADD, efd, ctl), 0);
        // Two entries' worth, filled with a marker: the kernel writes exactly one entry.
        const out = new Uint8Array(32).fill(0xee);
        assert.equal(linux.epoll_wait(epfd, out, 2, 0), 1);
        const ov = new DataView(out.buffer);
        assert.equal(ov.getUint32(0, true), EPOLL.IN);
        assert.equal(ov.getUint32(layout.dataOffset, true), 0x11223344);
        assert.equal(ov.getUint32(layout.dataOffset + 4, true), 0x55667788);
        assert.ok(out.subarray(layout.size).every((b) => b === 0xee));
      } finally {
        libc().sym.close(efd);
        libc().sym.close(epfd);
      }
      assert.equal(openFds(), before);
    },
  });
});

Deno.test("kevent: macOS 32 bytes, FreeBSD 64 bytes", async (t) => {
  await t.step("offsets", () => {
    // <sys/event.h>: ident uintptr_t 0, filter int16 8, flags uint16 10, fflags uint32 12,
    // data intptr_t/int64 16, udata void* 24; FreeBSD 12+ adds uint64 ext[4] at 32.
    const base = { ident: 0, filter: 8, flags: 10, fflags: 12, data: 16, udata: 24 };
    assert.deepEqual(keventLayout("darwin"), { size: 32, ...base });
    assert.deepEqual(keventLayout("freebsd"), { size: 64, ...base });
  });
  const ev = {
    ident: 5,
    filter: -1, // EVFILT_READ
    flags: 0x0041, // EV_ADD | EV_RECEIPT
    fflags: 0x01000000,
    data: 0x0102,
    udata: 0x0000000700000005,
  };
  const first32 = [
    ...[5, 0, 0, 0, 0, 0, 0, 0], // ident
    ...[0xff, 0xff], // filter -1
    ...[0x41, 0x00], // flags
    ...[0x00, 0x00, 0x00, 0x01], // fflags
    ...[0x02, 0x01, 0, 0, 0, 0, 0, 0], // data
    ...[5, 0, 0, 0, 7, 0, 0, 0], // udata
  ];
  await t.step("darwin bytes", () => {
    const layout = keventLayout("darwin");
    const buf = new Uint8Array(2 * 32).fill(0xaa);
    encodeKevent(new DataView(buf.buffer), 1, layout, ev);
    assert.deepEqual(bytes(buf.subarray(32)), first32);
    assert.ok(buf.subarray(0, 32).every((b) => b === 0xaa), "entry 0 untouched");
    assert.deepEqual(decodeKevent(new DataView(buf.buffer), 1, layout), ev);
  });
  await t.step("freebsd bytes: ext[4] zeroed", () => {
    const layout = keventLayout("freebsd");
    const buf = new Uint8Array(3 * 64).fill(0xaa);
    encodeKevent(new DataView(buf.buffer), 1, layout, ev);
    assert.deepEqual(bytes(buf.subarray(64, 128)), [...first32, ...new Array(32).fill(0)]);
    assert.ok(buf.subarray(0, 64).every((b) => b === 0xaa), "entry 0 untouched");
    assert.ok(buf.subarray(128).every((b) => b === 0xaa), "entry 2 untouched");
    assert.deepEqual(decodeKevent(new DataView(buf.buffer), 1, layout), ev);
  });
  await t.step("negative filter and data, the top fflags bit", () => {
    const layout = keventLayout("darwin");
    const view = new DataView(new ArrayBuffer(32));
    const e = { ident: 0, filter: -11, flags: 0x8000, fflags: 0x80000001, data: -1, udata: 0 };
    encodeKevent(view, 0, layout, e);
    assert.deepEqual(bytes(new Uint8Array(view.buffer, 8, 16)), [
      ...[0xf5, 0xff], // -11
      ...[0x00, 0x80], // EV_EOF
      ...[0x01, 0x00, 0x00, 0x80],
      ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ]);
    assert.deepEqual(decodeKevent(view, 0, layout), e);
  });
  await t.step("writeKevent: 64-bit ident and data, udata from two full halves", () => {
    for (const platform of ["darwin", "freebsd"] as const) {
      const layout = keventLayout(platform);
      const buf = new Uint8Array(layout.size).fill(0xaa);
      const view = new DataView(buf.buffer);
      writeKevent(
        view,
        0,
        layout,
        2 ** 40 + 3,
        -2,
        0x0002,
        7,
        -(2 ** 40) - 5,
        0xffffffff,
        0xfffffffe,
      );
      assert.equal(view.getBigUint64(layout.ident, true), 2n ** 40n + 3n);
      assert.equal(view.getBigInt64(layout.data, true), -(2n ** 40n) - 5n);
      assert.equal(view.getBigUint64(layout.udata, true), 0xfffffffe_ffffffffn);
      assert.deepEqual(decodeKevent(view, 0, layout), {
        ident: 2 ** 40 + 3,
        filter: -2,
        flags: 0x0002,
        fflags: 7,
        data: -(2 ** 40) - 5,
        udata: Number(0xfffffffe_ffffffffn),
      });
      assert.ok(buf.subarray(32).every((b) => b === 0), `${platform}: tail zeroed`);
    }
  });
  await t.step("EVFILT_USER is -10 on macOS, -11 on FreeBSD", () => {
    assert.equal(KQUEUE.EVFILT_USER_DARWIN, -10);
    assert.equal(KQUEUE.EVFILT_USER_FREEBSD, -11);
    assert.equal(evfiltUser("darwin"), -10);
    assert.equal(evfiltUser("freebsd"), -11);
  });
  await t.step("kqueue flag values", () => {
    // <sys/event.h>, identical on macOS and FreeBSD for everything used here.
    assert.deepEqual({ ...KQUEUE }, {
      EVFILT_READ: -1,
      EVFILT_WRITE: -2,
      EVFILT_USER_DARWIN: -10,
      EVFILT_USER_FREEBSD: -11,
      EV_ADD: 0x0001,
      EV_DELETE: 0x0002,
      EV_ENABLE: 0x0004,
      EV_DISABLE: 0x0008,
      EV_ONESHOT: 0x0010,
      EV_CLEAR: 0x0020,
      EV_RECEIPT: 0x0040,
      EV_ERROR: 0x4000,
      EV_EOF: 0x8000,
      NOTE_TRIGGER: 0x01000000,
    });
  });
  await t.step("epoll and eventfd values", () => {
    // <sys/epoll.h>, <sys/eventfd.h>: EPOLL_CLOEXEC = EFD_CLOEXEC = O_CLOEXEC = 02000000,
    // EFD_NONBLOCK = O_NONBLOCK = 04000.
    assert.deepEqual({ ...EPOLL }, {
      CLOEXEC: 0x80000,
      CTL_ADD: 1,
      CTL_DEL: 2,
      CTL_MOD: 3,
      IN: 0x001,
      PRI: 0x002,
      OUT: 0x004,
      ERR: 0x008,
      HUP: 0x010,
      RDHUP: 0x2000,
    });
    assert.deepEqual({ ...EVENTFD }, { NONBLOCK: 0x800, CLOEXEC: 0x80000 });
  });
});

Deno.test("timeval and timespec", async (t) => {
  await t.step("sizes", () => {
    assert.equal(TIMEVAL_SIZE, 16);
    assert.equal(TIMESPEC_SIZE, 16);
    assert.equal(IOVEC_SIZE, 16);
  });
  await t.step("timeval: tv_sec int64 at 0, tv_usec at 8, padding cleared", () => {
    const buf = new Uint8Array(16).fill(0xaa);
    encodeTimeval(new DataView(buf.buffer), 1500);
    // 1 s, 500000 us = 0x0007a120.
    assert.deepEqual(bytes(buf), [1, 0, 0, 0, 0, 0, 0, 0, 0x20, 0xa1, 0x07, 0, 0, 0, 0, 0]);
    encodeTimeval(new DataView(buf.buffer), 2.5);
    // 0 s, 2500 us = 0x09c4.
    assert.deepEqual(bytes(buf), [0, 0, 0, 0, 0, 0, 0, 0, 0xc4, 0x09, 0, 0, 0, 0, 0, 0]);
    encodeTimeval(new DataView(buf.buffer), 0);
    assert.deepEqual(bytes(buf), new Array(16).fill(0));
    // 3 days = 259200 s = 0x0003f480.
    encodeTimeval(new DataView(buf.buffer), 259_200_000);
    assert.deepEqual(bytes(buf), [0x80, 0xf4, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
  await t.step("timespec: tv_sec int64 at 0, tv_nsec int64 at 8", () => {
    const buf = new Uint8Array(16).fill(0xaa);
    encodeTimespec(new DataView(buf.buffer), 1500);
    // 1 s, 500000000 ns = 0x1dcd6500.
    assert.deepEqual(bytes(buf), [1, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x65, 0xcd, 0x1d, 0, 0, 0, 0]);
    encodeTimespec(new DataView(buf.buffer), 0.001);
    // 1000 ns = 0x03e8.
    assert.deepEqual(bytes(buf), [0, 0, 0, 0, 0, 0, 0, 0, 0xe8, 0x03, 0, 0, 0, 0, 0, 0]);
    encodeTimespec(new DataView(buf.buffer), 0);
    assert.deepEqual(bytes(buf), new Array(16).fill(0));
  });
});

Deno.test("fd_set bit positions", async (t) => {
  await t.step("FD_SETSIZE 1024 is 128 bytes", () => {
    assert.equal(fdSetBytes(1024), 128);
  });
  // Linux/FreeBSD: an array of 64-bit longs; macOS: of int32. Little-endian, fd n is bit
  // n % 64 of long n / 64, i.e. bit n % 8 of byte n / 8 either way.
  const cases: [number, number, number][] = [
    [0, 0, 0x01],
    [7, 0, 0x80],
    [8, 1, 0x01],
    [63, 7, 0x80],
    [64, 8, 0x01],
    [1023, 127, 0x80],
  ];
  for (const [fd, byte, mask] of cases) {
    await t.step(`fd ${fd} is byte ${byte} mask 0x${mask.toString(16)}`, () => {
      const set = new Uint8Array(128);
      fdSet(set, fd);
      const expected = new Array(128).fill(0);
      expected[byte] = mask;
      assert.deepEqual(bytes(set), expected);
      assert.ok(fdIsSet(set, fd));
      assert.ok(!fdIsSet(set, fd ^ 1));
      fdClr(set, fd);
      assert.ok(set.every((b) => b === 0));
    });
  }
  await t.step("set and clear leave neighbours alone", () => {
    const set = new Uint8Array(128).fill(0xff);
    fdClr(set, 9);
    assert.equal(set[1], 0xfd);
    assert.ok(!fdIsSet(set, 9) && fdIsSet(set, 8) && fdIsSet(set, 10));
    fdSet(set, 9);
    assert.ok(set.every((b) => b === 0xff));
  });
  await t.step("as 64-bit longs: fd 63 is the top bit of long 0, fd 64 bit 0 of long 1", () => {
    const set = new Uint8Array(128);
    fdSet(set, 63);
    fdSet(set, 64);
    const longs = new BigUint64Array(set.buffer);
    assert.equal(longs[0], 1n << 63n);
    assert.equal(longs[1], 1n);
  });
});

Deno.test("addrinfo offsets", async (t) => {
  await t.step("glibc: ai_addr at 24, ai_canonname at 32", () => {
    assert.deepEqual(addrinfoLayout("linux"), {
      size: 48,
      flags: 0,
      family: 4,
      socktype: 8,
      protocol: 12,
      addrlen: 16,
      addr: 24,
      canonname: 32,
      next: 40,
    });
  });
  for (const p of ["darwin", "freebsd"] as const) {
    await t.step(`${p}: ai_canonname at 24, ai_addr at 32`, () => {
      assert.deepEqual(addrinfoLayout(p), {
        size: 48,
        flags: 0,
        family: 4,
        socktype: 8,
        protocol: 12,
        addrlen: 16,
        canonname: 24,
        addr: 32,
        next: 40,
      });
    });
  }
  await t.step({
    name: "the running C library agrees",
    ignore: Deno.build.os !== "linux",
    fn: () => {
      const lib = libc();
      const layout = addrinfoLayout("linux");
      const hints = new Uint8Array(layout.size);
      const hv = new DataView(hints.buffer);
      // glibc <netdb.h>: AI_NUMERICHOST 0x0004, AI_NUMERICSERV 0x0400.
      hv.setInt32(layout.flags, 0x0004 | 0x0400, true);
      hv.setInt32(layout.family, lib.c.AF_INET, true);
      hv.setInt32(layout.socktype, lib.c.SOCK_STREAM, true);
      const res = new BigUint64Array(1);
      const rc = lib.sym.getaddrinfo(
        new TextEncoder().encode("127.0.0.2\0"),
        new TextEncoder().encode("8080\0"),
        hints,
        res,
      );
      assert.equal(rc, 0);
      const ptr = Deno.UnsafePointer.create(res[0]);
      assert.ok(ptr !== null);
      try {
        const ai = new Deno.UnsafePointerView(ptr);
        assert.equal(ai.getInt32(layout.family), lib.c.AF_INET);
        assert.equal(ai.getInt32(layout.socktype), lib.c.SOCK_STREAM);
        assert.equal(ai.getUint32(layout.addrlen), 16);
        assert.equal(ai.getPointer(layout.canonname), null); // no AI_CANONNAME asked
        const sa = new Uint8Array(16);
        Deno.UnsafePointerView.copyInto(ai.getPointer(layout.addr)!, sa);
        assert.deepEqual(bytes(sa), [2, 0, 0x1f, 0x90, 127, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
      } finally {
        lib.sym.freeaddrinfo(ptr);
      }
    },
  });
});

/** Every field of {@link Constants} but the errno table, as written in the headers. */
type Scalars = Omit<Constants, "errno">;

const EXPECTED: Record<Platform, Scalars> = {
  // glibc: <bits/socket.h>, <bits/socket_type.h>, <asm-generic/socket.h>,
  // <bits/fcntl-linux.h>, <netinet/in.h>, <netinet/tcp.h>, <bits/typesizes.h>.
  linux: {
    platform: "linux",
    AF_UNIX: 1,
    AF_INET: 2,
    AF_INET6: 10,
    SOCK_STREAM: 1,
    SOCK_NONBLOCK: 0x800, // 04000
    SOCK_CLOEXEC: 0x80000, // 02000000
    SOL_SOCKET: 1,
    SO_REUSEADDR: 2,
    SO_REUSEPORT: 15,
    SO_ERROR: 4,
    SO_KEEPALIVE: 9,
    SO_SNDBUF: 7,
    SO_RCVBUF: 8,
    SO_NOSIGPIPE: 0, // absent
    MSG_NOSIGNAL: 0x4000,
    MSG_DONTWAIT: 0x40,
    SHUT_RD: 0,
    SHUT_WR: 1,
    SHUT_RDWR: 2,
    IPPROTO_TCP: 6,
    IPPROTO_IPV6: 41,
    IPV6_V6ONLY: 26,
    TCP_NODELAY: 1,
    F_GETFD: 1,
    F_SETFD: 2,
    F_GETFL: 3,
    F_SETFL: 4,
    FD_CLOEXEC: 1,
    O_NONBLOCK: 0x800,
    O_RDONLY: 0,
    O_CLOEXEC: 0x80000,
    FD_SETSIZE: 1024,
  },
  // macOS SDK: <sys/socket.h>, <sys/fcntl.h>, <netinet/in.h>, <netinet6/in6.h>,
  // <sys/_types/_fd_setsize.h>.
  darwin: {
    platform: "darwin",
    AF_UNIX: 1,
    AF_INET: 2,
    AF_INET6: 30,
    SOCK_STREAM: 1,
    SOCK_NONBLOCK: 0, // absent: fcntl
    SOCK_CLOEXEC: 0, // absent: fcntl
    SOL_SOCKET: 0xffff,
    SO_REUSEADDR: 0x0004,
    SO_REUSEPORT: 0x0200,
    SO_ERROR: 0x1007,
    SO_KEEPALIVE: 0x0008,
    SO_SNDBUF: 0x1001,
    SO_RCVBUF: 0x1002,
    SO_NOSIGPIPE: 0x1022,
    MSG_NOSIGNAL: 0, // SO_NOSIGPIPE is used instead
    MSG_DONTWAIT: 0x80,
    SHUT_RD: 0,
    SHUT_WR: 1,
    SHUT_RDWR: 2,
    IPPROTO_TCP: 6,
    IPPROTO_IPV6: 41,
    IPV6_V6ONLY: 27,
    TCP_NODELAY: 0x01,
    F_GETFD: 1,
    F_SETFD: 2,
    F_GETFL: 3,
    F_SETFL: 4,
    FD_CLOEXEC: 1,
    O_NONBLOCK: 0x0004,
    O_RDONLY: 0,
    O_CLOEXEC: 0x01000000,
    FD_SETSIZE: 1024,
  },
  // FreeBSD: <sys/socket.h>, <sys/fcntl.h>, <netinet/in.h>, <netinet6/in6.h>,
  // <sys/select.h>.
  freebsd: {
    platform: "freebsd",
    AF_UNIX: 1,
    AF_INET: 2,
    AF_INET6: 28,
    SOCK_STREAM: 1,
    SOCK_NONBLOCK: 0x20000000,
    SOCK_CLOEXEC: 0x10000000,
    SOL_SOCKET: 0xffff,
    SO_REUSEADDR: 0x0004,
    SO_REUSEPORT: 0x0200,
    SO_ERROR: 0x1007,
    SO_KEEPALIVE: 0x0008,
    SO_SNDBUF: 0x1001,
    SO_RCVBUF: 0x1002,
    SO_NOSIGPIPE: 0x0800,
    MSG_NOSIGNAL: 0x20000,
    MSG_DONTWAIT: 0x80,
    SHUT_RD: 0,
    SHUT_WR: 1,
    SHUT_RDWR: 2,
    IPPROTO_TCP: 6,
    IPPROTO_IPV6: 41,
    IPV6_V6ONLY: 27,
    TCP_NODELAY: 1,
    F_GETFD: 1,
    F_SETFD: 2,
    F_GETFL: 3,
    F_SETFL: 4,
    FD_CLOEXEC: 1,
    O_NONBLOCK: 0x0004,
    O_RDONLY: 0,
    O_CLOEXEC: 0x00100000,
    FD_SETSIZE: 1024,
  },
};

const EXPECTED_ERRNO: Record<Platform, Record<ErrnoName, number>> = {
  // <asm-generic/errno-base.h>, <asm-generic/errno.h>
  linux: {
    EPERM: 1,
    ENOENT: 2,
    EINTR: 4,
    EIO: 5,
    EBADF: 9,
    EAGAIN: 11,
    ENOMEM: 12,
    EACCES: 13,
    EFAULT: 14,
    EEXIST: 17,
    EINVAL: 22,
    ENFILE: 23,
    EMFILE: 24,
    ENOSPC: 28,
    EPIPE: 32,
    ENOSYS: 38,
    EPROTO: 71,
    ENOTSOCK: 88,
    EOPNOTSUPP: 95,
    EAFNOSUPPORT: 97,
    EADDRINUSE: 98,
    EADDRNOTAVAIL: 99,
    ENETDOWN: 100,
    ENETUNREACH: 101,
    ECONNABORTED: 103,
    ECONNRESET: 104,
    ENOBUFS: 105,
    EISCONN: 106,
    ENOTCONN: 107,
    ETIMEDOUT: 110,
    ECONNREFUSED: 111,
    EHOSTUNREACH: 113,
    EALREADY: 114,
    EINPROGRESS: 115,
  },
  // macOS <sys/errno.h>
  darwin: {
    EPERM: 1,
    ENOENT: 2,
    EINTR: 4,
    EIO: 5,
    EBADF: 9,
    EAGAIN: 35,
    ENOMEM: 12,
    EACCES: 13,
    EFAULT: 14,
    EEXIST: 17,
    EINVAL: 22,
    ENFILE: 23,
    EMFILE: 24,
    ENOSPC: 28,
    EPIPE: 32,
    ENOSYS: 78,
    EPROTO: 100,
    ENOTSOCK: 38,
    EOPNOTSUPP: 102,
    EAFNOSUPPORT: 47,
    EADDRINUSE: 48,
    EADDRNOTAVAIL: 49,
    ENETDOWN: 50,
    ENETUNREACH: 51,
    ECONNABORTED: 53,
    ECONNRESET: 54,
    ENOBUFS: 55,
    EISCONN: 56,
    ENOTCONN: 57,
    ETIMEDOUT: 60,
    ECONNREFUSED: 61,
    EHOSTUNREACH: 65,
    EALREADY: 37,
    EINPROGRESS: 36,
  },
  // FreeBSD <sys/errno.h>
  freebsd: {
    EPERM: 1,
    ENOENT: 2,
    EINTR: 4,
    EIO: 5,
    EBADF: 9,
    EAGAIN: 35,
    ENOMEM: 12,
    EACCES: 13,
    EFAULT: 14,
    EEXIST: 17,
    EINVAL: 22,
    ENFILE: 23,
    EMFILE: 24,
    ENOSPC: 28,
    EPIPE: 32,
    ENOSYS: 78,
    EPROTO: 92,
    ENOTSOCK: 38,
    EOPNOTSUPP: 45,
    EAFNOSUPPORT: 47,
    EADDRINUSE: 48,
    EADDRNOTAVAIL: 49,
    ENETDOWN: 50,
    ENETUNREACH: 51,
    ECONNABORTED: 53,
    ECONNRESET: 54,
    ENOBUFS: 55,
    EISCONN: 56,
    ENOTCONN: 57,
    ETIMEDOUT: 60,
    ECONNREFUSED: 61,
    EHOSTUNREACH: 65,
    EALREADY: 37,
    EINPROGRESS: 36,
  },
};

Deno.test("constant tables match the headers", async (t) => {
  const tables: Record<Platform, Constants> = { linux: LINUX, darwin: DARWIN, freebsd: FREEBSD };
  for (const p of ["linux", "darwin", "freebsd"] as const) {
    await t.step(p, () => {
      const { errno: table, ...scalars } = tables[p];
      assert.deepEqual(scalars, EXPECTED[p]);
      assert.deepEqual({ ...table }, EXPECTED_ERRNO[p]);
      assert.equal(constantsFor(p), tables[p]);
    });
  }
  await t.step("the headline differences", () => {
    assert.deepEqual([LINUX.SOL_SOCKET, DARWIN.SOL_SOCKET, FREEBSD.SOL_SOCKET], [
      1,
      0xffff,
      0xffff,
    ]);
    assert.deepEqual([LINUX.SO_REUSEPORT, DARWIN.SO_REUSEPORT], [15, 0x200]);
    assert.deepEqual([LINUX.errno.EAGAIN, DARWIN.errno.EAGAIN, FREEBSD.errno.EAGAIN], [
      11,
      35,
      35,
    ]);
    assert.deepEqual([LINUX.MSG_NOSIGNAL, DARWIN.MSG_NOSIGNAL, FREEBSD.MSG_NOSIGNAL], [
      0x4000,
      0,
      0x20000,
    ]);
    assert.deepEqual([LINUX.AF_INET6, DARWIN.AF_INET6, FREEBSD.AF_INET6], [10, 30, 28]);
  });
  await t.step("errno values are distinct within each table", () => {
    for (const p of ["linux", "darwin", "freebsd"] as const) {
      const values = Object.values(EXPECTED_ERRNO[p]);
      assert.equal(new Set(values).size, values.length, p);
    }
  });
  await t.step("unsupported systems are refused", () => {
    assert.throws(() => constantsFor("windows"), { code: "UNSUPPORTED_PLATFORM" });
    assert.throws(() => libraryPath("windows"), { code: "UNSUPPORTED_PLATFORM" });
    assert.equal(libraryPath("linux"), "libc.so.6");
    assert.equal(libraryPath("darwin"), "/usr/lib/libSystem.B.dylib");
    assert.equal(libraryPath("freebsd"), "libc.so.7");
  });
});

Deno.test({
  name: "the running system agrees with its constant table",
  ignore: Deno.build.os !== "linux",
  fn: async (t) => {
    const before = openFds();
    const lib = libc();
    const { c, sym } = lib;
    assert.equal(c, LINUX);
    await t.step("EBADF from close(-1)", () => {
      assert.equal(sym.close(-1), -1);
      assert.equal(errno(), c.errno.EBADF);
    });
    await t.step("socket flags show up as O_NONBLOCK and FD_CLOEXEC", () => {
      const fd = sym.socket(c.AF_INET6, c.SOCK_STREAM | c.SOCK_NONBLOCK | c.SOCK_CLOEXEC, 0);
      assert.ok(fd >= 0);
      try {
        assert.equal(lib.fcntl(fd, c.F_GETFL, 0) & c.O_NONBLOCK, c.O_NONBLOCK);
        assert.equal(lib.fcntl(fd, c.F_GETFD, 0), c.FD_CLOEXEC);
        const one = new Int32Array([1]);
        assert.equal(sym.setsockopt(fd, c.SOL_SOCKET, c.SO_REUSEPORT, one, 4), 0);
        assert.equal(sym.setsockopt(fd, c.IPPROTO_IPV6, c.IPV6_V6ONLY, one, 4), 0);
        assert.equal(sym.setsockopt(fd, c.IPPROTO_TCP, c.TCP_NODELAY, one, 4), 0);
        const out = new Int32Array([-1]);
        const len = new Uint32Array([4]);
        assert.equal(sym.getsockopt(fd, c.SOL_SOCKET, c.SO_ERROR, out, len), 0);
        assert.equal(out[0], 0);
        assert.equal(sym.getsockopt(fd, c.IPPROTO_IPV6, c.IPV6_V6ONLY, out, len), 0);
        assert.equal(out[0], 1);
        // An unbound AF_INET6 socket reports family AF_INET6 through getsockname.
        const sa = new Uint8Array(SOCKADDR_STORAGE_SIZE);
        const salen = new Uint32Array([SOCKADDR_STORAGE_SIZE]);
        assert.equal(sym.getsockname(fd, sa, salen), 0);
        assert.equal(salen[0], 28);
        assert.equal(decodeSockaddr(sa, c)?.family, 6);
      } finally {
        sym.close(fd);
      }
    });
    await t.step("EAGAIN and EPIPE (with MSG_NOSIGNAL) on a socketpair", () => {
      const pair = new Int32Array(2);
      assert.equal(sym.socketpair(c.AF_UNIX, c.SOCK_STREAM | c.SOCK_CLOEXEC, 0, pair), 0);
      try {
        const buf = new Uint8Array(4);
        assert.equal(sym.recv(pair[0], buf, 4n, c.MSG_DONTWAIT), -1);
        assert.equal(errno(), c.errno.EAGAIN);
        assert.equal(sym.shutdown(pair[1], c.SHUT_RD), 0);
        assert.equal(sym.send(pair[0], buf, 4n, c.MSG_NOSIGNAL | c.MSG_DONTWAIT), -1);
        assert.equal(errno(), c.errno.EPIPE);
      } finally {
        sym.close(pair[0]);
        sym.close(pair[1]);
      }
    });
    assert.equal(openFds(), before);
  },
});

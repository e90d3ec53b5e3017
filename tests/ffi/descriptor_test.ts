/**
 * O_NONBLOCK and FD_CLOEXEC set through the fcntl binding and read back through it, on
 * every kind of descriptor this package creates without flags on some system: sockets
 * (macOS socket/accept), pipes (macOS pipe) and, on Linux, eventfds. Created here without
 * SOCK_NONBLOCK/O_CLOEXEC so that the flags can only come from fcntl.
 */

import assert from "node:assert/strict";
import { EVENTFD } from "../../ffi/constants.ts";
import { setCloseOnExec, setNonBlocking, setNonBlockingCloseOnExec } from "../../ffi/descriptor.ts";
import { errno } from "../../ffi/errno.ts";
import { libc } from "../../ffi/libc.ts";
import { openFds } from "../fixtures/harness.ts";

const lib = libc();
const { c, sym } = lib;
/** <fcntl.h> O_ACCMODE and O_WRONLY: the same on every supported system. */
const O_ACCMODE = 3;
const O_WRONLY = 1;

function statusFlags(fd: number): number {
  const flags = lib.fcntl(fd, c.F_GETFL, 0);
  assert.ok(flags >= 0, `F_GETFL of ${fd}: errno ${errno()}`);
  return flags;
}

function descriptorFlags(fd: number): number {
  const flags = lib.fcntl(fd, c.F_GETFD, 0);
  assert.ok(flags >= 0, `F_GETFD of ${fd}: errno ${errno()}`);
  return flags;
}

/** Asserts the descriptor starts blocking and inheritable, then is neither after the call. */
function checkPrepared(fd: number): void {
  assert.equal(statusFlags(fd) & c.O_NONBLOCK, 0, "blocking before");
  assert.equal(descriptorFlags(fd) & c.FD_CLOEXEC, 0, "inheritable before");
  const accessMode = statusFlags(fd) & O_ACCMODE;
  assert.equal(setNonBlockingCloseOnExec(lib, fd), 0);
  assert.equal(statusFlags(fd) & c.O_NONBLOCK, c.O_NONBLOCK, "O_NONBLOCK after");
  assert.equal(statusFlags(fd) & O_ACCMODE, accessMode, "the other status flags are kept");
  assert.equal(descriptorFlags(fd), c.FD_CLOEXEC, "FD_CLOEXEC after");
  // Idempotent: a second call changes nothing and succeeds.
  assert.equal(setNonBlockingCloseOnExec(lib, fd), 0);
  assert.equal(statusFlags(fd) & c.O_NONBLOCK, c.O_NONBLOCK);
  assert.equal(descriptorFlags(fd), c.FD_CLOEXEC);
}

Deno.test("fcntl sets and reads back O_NONBLOCK and FD_CLOEXEC", async (t) => {
  const before = openFds();

  await t.step("TCP socket (IPv4 and IPv6)", () => {
    for (const af of [c.AF_INET, c.AF_INET6]) {
      const fd = sym.socket(af, c.SOCK_STREAM, 0);
      assert.ok(fd >= 0);
      try {
        checkPrepared(fd);
      } finally {
        sym.close(fd);
      }
    }
  });

  await t.step("socketpair: the flags act (recv would block, not wait)", () => {
    const pair = new Int32Array(2);
    assert.equal(sym.socketpair(c.AF_UNIX, c.SOCK_STREAM, 0, pair), 0);
    try {
      checkPrepared(pair[0]);
      assert.equal(sym.recv(pair[0], new Uint8Array(1), 1n, 0), -1);
      assert.equal(errno(), c.errno.EAGAIN);
    } finally {
      sym.close(pair[0]);
      sym.close(pair[1]);
    }
  });

  await t.step("pipe: both ends, the write end stays write-only", () => {
    const fds = new Int32Array(2);
    assert.equal(sym.pipe(fds), 0);
    try {
      assert.equal(statusFlags(fds[1]) & O_ACCMODE, O_WRONLY);
      checkPrepared(fds[0]);
      checkPrepared(fds[1]);
      assert.equal(statusFlags(fds[1]) & O_ACCMODE, O_WRONLY);
      assert.equal(sym.read(fds[0], new Uint8Array(1), 1n), -1);
      assert.equal(errno(), c.errno.EAGAIN);
    } finally {
      sym.close(fds[0]);
      sym.close(fds[1]);
    }
  });

  await t.step({
    name: "eventfd",
    ignore: lib.linux === null,
    fn: () => {
      const fd = lib.linux!.eventfd(0, 0);
      assert.ok(fd >= 0);
      try {
        checkPrepared(fd);
        // A zero counter reads EAGAIN once non-blocking (it would wait otherwise).
        assert.equal(sym.read(fd, new Uint8Array(8), 8n), -1);
        assert.equal(errno(), c.errno.EAGAIN);
      } finally {
        sym.close(fd);
      }
      // The flags given at creation read back the same way.
      const flagged = lib.linux!.eventfd(0, EVENTFD.NONBLOCK | EVENTFD.CLOEXEC);
      try {
        assert.equal(statusFlags(flagged) & c.O_NONBLOCK, c.O_NONBLOCK);
        assert.equal(descriptorFlags(flagged), c.FD_CLOEXEC);
      } finally {
        sym.close(flagged);
      }
    },
  });

  await t.step("each flag alone", () => {
    const fd = sym.socket(c.AF_INET, c.SOCK_STREAM, 0);
    try {
      assert.equal(setCloseOnExec(lib, fd), 0);
      assert.equal(descriptorFlags(fd), c.FD_CLOEXEC);
      assert.equal(statusFlags(fd) & c.O_NONBLOCK, 0);
      assert.equal(setNonBlocking(lib, fd), 0);
      assert.equal(statusFlags(fd) & c.O_NONBLOCK, c.O_NONBLOCK);
    } finally {
      sym.close(fd);
    }
  });

  await t.step("a closed descriptor gives EBADF, not a throw", () => {
    assert.equal(setNonBlocking(lib, -1), c.errno.EBADF);
    assert.equal(setCloseOnExec(lib, -1), c.errno.EBADF);
    assert.equal(setNonBlockingCloseOnExec(lib, -1), c.errno.EBADF);
  });

  assert.equal(openFds(), before, "descriptor leak");
});

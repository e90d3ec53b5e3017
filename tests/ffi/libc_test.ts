/**
 * The variadic binding: the third argument of an fcntl-shaped call must land where the
 * callee's `va_arg` reads it on the running platform. A probe compiled by the system's C
 * compiler (skipped where there is none) reads its variadic argument the way libc does:
 * as `int` (Apple's fcntl for F_SETFL/F_SETFD) and as a 64-bit value (glibc and FreeBSD
 * read `void *`/`long` and hand it to the kernel). The binding of the other calling
 * convention is run as well, to show that the probe tells them apart.
 */

import assert from "node:assert/strict";
import { bindFcntlShaped, libc } from "../../ffi/libc.ts";
import { FCNTL_APPLE_ARM64_SYMBOLS, FCNTL_SYMBOLS, variadicOnStack } from "../../ffi/symbols.ts";

const PROBE_C = `
#include <stdarg.h>
/* a and b arrive as named arguments; the third as the variadic one. */
int probe_int(int a, int b, ...) {
  va_list ap;
  va_start(ap, b);
  int v = va_arg(ap, int);
  va_end(ap);
  return a * 1000000 + b * 10000 + v;
}
int probe_high(int a, int b, ...) {
  va_list ap;
  va_start(ap, b);
  long v = va_arg(ap, long);
  va_end(ap);
  return (int)(v >> 32);
}
`;

function haveCompiler(): boolean {
  try {
    return new Deno.Command("cc", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test("variadicOnStack: only Apple arm64 passes variadic arguments on the stack", () => {
  assert.equal(variadicOnStack("darwin", "aarch64"), true);
  assert.equal(variadicOnStack("darwin", "x86_64"), false);
  assert.equal(variadicOnStack("linux", "aarch64"), false);
  assert.equal(variadicOnStack("linux", "x86_64"), false);
  assert.equal(variadicOnStack("freebsd", "aarch64"), false);
  assert.equal(variadicOnStack("freebsd", "x86_64"), false);
});

Deno.test("the Apple arm64 binding puts the value first on the stack, as 64 bits", () => {
  const named = FCNTL_SYMBOLS.fcntl.parameters;
  const padded = FCNTL_APPLE_ARM64_SYMBOLS.fcntl.parameters;
  assert.deepEqual(named, ["i32", "i32", "i64"]);
  // x0-x7 take the first eight integer arguments; the ninth is the first stack slot, and
  // an 8-byte type fills the whole slot that va_arg reads.
  assert.equal(padded.length, 9);
  assert.deepEqual(padded.slice(0, 2), ["i32", "i32"]);
  assert.equal(padded[8], "i64");
  assert.equal(FCNTL_APPLE_ARM64_SYMBOLS.fcntl.result, "i32");
});

Deno.test({
  name: "an fcntl-shaped call reaches a variadic callee's va_arg",
  ignore: !haveCompiler(),
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "fdws-variadic-" });
    try {
      const src = `${dir}/probe.c`;
      const lib = `${dir}/probe${Deno.build.os === "darwin" ? ".dylib" : ".so"}`;
      await Deno.writeTextFile(src, PROBE_C);
      const cc = await new Deno.Command("cc", { args: ["-shared", "-fPIC", "-O2", "-o", lib, src] })
        .output();
      assert.ok(cc.success, new TextDecoder().decode(cc.stderr));

      await t.step("this platform's binding: int and 64-bit reads", () => {
        const probeInt = bindFcntlShaped(lib, "probe_int");
        const probeHigh = bindFcntlShaped(lib, "probe_high");
        for (const v of [0, 1, 4, 0o4000, 9999, -1, -9999]) {
          assert.equal(probeInt(7, 3, v), 7_030_000 + v, `int ${v}`);
          // Sign-extended: the upper half is all ones for a negative value, else zero.
          assert.equal(probeHigh(7, 3, v), v < 0 ? -1 : 0, `upper half of ${v}`);
        }
      });

      await t.step("the other convention's binding misses it here", () => {
        const wrong = bindFcntlShaped(lib, "probe_int", !variadicOnStack());
        // Named arguments still arrive; the variadic one is read where it was not put.
        assert.notEqual(wrong(7, 3, 4321) - 7_030_000, 4321);
      });

      await t.step("the real fcntl agrees with its read-back", () => {
        const { c, sym, fcntl } = libc();
        const fd = sym.socket(c.AF_INET, c.SOCK_STREAM, 0);
        try {
          assert.equal(fcntl(fd, c.F_SETFD, c.FD_CLOEXEC), 0);
          assert.equal(fcntl(fd, c.F_GETFD, 0), c.FD_CLOEXEC);
          assert.equal(fcntl(fd, c.F_SETFD, 0), 0);
          assert.equal(fcntl(fd, c.F_GETFD, 0), 0);
        } finally {
          sym.close(fd);
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * The tar reader that unpacks the npm Chromium's archives: files and folders land under
 * the destination with their modes; entries that would leave it, and entry types it does
 * not know, are refused.
 */

import assert from "node:assert/strict";
import { untar } from "./npm_chromium.ts";

/** One ustar header block plus the data padded to 512 bytes. */
function entry(
  name: string,
  type: string,
  data: Uint8Array = new Uint8Array(),
  mode = 0o644,
): Uint8Array {
  const header = new Uint8Array(512);
  const enc = new TextEncoder();
  const put = (at: number, s: string): void => header.set(enc.encode(s), at);
  put(0, name);
  put(100, `${mode.toString(8).padStart(7, "0")}\0`);
  put(124, `${data.length.toString(8).padStart(11, "0")}\0`);
  put(156, type);
  put(257, "ustar\0");
  put(263, "00");
  const padded = new Uint8Array(Math.ceil(data.length / 512) * 512);
  padded.set(data);
  const out = new Uint8Array(512 + padded.length);
  out.set(header);
  out.set(padded, 512);
  return out;
}

function archive(...entries: Uint8Array[]): Uint8Array {
  const end = new Uint8Array(1024);
  const out = new Uint8Array(entries.reduce((n, e) => n + e.length, 0) + end.length);
  let at = 0;
  for (const e of entries) {
    out.set(e, at);
    at += e.length;
  }
  return out;
}

Deno.test("untar: the npm Chromium's archives", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "fdws-untar-" });
  try {
    await t.step("files and folders with their modes", () => {
      const body = new TextEncoder().encode("x".repeat(700));
      untar(
        archive(
          entry("lib/", "5", undefined, 0o755),
          entry("lib/libnss3.so", "0", body, 0o755),
          entry("fonts.conf", "0", new TextEncoder().encode("<fontconfig/>")),
        ),
        dir,
      );
      assert.equal(Deno.readTextFileSync(`${dir}/lib/libnss3.so`), "x".repeat(700));
      assert.equal(Deno.statSync(`${dir}/lib/libnss3.so`).mode! & 0o777, 0o755);
      assert.equal(Deno.readTextFileSync(`${dir}/fonts.conf`), "<fontconfig/>");
      assert.equal(Deno.statSync(`${dir}/fonts.conf`).mode! & 0o777, 0o644);
    });
    await t.step("an entry that leaves the folder is refused", () => {
      assert.throws(() => untar(archive(entry("../evil", "0")), dir), /leaves its folder/);
      assert.throws(() => untar(archive(entry("/etc/evil", "0")), dir), /leaves its folder/);
    });
    await t.step("a symbolic link is refused", () => {
      assert.throws(() => untar(archive(entry("link", "2")), dir), /unsupported type 2/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

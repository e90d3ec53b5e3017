import assert from "node:assert/strict";
import { base64, sha1 } from "../../../protocol/handshake/sha1.ts";

async function reference(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-1", data as BufferSource));
}

Deno.test("sha1 matches WebCrypto at every length across block boundaries", async () => {
  let seed = 12345;
  const next = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  for (let len = 0; len <= 300; len++) {
    const data = new Uint8Array(len);
    for (let i = 0; i < len; i++) data[i] = next();
    assert.deepEqual(sha1(data), await reference(data), `length ${len}`);
  }
});

Deno.test("sha1 of the FIPS 180 examples", () => {
  const hex = (b: Uint8Array): string =>
    [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  const enc = new TextEncoder();
  assert.equal(hex(sha1(enc.encode("abc"))), "a9993e364706816aba3e25717850c26c9cd0d89d");
  assert.equal(hex(sha1(enc.encode(""))), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  assert.equal(
    hex(sha1(enc.encode("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
    "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
  );
});

Deno.test("base64 matches btoa for every remainder", () => {
  for (let len = 0; len < 70; len++) {
    const data = new Uint8Array(len).map((_, i) => (i * 37 + len) & 0xff);
    assert.equal(base64(data), btoa(String.fromCharCode(...data)), `length ${len}`);
  }
});

/**
 * SHA-1 (FIPS 180-4) for the opening handshake's `Sec-WebSocket-Accept`, and base64.
 *
 * The handshake hashes one short string per connection. `node:crypto` would do it in a
 * few microseconds too, but importing it brings up Deno's Node compatibility layer
 * (about 10 MB of resident memory at import and more on first use), which is more than a
 * thousand idle connections cost here. SHA-1 is not used for anything secret: RFC 6455
 * uses it only to prove that the server read the key.
 *
 * @module
 */

const W = new Int32Array(80);
const block = new Uint8Array(64);

/**
 * SHA-1 digest of `data` (20 bytes).
 *
 * @example
 * ```ts
 * import { sha1 } from "./sha1.ts";
 * const digest = sha1(new TextEncoder().encode("abc"));
 * console.log(digest.length); // 20
 * ```
 */
export function sha1(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(20);
  sha1Into(data, data.length, out, 0);
  return out;
}

/**
 * Writes the SHA-1 digest of `data[0..length)` into `out[offset..offset + 20)`, without
 * allocating: the handshake runs it once per connection.
 */
export function sha1Into(data: Uint8Array, length: number, out: Uint8Array, offset: number): void {
  let h0 = 0x67452301;
  let h1 = 0xefcdab89 | 0;
  let h2 = 0x98badcfe | 0;
  let h3 = 0x10325476;
  let h4 = 0xc3d2e1f0 | 0;
  const len = length;
  // Message + 0x80 + zero padding + 64-bit big-endian bit length, in 64-byte blocks.
  const blocks = ((len + 8) >> 6) + 1;
  for (let b = 0; b < blocks; b++) {
    const base = b * 64;
    for (let i = 0; i < 64; i++) {
      const at = base + i;
      block[i] = at < len ? data[at] : at === len ? 0x80 : 0;
    }
    if (b === blocks - 1) {
      const bits = len * 8;
      const high = Math.floor(bits / 0x100000000);
      block[56] = high >>> 24;
      block[57] = high >>> 16;
      block[58] = high >>> 8;
      block[59] = high;
      block[60] = bits >>> 24;
      block[61] = bits >>> 16;
      block[62] = bits >>> 8;
      block[63] = bits;
    }
    for (let i = 0; i < 16; i++) {
      const j = i * 4;
      W[i] = (block[j] << 24) | (block[j + 1] << 16) | (block[j + 2] << 8) | block[j + 3];
    }
    for (let i = 16; i < 80; i++) {
      const x = W[i - 3] ^ W[i - 8] ^ W[i - 14] ^ W[i - 16];
      W[i] = (x << 1) | (x >>> 31);
    }
    let a = h0, b2 = h1, c = h2, d = h3, e = h4;
    for (let i = 0; i < 80; i++) {
      let f: number, k: number;
      if (i < 20) {
        f = (b2 & c) | (~b2 & d);
        k = 0x5a827999;
      } else if (i < 40) {
        f = b2 ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (i < 60) {
        f = (b2 & c) | (b2 & d) | (c & d);
        k = 0x8f1bbcdc | 0;
      } else {
        f = b2 ^ c ^ d;
        k = 0xca62c1d6 | 0;
      }
      const t = (((a << 5) | (a >>> 27)) + f + e + k + W[i]) | 0;
      e = d;
      d = c;
      c = (b2 << 30) | (b2 >>> 2);
      b2 = a;
      a = t;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b2) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
  }
  writeWord(out, offset, h0);
  writeWord(out, offset + 4, h1);
  writeWord(out, offset + 8, h2);
  writeWord(out, offset + 12, h3);
  writeWord(out, offset + 16, h4);
}

function writeWord(out: Uint8Array, at: number, w: number): void {
  out[at] = w >>> 24;
  out[at + 1] = w >>> 16;
  out[at + 2] = w >>> 8;
  out[at + 3] = w;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const ALPHABET_CODES = new Uint8Array(64).map((_, i) => ALPHABET.charCodeAt(i));

/**
 * Writes the base64 (with padding) of `bytes[0..length)` as ASCII into `out` at `offset`;
 * returns the number of characters written (`4 * ceil(length / 3)`).
 */
export function base64Into(
  bytes: Uint8Array,
  length: number,
  out: Uint8Array,
  offset: number,
): number {
  let o = offset;
  let i = 0;
  for (; i + 2 < length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out[o++] = ALPHABET_CODES[n >>> 18];
    out[o++] = ALPHABET_CODES[(n >>> 12) & 63];
    out[o++] = ALPHABET_CODES[(n >>> 6) & 63];
    out[o++] = ALPHABET_CODES[n & 63];
  }
  const rest = length - i;
  if (rest > 0) {
    const n = (bytes[i] << 16) | (rest === 2 ? bytes[i + 1] << 8 : 0);
    out[o++] = ALPHABET_CODES[n >>> 18];
    out[o++] = ALPHABET_CODES[(n >>> 12) & 63];
    out[o++] = rest === 2 ? ALPHABET_CODES[(n >>> 6) & 63] : 0x3d;
    out[o++] = 0x3d;
  }
  return o - offset;
}

/**
 * Standard base64 (RFC 4648 §4, with padding).
 *
 * @example
 * ```ts
 * import { base64 } from "./sha1.ts";
 * console.log(base64(new Uint8Array([104, 105]))); // "aGk="
 * ```
 */
export function base64(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += ALPHABET[n >>> 18] + ALPHABET[(n >>> 12) & 63] + ALPHABET[(n >>> 6) & 63] +
      ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += ALPHABET[n >>> 18] + ALPHABET[(n >>> 12) & 63] + "==";
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += ALPHABET[n >>> 18] + ALPHABET[(n >>> 12) & 63] + ALPHABET[(n >>> 6) & 63] + "=";
  }
  return out;
}

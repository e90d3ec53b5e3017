/**
 * RFC 6455 §5.3 masking: the XOR with a 4-byte key that clients apply to what they send and
 * servers undo, word at a time where the buffer allows.
 *
 * @module
 */

import { FrameEncodeError } from "./encode_error.ts";

// Creating a Uint32Array view costs about as much as byte-masking ~600 bytes, so the view is
// cached per ArrayBuffer (a connection's read buffer is reused for every read) and only
// created for a new buffer when the payload is large enough to repay it.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const WORD_MASK_MIN = 32;
const WORD_VIEW_MIN = 1024;
let wordBuffer: ArrayBufferLike | null = null;
let words: Uint32Array = new Uint32Array(0);

/**
 * Packs 4 masking-key bytes into the number form {@linkcode applyMask} takes: `key[offset]`
 * in the low 8 bits, `key[offset + 3]` in the high 8 bits.
 *
 * @param key Buffer holding the 4 key bytes.
 * @param offset Where the key starts in `key`. Defaults to 0.
 * @returns The packed key.
 *
 * @example
 * ```ts
 * import { packMaskKey } from "./mask.ts";
 *
 * console.log(packMaskKey(new Uint8Array([1, 2, 3, 4])).toString(16)); // "4030201"
 * ```
 */
export function packMaskKey(key: Uint8Array, offset = 0): number {
  if (offset < 0 || key.length - offset < 4) {
    throw new FrameEncodeError("INVALID_MASK_KEY", "a masking key needs 4 bytes");
  }
  return (key[offset] | (key[offset + 1] << 8) | (key[offset + 2] << 16) |
    (key[offset + 3] << 24)) >>> 0;
}

/**
 * XORs `buf[start..end)` in place with a masking key (RFC 6455 §5.3). Masking and unmasking
 * are the same operation.
 *
 * The key is packed as by {@linkcode packMaskKey}; its low byte applies to `buf[start]`. To
 * continue a payload after `n` bytes, rotate the key right by `8 * (n % 4)` bits.
 *
 * @param buf Bytes to transform.
 * @param start First index (inclusive).
 * @param end Last index (exclusive).
 * @param maskKey Packed 32-bit key.
 *
 * @example
 * ```ts
 * import { applyMask, packMaskKey } from "./mask.ts";
 *
 * const data = new TextEncoder().encode("Hello");
 * const key = packMaskKey(new Uint8Array([0x37, 0xfa, 0x21, 0x3d]));
 * applyMask(data, 0, data.length, key); // the RFC 6455 §5.7 example bytes
 * console.log(Array.from(data, (b) => b.toString(16))); // ["7f", "9f", "4d", "51", "58"]
 * applyMask(data, 0, data.length, key);
 * console.log(new TextDecoder().decode(data)); // "Hello"
 * ```
 */
export function applyMask(buf: Uint8Array, start: number, end: number, maskKey: number): void {
  const length = end - start;
  if (length >= WORD_MASK_MIN && LITTLE_ENDIAN) {
    const ab = buf.buffer;
    if (ab !== wordBuffer) {
      if (length < WORD_VIEW_MIN || ab.byteLength > 0x7fffffff) {
        maskBytes(buf, start, end, maskKey);
        return;
      }
      words = new Uint32Array(ab, 0, ab.byteLength >>> 2);
      wordBuffer = ab;
    }
    let i = start;
    let address = buf.byteOffset + i;
    let key = maskKey;
    while ((address & 3) !== 0) {
      buf[i++] ^= key;
      key = (key >>> 8) | (key << 24);
      address++;
    }
    let w = address >>> 2;
    const wordEnd = w + ((end - i) >>> 2);
    if (wordEnd > words.length) {
      // A resizable buffer shrank under the cached view; fall back rather than miss bytes.
      wordBuffer = null;
      maskBytes(buf, i, end, key);
      return;
    }
    for (; w < wordEnd; w++) words[w] ^= key;
    i = (wordEnd << 2) - buf.byteOffset;
    while (i < end) {
      buf[i++] ^= key;
      key = (key >>> 8) | (key << 24);
    }
    return;
  }
  maskBytes(buf, start, end, maskKey);
}

function maskBytes(buf: Uint8Array, start: number, end: number, key: number): void {
  const k0 = key & 0xff;
  const k1 = (key >>> 8) & 0xff;
  const k2 = (key >>> 16) & 0xff;
  const k3 = key >>> 24;
  let i = start;
  const end4 = end - ((end - start) % 4);
  for (; i < end4; i += 4) {
    buf[i] ^= k0;
    buf[i + 1] ^= k1;
    buf[i + 2] ^= k2;
    buf[i + 3] ^= k3;
  }
  if (i < end) {
    buf[i] ^= k0;
    if (++i < end) {
      buf[i] ^= k1;
      if (++i < end) buf[i] ^= k2;
    }
  }
}

/**
 * RFC 6455 frame encoder: frame headers, whole frames, fragmented messages, close and other
 * control frames (masking is in `mask.ts`, shared with the parser).
 *
 * Every encoder returns one contiguous, standalone `Uint8Array` (byte offset 0, exact length,
 * its own `ArrayBuffer`) so that a frame encoded once can be written to many connections.
 *
 * @module
 */

import { FrameEncodeError } from "./encode_error.ts";
import { applyMask, packMaskKey } from "./mask.ts";
import { assertSendableCloseCode, CloseCodeError, MAX_CLOSE_REASON_BYTES } from "./close_codes.ts";
import { isKnownOpcode, OPCODE_BINARY, OPCODE_CLOSE, OPCODE_TEXT } from "./opcodes.ts";

/**
 * Options of {@linkcode encodeFrame}.
 *
 * @example The first fragment of a masked text message
 * ```ts
 * import { encodeFrame, type EncodeFrameOptions } from "./encoder.ts";
 *
 * const options: EncodeFrameOptions = { fin: false, mask: true };
 * console.log(encodeFrame(0x1, "Hel", options)[0]); // 1 (FIN clear, opcode text)
 * ```
 */
export interface EncodeFrameOptions {
  /** Set the FIN bit (last fragment of a message). Defaults to `true`. */
  fin?: boolean;
  /** Mask the payload with a fresh random key, as a client must. Defaults to `false`. */
  mask?: boolean;
  /**
   * Set RSV1: the payload is compressed (permessage-deflate, RFC 7692 §6; only on a data
   * message's first frame). Defaults to `false`.
   */
  rsv1?: boolean;
}

/**
 * Options of {@linkcode encodeMessage}.
 *
 * @example Send text bytes as a binary message in 1 KiB frames
 * ```ts
 * import { encodeMessage, type EncodeMessageOptions } from "./encoder.ts";
 *
 * const options: EncodeMessageOptions = { binary: true, fragmentSize: 1024 };
 * console.log(encodeMessage("x".repeat(3000), options).length); // 3 headers + 3000 bytes
 * ```
 */
export interface EncodeMessageOptions {
  /**
   * Send as a binary message. Defaults to `true` for a `Uint8Array` and `false` for a string;
   * `false` with a `Uint8Array` sends its bytes as text (the caller vouches they are UTF-8).
   */
  binary?: boolean;
  /** Mask every frame with its own fresh random key, as a client must. Defaults to `false`. */
  mask?: boolean;
  /** Split into frames carrying at most this many payload bytes. Defaults to one frame. */
  fragmentSize?: number;
}

const MAX_CONTROL_PAYLOAD = 125;
const EMPTY = new Uint8Array(0);
const textEncoder = new TextEncoder();

// One getRandomValues call per frame would cost more than encoding a small frame, so keys
// come from a pool of CSPRNG output; every key is used once, so they stay unpredictable.
const MASK_POOL_BYTES = 1024;
const maskPool = new Uint8Array(MASK_POOL_BYTES);
let maskPoolPos = MASK_POOL_BYTES;

function nextMaskKey(): number {
  if (maskPoolPos === MASK_POOL_BYTES) {
    crypto.getRandomValues(maskPool);
    maskPoolPos = 0;
  }
  const p = maskPoolPos;
  maskPoolPos = p + 4;
  return (maskPool[p] | (maskPool[p + 1] << 8) | (maskPool[p + 2] << 16) |
    (maskPool[p + 3] << 24)) >>> 0;
}

/**
 * The size of a frame header: 2 bytes, plus 2 or 8 for a 16- or 64-bit extended length, plus
 * 4 for a masking key.
 *
 * @param payloadLength Payload size in bytes.
 * @param masked Whether the frame carries a masking key.
 * @returns Header length in bytes (2 to 14).
 *
 * @example
 * ```ts
 * import { frameHeaderLength } from "./encoder.ts";
 *
 * console.log(frameHeaderLength(125, false)); // 2
 * console.log(frameHeaderLength(126, true)); // 8
 * console.log(frameHeaderLength(65536, false)); // 10
 * ```
 */
export function frameHeaderLength(payloadLength: number, masked: boolean): number {
  return (payloadLength < 126 ? 2 : payloadLength < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

// Unchecked header writer for the encoders below, which have validated their inputs.
function putHeader(
  target: Uint8Array,
  offset: number,
  firstByte: number,
  payloadLength: number,
  masked: boolean,
  key: number,
): number {
  let p = offset;
  const maskBit = masked ? 0x80 : 0;
  target[p++] = firstByte;
  if (payloadLength < 126) {
    target[p++] = maskBit | payloadLength;
  } else if (payloadLength < 65536) {
    target[p++] = maskBit | 126;
    target[p++] = payloadLength >>> 8;
    target[p++] = payloadLength;
  } else {
    target[p++] = maskBit | 127;
    const high = Math.floor(payloadLength / 0x100000000);
    target[p++] = high >>> 24;
    target[p++] = high >>> 16;
    target[p++] = high >>> 8;
    target[p++] = high;
    target[p++] = payloadLength >>> 24;
    target[p++] = payloadLength >>> 16;
    target[p++] = payloadLength >>> 8;
    target[p++] = payloadLength;
  }
  if (masked) {
    target[p++] = key;
    target[p++] = key >>> 8;
    target[p++] = key >>> 16;
    target[p++] = key >>> 24;
  }
  return p - offset;
}

/**
 * Writes a frame header at `target[offset..]`, using the shortest length encoding. RSV bits are
 * always 0 (no extensions). The payload itself is not written or masked: mask it with
 * {@linkcode applyMask} and {@linkcode packMaskKey}.
 *
 * Any 4-bit opcode is accepted so that tests can produce reserved opcodes deliberately.
 *
 * @param target Destination buffer.
 * @param offset Where the header starts.
 * @param opcode 4-bit opcode.
 * @param fin FIN bit.
 * @param payloadLength Payload size in bytes (a non-negative safe integer).
 * @param maskKey 4-byte masking key; sets the MASK bit. Omit or `null` for an unmasked frame.
 * @param rsv1 Set RSV1 (a compressed message's first frame, RFC 7692). Default false.
 * @returns The header length.
 * @throws {FrameEncodeError} `INVALID_OPCODE`, `INVALID_LENGTH`, `INVALID_MASK_KEY` or
 * `BUFFER_TOO_SMALL`.
 *
 * @example Header of a 5-byte final text frame
 * ```ts
 * import { writeFrameHeader } from "./encoder.ts";
 *
 * const out = new Uint8Array(2 + 5);
 * const n = writeFrameHeader(out, 0, 0x1, true, 5);
 * out.set(new TextEncoder().encode("Hello"), n);
 * console.log(out[0].toString(16), out[1]); // "81" 5
 * ```
 */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  opcode: number,
  fin: boolean,
  payloadLength: number,
  maskKey?: Uint8Array | null,
  rsv1 = false,
): number {
  if (!Number.isInteger(opcode) || opcode < 0 || opcode > 0xf) {
    throw new FrameEncodeError("INVALID_OPCODE", `opcode ${opcode} is not a 4-bit value`);
  }
  if (!Number.isSafeInteger(payloadLength) || payloadLength < 0) {
    throw new FrameEncodeError("INVALID_LENGTH", `invalid payload length ${payloadLength}`);
  }
  const masked = maskKey !== undefined && maskKey !== null;
  const key = masked ? packMaskKey(maskKey) : 0;
  if (!Number.isInteger(offset) || offset < 0) {
    throw new FrameEncodeError("BUFFER_TOO_SMALL", `invalid header offset ${offset}`);
  }
  if (target.length - offset < frameHeaderLength(payloadLength, masked)) {
    throw new FrameEncodeError("BUFFER_TOO_SMALL", "the target cannot hold the frame header");
  }
  const first = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  return putHeader(target, offset, first, payloadLength, masked, key);
}

// Builds a frame from payload[start..end) in a buffer of its own.
function buildFrame(
  firstByte: number,
  payload: Uint8Array,
  start: number,
  end: number,
  mask: boolean,
): Uint8Array {
  const length = end - start;
  const key = mask ? nextMaskKey() : 0;
  const headerLength = frameHeaderLength(length, mask);
  const frame = new Uint8Array(headerLength + length);
  putHeader(frame, 0, firstByte, length, mask, key);
  if (length !== 0) {
    frame.set(
      start === 0 && end === payload.length ? payload : payload.subarray(start, end),
      headerLength,
    );
    if (mask) applyMask(frame, headerLength, headerLength + length, key);
  }
  return frame;
}

// Strings whose worst-case UTF-8 size fits are encoded here and copied into an exact-size
// frame: the frame size is unknown until encoding, and one memcpy is far cheaper than
// counting UTF-8 bytes in JS or allocating a second typed array (~0.4 µs each in Deno).
const SCRATCH_BYTES = 64 * 1024;
let scratch: Uint8Array | null = null;

function buildTextFrame(
  firstByte: number,
  text: string,
  mask: boolean,
  control: boolean,
): Uint8Array {
  const units = text.length;
  if (units === 0) return buildFrame(firstByte, EMPTY, 0, 0, mask);
  if (units * 3 <= SCRATCH_BYTES) {
    scratch ??= new Uint8Array(SCRATCH_BYTES);
    const length = textEncoder.encodeInto(text, scratch).written;
    if (control && length > MAX_CONTROL_PAYLOAD) throw controlTooLarge(length);
    return buildFrame(firstByte, scratch, 0, length, mask);
  }
  // Each UTF-16 unit is at least one UTF-8 byte; this string cannot fit a control frame.
  if (control) throw controlTooLarge(units);
  // Large payloads are mostly ASCII (JSON), which encodes straight into an ASCII-sized
  // frame; anything else gets encoded a second time into a buffer of the right size.
  const key = mask ? nextMaskKey() : 0;
  const headerLength = frameHeaderLength(units, mask);
  const frame = new Uint8Array(headerLength + units);
  if (textEncoder.encodeInto(text, frame.subarray(headerLength)).read !== units) {
    const bytes = textEncoder.encode(text);
    return buildFrame(firstByte, bytes, 0, bytes.length, mask);
  }
  putHeader(frame, 0, firstByte, units, mask, key);
  if (mask) applyMask(frame, headerLength, headerLength + units, key);
  return frame;
}

function controlTooLarge(length: number): FrameEncodeError {
  return new FrameEncodeError(
    "CONTROL_PAYLOAD_TOO_LARGE",
    `control frame payload of ${length} bytes exceeds ${MAX_CONTROL_PAYLOAD}`,
  );
}

/**
 * Encodes one complete frame into a buffer of its own. A string payload is UTF-8 encoded
 * (lone surrogates become U+FFFD). With `mask: true` the payload is masked with a fresh key
 * from `crypto.getRandomValues`.
 *
 * @param opcode One of the RFC 6455 opcodes (`0x0`, `0x1`, `0x2`, `0x8`, `0x9`, `0xA`).
 * @param payload Bytes or text.
 * @param options FIN (default `true`) and masking (default `false`).
 * @returns The frame.
 * @throws {FrameEncodeError} `INVALID_OPCODE`, `FRAGMENTED_CONTROL_FRAME` or
 * `CONTROL_PAYLOAD_TOO_LARGE`.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./encoder.ts";
 *
 * const frame = encodeFrame(0x1, "Hello");
 * console.log(Array.from(frame.subarray(0, 2), (b) => b.toString(16))); // ["81", "5"]
 * const masked = encodeFrame(0x2, new Uint8Array([1, 2, 3]), { mask: true });
 * console.log(masked.length); // 2 + 4 + 3
 * ```
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array | string,
  options?: EncodeFrameOptions,
): Uint8Array {
  const fin = options?.fin ?? true;
  const mask = options?.mask ?? false;
  if (!isKnownOpcode(opcode)) {
    throw new FrameEncodeError("INVALID_OPCODE", `opcode ${opcode} is reserved or invalid`);
  }
  const control = opcode >= 0x8;
  if (control && !fin) {
    throw new FrameEncodeError("FRAGMENTED_CONTROL_FRAME", "control frames cannot be fragmented");
  }
  if (options?.rsv1 === true && (control || opcode === 0)) {
    throw new FrameEncodeError(
      "INVALID_OPCODE",
      "RSV1 is only set on a data message's first frame",
    );
  }
  const firstByte = (fin ? 0x80 : 0) | (options?.rsv1 === true ? 0x40 : 0) | opcode;
  if (typeof payload === "string") return buildTextFrame(firstByte, payload, mask, control);
  if (control && payload.length > MAX_CONTROL_PAYLOAD) throw controlTooLarge(payload.length);
  return buildFrame(firstByte, payload, 0, payload.length, mask);
}

/**
 * Encodes a whole message. Without `fragmentSize` it is one frame; with it, the payload is
 * split into frames of at most `fragmentSize` bytes (a text message may be split inside a
 * UTF-8 sequence, which RFC 6455 allows), all concatenated in one buffer.
 *
 * @param data Text or bytes.
 * @param options `binary`, `mask` and `fragmentSize` (see {@linkcode EncodeMessageOptions}).
 * @returns The frame(s) in one buffer.
 * @throws {FrameEncodeError} `INVALID_FRAGMENT_SIZE`.
 *
 * @example A text message in 2-byte fragments
 * ```ts
 * import { encodeMessage } from "./encoder.ts";
 *
 * const frames = encodeMessage("abc", { fragmentSize: 2 });
 * console.log(Array.from(frames, (b) => b.toString(16)).join(" ")); // "1 2 61 62 80 1 63"
 * ```
 */
export function encodeMessage(
  data: string | Uint8Array,
  options?: EncodeMessageOptions,
): Uint8Array {
  const opcode = (options?.binary ?? typeof data !== "string") ? OPCODE_BINARY : OPCODE_TEXT;
  const mask = options?.mask ?? false;
  const fragmentSize = options?.fragmentSize;
  if (fragmentSize === undefined) return encodeFrame(opcode, data, { mask });
  if (!Number.isSafeInteger(fragmentSize) || fragmentSize < 1) {
    throw new FrameEncodeError(
      "INVALID_FRAGMENT_SIZE",
      `fragment size must be a positive integer, got ${fragmentSize}`,
    );
  }
  const bytes = typeof data === "string" ? textEncoder.encode(data) : data;
  const length = bytes.length;
  if (length <= fragmentSize) return buildFrame(0x80 | opcode, bytes, 0, length, mask);
  const fullFrames = Math.floor(length / fragmentSize);
  const rest = length - fullFrames * fragmentSize;
  const count = fullFrames + (rest > 0 ? 1 : 0);
  const total = length + fullFrames * frameHeaderLength(fragmentSize, mask) +
    (rest > 0 ? frameHeaderLength(rest, mask) : 0);
  const out = new Uint8Array(total);
  let o = 0;
  let src = 0;
  for (let i = 0; i < count; i++) {
    const n = Math.min(fragmentSize, length - src);
    const key = mask ? nextMaskKey() : 0;
    const firstByte = (i === count - 1 ? 0x80 : 0) | (i === 0 ? opcode : 0);
    o += putHeader(out, o, firstByte, n, mask, key);
    out.set(bytes.subarray(src, src + n), o);
    if (mask) applyMask(out, o, o + n, key);
    o += n;
    src += n;
  }
  return out;
}

/**
 * Encodes a close frame. Without a code the payload is empty (the peer will report 1005);
 * otherwise it is the 2-byte code followed by the UTF-8 reason.
 *
 * @param code A sendable close code (see `assertSendableCloseCode`).
 * @param reason At most 123 UTF-8 bytes; only allowed with a code. Defaults to `""`.
 * @param mask Mask the frame (clients must). Defaults to `false`.
 * @returns The frame.
 * @throws {CloseCodeError} `INVALID_CLOSE_CODE` or `CLOSE_REASON_TOO_LONG`.
 *
 * @example
 * ```ts
 * import { encodeCloseFrame } from "./encoder.ts";
 *
 * console.log(Array.from(encodeCloseFrame())); // [136, 0]
 * console.log(Array.from(encodeCloseFrame(1000, "ok"))); // [136, 4, 3, 232, 111, 107]
 * ```
 */
export function encodeCloseFrame(code?: number, reason = "", mask = false): Uint8Array {
  if (code === undefined) {
    if (reason !== "") {
      throw new CloseCodeError("INVALID_CLOSE_CODE", "a close reason requires a close code");
    }
    return buildFrame(0x80 | OPCODE_CLOSE, EMPTY, 0, 0, mask);
  }
  assertSendableCloseCode(code);
  // A UTF-16 unit never encodes to fewer than one byte, so this rejects huge reasons
  // before encoding them.
  const reasonBytes = reason === ""
    ? EMPTY
    : reason.length > MAX_CLOSE_REASON_BYTES
    ? null
    : textEncoder.encode(reason);
  if (reasonBytes === null || reasonBytes.length > MAX_CLOSE_REASON_BYTES) {
    throw new CloseCodeError(
      "CLOSE_REASON_TOO_LONG",
      `close reason exceeds ${MAX_CLOSE_REASON_BYTES} UTF-8 bytes`,
    );
  }
  const length = 2 + reasonBytes.length;
  const key = mask ? nextMaskKey() : 0;
  const headerLength = frameHeaderLength(length, mask);
  const frame = new Uint8Array(headerLength + length);
  putHeader(frame, 0, 0x80 | OPCODE_CLOSE, length, mask, key);
  frame[headerLength] = code >>> 8;
  frame[headerLength + 1] = code;
  frame.set(reasonBytes, headerLength + 2);
  if (mask) applyMask(frame, headerLength, headerLength + length, key);
  return frame;
}

/**
 * Encodes a ping (`0x9`) or pong (`0xA`) frame.
 *
 * @param opcode `0x9` or `0xA`.
 * @param payload At most 125 bytes (after UTF-8 encoding). Defaults to empty.
 * @param mask Mask the frame (clients must). Defaults to `false`.
 * @returns The frame.
 * @throws {FrameEncodeError} `INVALID_OPCODE` or `CONTROL_PAYLOAD_TOO_LARGE`.
 *
 * @example Answer a ping with a pong carrying the same payload
 * ```ts
 * import { encodeControlFrame } from "./encoder.ts";
 *
 * const pong = encodeControlFrame(0xa, new Uint8Array([1, 2]));
 * console.log(Array.from(pong)); // [138, 2, 1, 2]
 * ```
 */
export function encodeControlFrame(
  opcode: 0x9 | 0xa,
  payload: Uint8Array | string = EMPTY,
  mask = false,
): Uint8Array {
  if (opcode !== 0x9 && opcode !== 0xa) {
    throw new FrameEncodeError("INVALID_OPCODE", `opcode ${opcode} is not ping or pong`);
  }
  return encodeFrame(opcode, payload, { mask });
}

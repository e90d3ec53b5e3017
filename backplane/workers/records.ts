/**
 * The records workers hand each other: one per published message, written once by the
 * publisher and read in place by every other worker. Native-endian 32-bit words (both
 * ends are threads of one process), 8-byte aligned:
 *
 * | word | field                                                         |
 * | ---- | ------------------------------------------------------------- |
 * | 0    | record size in bytes, header and padding included             |
 * | 1    | payload length                                                |
 * | 2    | kind (bits 0-7), binary (bit 8), topic length (bits 16-31)    |
 * | 3    | publisher's epoch                                             |
 * | 4, 5 | sequence number per (publisher, topic): low, high 32 bits     |
 * | 6, 7 | publisher's node id (48 bits): low 32, high 16 bits           |
 *
 * Then the topic as UTF-8, then the payload. The topic travels with every record (no
 * table of topic ids to keep in step): a worker that starts, or skips ahead after falling
 * behind, can read the next record without any history.
 *
 * @module
 */

/** Bytes of a record header. */
export const RECORD_HEADER = 32;
/** A published message. */
export const KIND_MESSAGE = 1;
/** Filler up to the end of a ring (the next record starts at its beginning). */
export const KIND_PAD = 2;
/** Longest topic (UTF-8 bytes). */
export const MAX_TOPIC_BYTES = 65_535;
const BINARY = 0x100;
const TWO_32 = 2 ** 32;

/**
 * Bytes of the record of a message.
 *
 * @example
 * ```ts
 * import { recordSize } from "./records.ts";
 * console.log(recordSize(4, 64)); // 104 (32 + 4 + 64, rounded up to 8)
 * ```
 */
export function recordSize(topicLength: number, payloadLength: number): number {
  return (RECORD_HEADER + topicLength + payloadLength + 7) & ~7;
}

/**
 * Writes the record of a message at byte `at` (a multiple of 8) of a buffer seen as bytes
 * (`u8`) and words (`i32`). Returns the record's size.
 *
 * @example
 * ```ts
 * import { readNode, readSeq, recordSize, writeRecord } from "./records.ts";
 * const buf = new ArrayBuffer(256);
 * const u8 = new Uint8Array(buf);
 * const i32 = new Int32Array(buf);
 * const size = writeRecord(u8, i32, 0, 0xa1b2c3d4e5f6, 7, 2 ** 40 + 1, true, new Uint8Array([114]), new Uint8Array(3));
 * console.log(size === recordSize(1, 3), readNode(i32, 0) === 0xa1b2c3d4e5f6, readSeq(i32, 0) === 2 ** 40 + 1); // true true true
 * ```
 */
export function writeRecord(
  u8: Uint8Array,
  i32: Int32Array,
  at: number,
  node: number,
  epoch: number,
  seq: number,
  binary: boolean,
  topic: Uint8Array,
  payload: Uint8Array,
): number {
  const topicLength = topic.length;
  const size = recordSize(topicLength, payload.length);
  const w = at >> 2;
  i32[w] = size;
  i32[w + 1] = payload.length;
  i32[w + 2] = KIND_MESSAGE | (binary ? BINARY : 0) | (topicLength << 16);
  i32[w + 3] = epoch;
  i32[w + 4] = seq >>> 0;
  i32[w + 5] = Math.floor(seq / TWO_32);
  i32[w + 6] = node >>> 0;
  i32[w + 7] = Math.floor(node / TWO_32);
  const start = at + RECORD_HEADER;
  u8.set(topic, start);
  u8.set(payload, start + topicLength);
  return size;
}

/** Writes a filler record of `size` bytes at `at` (size >= 8). */
export function writePad(i32: Int32Array, at: number, size: number): void {
  const w = at >> 2;
  i32[w] = size;
  i32[w + 1] = 0;
  if (size >= 12) i32[w + 2] = KIND_PAD;
}

/** Size of the record at byte `at`. */
export function readSize(i32: Int32Array, at: number): number {
  return i32[at >> 2];
}

/** Kind of the record at byte `at` ({@link KIND_MESSAGE}, {@link KIND_PAD}). */
export function readKind(i32: Int32Array, at: number): number {
  return i32[(at >> 2) + 2] & 0xff;
}

/** Payload length of the record at byte `at`. */
export function readPayloadLength(i32: Int32Array, at: number): number {
  return i32[(at >> 2) + 1];
}

/** Topic length (bytes) of the record at byte `at`. */
export function readTopicLength(i32: Int32Array, at: number): number {
  return i32[(at >> 2) + 2] >>> 16;
}

/** True when the message of the record at byte `at` is binary. */
export function readBinary(i32: Int32Array, at: number): boolean {
  return (i32[(at >> 2) + 2] & BINARY) !== 0;
}

/** Publisher's epoch of the record at byte `at`. */
export function readEpoch(i32: Int32Array, at: number): number {
  return i32[(at >> 2) + 3] >>> 0;
}

/** Sequence number of the record at byte `at`. */
export function readSeq(i32: Int32Array, at: number): number {
  const w = at >> 2;
  return (i32[w + 5] >>> 0) * TWO_32 + (i32[w + 4] >>> 0);
}

/** Publisher's node id of the record at byte `at`. */
export function readNode(i32: Int32Array, at: number): number {
  const w = at >> 2;
  return (i32[w + 7] >>> 0) * TWO_32 + (i32[w + 6] >>> 0);
}

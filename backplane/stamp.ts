/**
 * The stamp every backplane message carries in front of its payload, in 20 bytes
 * (big-endian), so that a receiver can tell who published it, in which run, and in what
 * order, without JSON or base64:
 *
 * | offset | size | field                                                       |
 * | ------ | ---- | ----------------------------------------------------------- |
 * | 0      | 1    | magic `0xFD`                                                |
 * | 1      | 1    | version (high nibble, 1) and flags (bit 0: binary message)  |
 * | 2      | 6    | node id (48 bits, random per process unless given)          |
 * | 8      | 4    | epoch (32 bits, new whenever the node restarts its numbering) |
 * | 12     | 8    | sequence number, per (node, topic), from 1 (up to 2^53)     |
 *
 * The payload follows, as the publisher gave it.
 *
 * @module
 */

/** Bytes of a stamp. */
export const STAMP_SIZE = 20;
/** First byte of every stamp. */
export const STAMP_MAGIC = 0xfd;
/** Version written in the high nibble of the second byte. */
export const STAMP_VERSION = 1;
const FLAG_BINARY = 1;
const TWO_32 = 2 ** 32;
/** Largest node id (48 bits). */
export const MAX_NODE_ID: number = 2 ** 48 - 1;

/**
 * A random node id: 48 bits, never 0. Two nodes of a deployment pick the same one with a
 * probability of about n²/2^49 (one in a billion for 750 nodes).
 *
 * @example
 * ```ts
 * import { MAX_NODE_ID, newNodeId } from "./stamp.ts";
 * const id = newNodeId();
 * console.log(id > 0 && id <= MAX_NODE_ID); // true
 * ```
 */
export function newNodeId(): number {
  const r = crypto.getRandomValues(new Uint32Array(2));
  return ((r[0] & 0xffff) * TWO_32 + r[1]) || 1;
}

/**
 * A random epoch: 32 bits, never 0.
 *
 * @example
 * ```ts
 * import { newEpoch } from "./stamp.ts";
 * console.log(newEpoch() > 0); // true
 * ```
 */
export function newEpoch(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0] || 1;
}

/**
 * A node id as the 12 hex digits applications see.
 *
 * @example
 * ```ts
 * import { formatNodeId } from "./stamp.ts";
 * console.log(formatNodeId(0xa1b2c3d4e5f6)); // "a1b2c3d4e5f6"
 * ```
 */
export function formatNodeId(id: number): string {
  return id.toString(16).padStart(12, "0");
}

/**
 * Writes a stamp at `at`; returns the offset after it.
 *
 * @example
 * ```ts
 * import { readStamp, Stamp, STAMP_SIZE, writeStamp } from "./stamp.ts";
 * const buf = new Uint8Array(STAMP_SIZE);
 * writeStamp(buf, 0, 0xa1b2c3d4e5f6, 7, 42, true);
 * const s = new Stamp();
 * console.log(readStamp(s, buf, 0, buf.length), s.node === 0xa1b2c3d4e5f6, s.seq, s.binary); // true true 42 true
 * ```
 */
export function writeStamp(
  buf: Uint8Array,
  at: number,
  node: number,
  epoch: number,
  seq: number,
  binary: boolean,
): number {
  buf[at] = STAMP_MAGIC;
  buf[at + 1] = (STAMP_VERSION << 4) | (binary ? FLAG_BINARY : 0);
  const nodeHi = Math.floor(node / TWO_32);
  const nodeLo = node >>> 0;
  buf[at + 2] = nodeHi >>> 8;
  buf[at + 3] = nodeHi;
  writeU32(buf, at + 4, nodeLo);
  writeU32(buf, at + 8, epoch);
  writeU32(buf, at + 12, Math.floor(seq / TWO_32));
  writeU32(buf, at + 16, seq >>> 0);
  return at + STAMP_SIZE;
}

function writeU32(buf: Uint8Array, at: number, v: number): void {
  buf[at] = v >>> 24;
  buf[at + 1] = v >>> 16;
  buf[at + 2] = v >>> 8;
  buf[at + 3] = v;
}

function readU32(buf: Uint8Array, at: number): number {
  return ((buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]) >>> 0;
}

/**
 * The fields of a stamp, as {@link readStamp} leaves them (one reused object per reader:
 * nothing is allocated per message).
 *
 * @example
 * ```ts
 * import { Stamp } from "./stamp.ts";
 * const s = new Stamp();
 * console.log(s.node, s.epoch, s.seq, s.binary); // 0 0 0 false
 * ```
 */
export class Stamp {
  /** Publisher's node id. */
  node = 0;
  /** Publisher's epoch. */
  epoch = 0;
  /** Sequence number. */
  seq = 0;
  /** The publisher sent a binary message. */
  binary = false;
}

/**
 * Reads the stamp at the start of `buf[at, at + length)` into `out`; false when those
 * bytes do not start with a stamp of this version (a foreign message).
 *
 * @example A foreign message
 * ```ts
 * import { readStamp, Stamp } from "./stamp.ts";
 * const text = new TextEncoder().encode("hello from redis-cli, long enough");
 * console.log(readStamp(new Stamp(), text, 0, text.length)); // false
 * ```
 */
export function readStamp(out: Stamp, buf: Uint8Array, at: number, length: number): boolean {
  if (length < STAMP_SIZE || buf[at] !== STAMP_MAGIC || buf[at + 1] >>> 4 !== STAMP_VERSION) {
    return false;
  }
  out.binary = (buf[at + 1] & FLAG_BINARY) !== 0;
  out.node = ((buf[at + 2] << 8) | buf[at + 3]) * TWO_32 + readU32(buf, at + 4);
  out.epoch = readU32(buf, at + 8);
  out.seq = readU32(buf, at + 12) * TWO_32 + readU32(buf, at + 16);
  return true;
}

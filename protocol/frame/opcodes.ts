/**
 * WebSocket frame opcodes (RFC 6455 §5.2) and small predicates over them.
 *
 * The individual `OPCODE_*` constants exist so that hot paths compare against plain module
 * constants; {@linkcode Opcode} groups the same values for readable call sites.
 *
 * @module
 */

/**
 * Continuation frame: carries the next fragment of a fragmented message.
 *
 * @example
 * ```ts
 * import { OPCODE_CONTINUATION } from "./opcodes.ts";
 *
 * console.log(OPCODE_CONTINUATION === 0x0); // true
 * ```
 */
export const OPCODE_CONTINUATION = 0x0;

/**
 * Text frame: the first (or only) frame of a UTF-8 text message.
 *
 * @example
 * ```ts
 * import { OPCODE_TEXT } from "./opcodes.ts";
 *
 * console.log(OPCODE_TEXT === 0x1); // true
 * ```
 */
export const OPCODE_TEXT = 0x1;

/**
 * Binary frame: the first (or only) frame of a binary message.
 *
 * @example
 * ```ts
 * import { OPCODE_BINARY } from "./opcodes.ts";
 *
 * console.log(OPCODE_BINARY === 0x2); // true
 * ```
 */
export const OPCODE_BINARY = 0x2;

/**
 * Close control frame.
 *
 * @example
 * ```ts
 * import { OPCODE_CLOSE } from "./opcodes.ts";
 *
 * console.log(OPCODE_CLOSE === 0x8); // true
 * ```
 */
export const OPCODE_CLOSE = 0x8;

/**
 * Ping control frame.
 *
 * @example
 * ```ts
 * import { OPCODE_PING } from "./opcodes.ts";
 *
 * console.log(OPCODE_PING === 0x9); // true
 * ```
 */
export const OPCODE_PING = 0x9;

/**
 * Pong control frame.
 *
 * @example
 * ```ts
 * import { OPCODE_PONG } from "./opcodes.ts";
 *
 * console.log(OPCODE_PONG === 0xa); // true
 * ```
 */
export const OPCODE_PONG = 0xa;

/**
 * All opcodes defined by RFC 6455, by name.
 *
 * @example Build the first header byte of a final text frame
 * ```ts
 * import { Opcode } from "./opcodes.ts";
 *
 * const firstByte = 0x80 | Opcode.TEXT;
 * console.log(firstByte.toString(16)); // "81"
 * ```
 */
export const Opcode = {
  /** Next fragment of a fragmented message (`0x0`). */
  CONTINUATION: OPCODE_CONTINUATION,
  /** Text message (`0x1`). */
  TEXT: OPCODE_TEXT,
  /** Binary message (`0x2`). */
  BINARY: OPCODE_BINARY,
  /** Close (`0x8`). */
  CLOSE: OPCODE_CLOSE,
  /** Ping (`0x9`). */
  PING: OPCODE_PING,
  /** Pong (`0xA`). */
  PONG: OPCODE_PONG,
} as const;

/**
 * One of the opcodes defined by RFC 6455.
 *
 * @example
 * ```ts
 * import { Opcode } from "./opcodes.ts";
 *
 * const op: Opcode = Opcode.PING;
 * console.log(op); // 9
 * ```
 */
export type Opcode = typeof Opcode[keyof typeof Opcode];

/**
 * Whether `opcode` is one RFC 6455 defines (not one of the reserved `0x3`–`0x7`, `0xB`–`0xF`).
 *
 * @param opcode Any number.
 * @returns `true` for `0x0`, `0x1`, `0x2`, `0x8`, `0x9` and `0xA`.
 *
 * @example
 * ```ts
 * import { isKnownOpcode } from "./opcodes.ts";
 *
 * console.log(isKnownOpcode(0xa)); // true
 * console.log(isKnownOpcode(0x3)); // false
 * ```
 */
export function isKnownOpcode(opcode: number): boolean {
  return opcode === 0x0 || opcode === 0x1 || opcode === 0x2 || opcode === 0x8 ||
    opcode === 0x9 || opcode === 0xa;
}

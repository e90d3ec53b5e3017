/**
 * Oracles of the frame-parser fuzz properties, written from RFC 6455 §5 independently of
 * protocol/frame/: a frame encoder that can also produce wrong frames (any header field,
 * non-minimal or false lengths), a non-incremental reference parser that reads a whole byte
 * stream with the same limits, and the event recorder and comparison the properties share.
 *
 * The reference parser reports what the incremental parser must report for the same bytes,
 * whatever the chunking: the events in order, then at most one close or failure. Where two
 * violations are found at the same byte, it applies the parser's documented order: RSV bits,
 * opcode and fragmentation rules (a continuation past `maxFragments` is 1009), mask bit,
 * length encoding (1002), control length (1002), message size (1009). A text message fails
 * with 1007 at the first byte that cannot continue valid UTF-8 (fail fast), even inside a
 * frame whose tail has not arrived.
 *
 * @module
 */

import type { FrameHandler, FrameParserOptions } from "../../protocol/frame/parser.ts";

/** What a handler saw; anything after a close or failure is recorded as "late". */
export type FrameEvent =
  | readonly ["message", string | Uint8Array]
  | readonly ["ping", Uint8Array]
  | readonly ["pong", Uint8Array]
  | readonly ["close", number, string]
  | readonly ["fail", number]
  | readonly ["late", string];

/** Records handler calls in order; anything after onClose/onFail becomes "late". */
export class Recorder implements FrameHandler {
  /** The calls so far. */
  readonly events: FrameEvent[] = [];
  #done = false;
  #record(event: FrameEvent): void {
    this.events.push(this.#done ? ["late", event[0]] : event);
  }
  /** Records a message. */
  onMessage(data: string | Uint8Array): void {
    this.#record(["message", data]);
  }
  /** Records a ping. */
  onPing(payload: Uint8Array): void {
    this.#record(["ping", payload]);
  }
  /** Records a pong. */
  onPong(payload: Uint8Array): void {
    this.#record(["pong", payload]);
  }
  /** Records a close; later calls are late. */
  onClose(code: number, reason: string): void {
    this.#record(["close", code, reason]);
    this.#done = true;
  }
  /** Records a failure; later calls are late. */
  onFail(code: number, _reason: string): void {
    this.#record(["fail", code]);
    this.#done = true;
  }
}

/** Whether two event lists are equal, payloads compared byte by byte. */
export function sameEvents(a: readonly FrameEvent[], b: readonly FrameEvent[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x.length !== y.length) return false;
    for (let j = 0; j < x.length; j++) {
      const p = x[j];
      const q = y[j];
      if (p instanceof Uint8Array && q instanceof Uint8Array) {
        if (p.length !== q.length) return false;
        for (let k = 0; k < p.length; k++) if (p[k] !== q[k]) return false;
      } else if (p !== q) {
        return false;
      }
    }
  }
  return true;
}

/** Events as short printable values (long payloads as length and head) for failure reports. */
export function describeEvents(events: readonly FrameEvent[]): string {
  return JSON.stringify(events.map((event) =>
    event.map((part) => {
      if (part instanceof Uint8Array) {
        const head = Array.from(part.subarray(0, 16), (b) => b.toString(16).padStart(2, "0"));
        return `bytes(${part.length})[${head.join(" ")}${part.length > 16 ? " ..." : ""}]`;
      }
      if (typeof part === "string" && part.length > 40) {
        return `text(${part.length}) ${JSON.stringify(part.slice(0, 20))}...`;
      }
      return part;
    })
  ));
}

/** Every field of a frame header, including the ones a valid peer never sends. */
export interface RawFrame {
  readonly fin: boolean;
  /** RSV1-3 as a 3-bit number. */
  readonly rsv: number;
  readonly opcode: number;
  /** Masking key, or null for an unmasked frame. */
  readonly key: Uint8Array | null;
  /** The unmasked payload. */
  readonly payload: Uint8Array;
  /** Length field size: 0 (7-bit), 2 (16-bit) or 8 (64-bit); default the minimal one. */
  readonly lengthBytes?: 0 | 2 | 8;
  /** Length to announce instead of the payload's (a lie that desynchronizes the stream). */
  readonly declared?: number;
}

/** The bytes of `frame`, masked with its key. */
export function encodeRawFrame(frame: RawFrame): Uint8Array {
  const length = frame.declared ?? frame.payload.length;
  const lengthBytes = frame.lengthBytes ?? (length < 126 ? 0 : length < 65536 ? 2 : 8);
  const key = frame.key;
  const headerLength = 2 + lengthBytes + (key === null ? 0 : 4);
  const out = new Uint8Array(headerLength + frame.payload.length);
  out[0] = (frame.fin ? 0x80 : 0) | ((frame.rsv & 7) << 4) | (frame.opcode & 0x0f);
  const maskBit = key === null ? 0 : 0x80;
  if (lengthBytes === 0) {
    out[1] = maskBit | (length & 0x7f);
  } else if (lengthBytes === 2) {
    out[1] = maskBit | 126;
    out[2] = (length >>> 8) & 0xff;
    out[3] = length & 0xff;
  } else {
    out[1] = maskBit | 127;
    let v = length;
    for (let i = 9; i >= 2; i--) {
      out[i] = v % 256;
      v = Math.floor(v / 256);
    }
  }
  if (key !== null) out.set(key, 2 + lengthBytes);
  for (let i = 0; i < frame.payload.length; i++) {
    out[headerLength + i] = key === null ? frame.payload[i] : frame.payload[i] ^ key[i & 3];
  }
  return out;
}

/** The defaults of protocol/frame/parser.ts, restated so the oracle does not import them. */
export const DEFAULT_LIMITS = { maxMessageSize: 64 * 1024 * 1024, maxFragments: 1 << 20 };

/** Whether a received close frame may carry `code` (RFC 6455 §7.4 and the IANA registry). */
export function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/**
 * What the incremental parser must report for `bytes`, fed in any chunking, under `options`.
 * A stream that ends inside a frame reports what the received part already decides.
 */
export function referenceEvents(bytes: Uint8Array, options: FrameParserOptions): FrameEvent[] {
  const server = options.role === "server";
  const maxMessage = options.maxMessageSize ?? DEFAULT_LIMITS.maxMessageSize;
  const maxFragments = options.maxFragments ?? DEFAULT_LIMITS.maxFragments;
  const events: FrameEvent[] = [];
  const fail = (code: number): FrameEvent[] => {
    events.push(["fail", code]);
    return events;
  };
  const n = bytes.length;
  let p = 0;
  let messageOpcode = 0;
  let messageLength = 0;
  let messageFrames = 0;
  let text = "";
  let decoder: TextDecoder | null = null;
  let binary: Uint8Array[] = [];
  for (;;) {
    if (n - p < 2) return events;
    const b0 = bytes[p];
    const b1 = bytes[p + 1];
    if ((b0 & 0x70) !== 0) return fail(1002);
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const control = opcode >= 8;
    if (control) {
      if (opcode > 10 || !fin) return fail(1002);
    } else if (opcode === 0) {
      if (messageOpcode === 0) return fail(1002);
      if (messageFrames >= maxFragments) return fail(1009);
    } else if (opcode > 2 || messageOpcode !== 0) {
      return fail(1002);
    }
    const masked = (b1 & 0x80) !== 0;
    if (masked !== server) return fail(1002);
    let length = b1 & 0x7f;
    let h = p + 2;
    if (length === 126) {
      if (n - h < 2) return events;
      length = bytes[h] * 256 + bytes[h + 1];
      if (length < 126) return fail(1002);
      h += 2;
    } else if (length === 127) {
      // The most significant bit is refused as soon as its byte arrives.
      if (n - h >= 1 && bytes[h] >= 0x80) return fail(1002);
      if (n - h < 8) return events;
      length = 0;
      for (let i = 0; i < 8; i++) length = length * 256 + bytes[h + i];
      if (length < 65536) return fail(1002);
      h += 8;
    }
    if (control) {
      if (length > 125) return fail(1002);
    } else {
      const total = (opcode === 0 ? messageLength : 0) + length;
      if (total > maxMessage) return fail(1009);
    }
    const key = masked ? bytes.subarray(h, h + 4) : null;
    if (masked) {
      if (n - h < 4) return events;
      h += 4;
    }
    // The header is complete: a continuation frame now counts as a fragment.
    const available = Math.min(length, n - h);
    const payload = new Uint8Array(available);
    for (let i = 0; i < available; i++) {
      payload[i] = key === null ? bytes[h + i] : bytes[h + i] ^ key[i & 3];
    }
    if (control) {
      if (available < length) return events;
      if (opcode === 9) events.push(["ping", payload]);
      else if (opcode === 10) events.push(["pong", payload]);
      else {
        if (length === 0) {
          events.push(["close", 1005, ""]);
          return events;
        }
        if (length === 1) return fail(1002);
        const code = payload[0] * 256 + payload[1];
        if (!validCloseCode(code)) return fail(1002);
        let reason: string;
        try {
          reason = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
            payload.subarray(2),
          );
        } catch {
          return fail(1007);
        }
        events.push(["close", code, reason]);
        return events;
      }
    } else {
      if (opcode !== 0) {
        messageOpcode = opcode;
        messageLength = 0;
        messageFrames = 1;
        text = "";
        binary = [];
        decoder = opcode === 1 ? new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }) : null;
      } else {
        messageFrames++;
      }
      messageLength += available;
      if (decoder !== null) {
        try {
          text += decoder.decode(payload, { stream: true });
        } catch {
          return fail(1007);
        }
      } else {
        binary.push(payload);
      }
      if (available < length) return events;
      if (fin) {
        if (decoder !== null) {
          try {
            text += decoder.decode();
          } catch {
            return fail(1007);
          }
          events.push(["message", text]);
        } else {
          const data = new Uint8Array(messageLength);
          let o = 0;
          for (const part of binary) {
            data.set(part, o);
            o += part.length;
          }
          events.push(["message", data]);
        }
        messageOpcode = 0;
        messageLength = 0;
        messageFrames = 0;
        decoder = null;
        binary = [];
        text = "";
      }
    }
    p = h + length;
  }
}

/**
 * Fuzz properties of the RFC 6455 frame parser (protocol/frame/parser.ts `FrameParser`):
 *
 * - valid streams (text with any Unicode, code points split across fragments and reads,
 *   binary, fragmented messages with interleaved pings and pongs, a close with a valid code;
 *   masked to a server, unmasked to a client) deliver exactly the generated messages, whole,
 *   byte by byte and in generated chunkings;
 * - with small `maxMessageSize` and `maxFragments` the same streams fail with 1009 at the
 *   first frame that breaks a limit, having delivered everything before it;
 * - mutated valid streams, streams of frames with arbitrary header fields and random bytes
 *   never throw, give the same events in every chunking, agree with the reference parser of
 *   tests/fuzz/frame_model.ts, and end in at most one close or failure (1002, 1007 or 1009),
 *   after which nothing is dispatched.
 *
 * @module
 */

import { FrameParser, type FrameParserOptions } from "../../protocol/frame/parser.ts";
import { type Arbitrary, fc } from "./fast_check.ts";
import {
  DEFAULT_LIMITS,
  describeEvents,
  encodeRawFrame,
  type FrameEvent,
  type RawFrame,
  Recorder,
  referenceEvents,
  sameEvents,
} from "./frame_model.ts";
import { applyMutations, type ChunkPlan, chunkPlan, mutation, planSizes } from "./mutate.ts";
import { defineProperty, expect, type FuzzProperty } from "./property.ts";

type Role = "server" | "client";

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Payloads

/** Characters at the UTF-8 length boundaries, BOM, replacement character, NUL. */
const SPECIAL_CHARS = [
  "\u0000",
  "\u007f",
  "\u0080",
  "é",
  "\u07ff",
  "\u0800",
  "€",
  "\ufeff",
  "\ufffd",
  "\uffff",
  "\u{10000}",
  "😀",
  "\u{10ffff}",
];

const charArb: Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(...SPECIAL_CHARS) },
  { weight: 3, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  { weight: 3, arbitrary: fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 1 }) },
);

/** Well-formed text (a lone surrogate would not survive UTF-8, so it becomes U+FFFD). */
const smallText: Arbitrary<string> = fc.array(charArb, { maxLength: 24 }).map((chars) =>
  chars.join("").toWellFormed()
);

/** `seed` repeated until its UTF-8 form has at least `min` bytes. */
function grow(seed: string, min: number): string {
  const unit = seed === "" ? "x" : seed;
  const bytes = encoder.encode(unit).length;
  return unit.repeat(Math.ceil(min / bytes));
}

/** `length` pseudo-random bytes from `seed` (xorshift32). */
function filler(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x;
  }
  return out;
}

interface DataPayload {
  readonly opcode: 1 | 2;
  /** The text of a text message. */
  readonly text?: string;
  readonly bytes: Uint8Array;
}

// Mostly small; sometimes a 16-bit length; rarely a 64-bit one (at least 65536 bytes).
const textPayload: Arbitrary<DataPayload> = fc.oneof(
  { weight: 40, arbitrary: smallText },
  {
    weight: 4,
    arbitrary: fc.tuple(smallText, fc.integer({ min: 126, max: 1500 })).map(([s, n]) => grow(s, n)),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(smallText, fc.integer({ min: 65536, max: 66000 })).map(([s, n]) =>
      grow(s, n)
    ),
  },
).map((text) => ({ opcode: 1 as const, text, bytes: encoder.encode(text) }));

const binaryPayload: Arbitrary<DataPayload> = fc.oneof(
  { weight: 40, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  {
    weight: 4,
    arbitrary: fc.tuple(fc.integer({ min: 126, max: 1500 }), fc.nat()).map(([n, s]) =>
      filler(n, s)
    ),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 65536, max: 66000 }), fc.nat()).map(([n, s]) =>
      filler(n, s)
    ),
  },
).map((bytes) => ({ opcode: 2 as const, bytes }));

interface ControlSpec {
  readonly opcode: 9 | 10;
  readonly payload: Uint8Array;
}

const controlArb: Arbitrary<ControlSpec> = fc.record({
  opcode: fc.constantFrom(9 as const, 10 as const),
  payload: fc.oneof(
    { weight: 4, arbitrary: fc.uint8Array({ maxLength: 8 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 125 }) },
  ),
});

/** A close code a peer may send, and a reason that fits with it in 125 bytes. */
interface CloseSpec {
  /** null: an empty close payload (reported as 1005). */
  readonly code: number | null;
  readonly reason: string;
}

const closeArb: Arbitrary<CloseSpec> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ code: null, reason: "" }) },
  {
    weight: 4,
    arbitrary: fc.record({
      code: fc.oneof(
        fc.integer({ min: 1000, max: 1003 }),
        fc.integer({ min: 1007, max: 1014 }),
        fc.integer({ min: 3000, max: 4999 }),
      ),
      reason: smallText.map((text) => {
        let reason = text;
        while (encoder.encode(reason).length > 123) reason = Array.from(reason).slice(1).join("");
        return reason;
      }),
    }),
  },
);

// ---------------------------------------------------------------------------------------------
// Valid streams

type Item =
  | {
    readonly kind: "message";
    readonly payload: DataPayload;
    readonly cuts: number[];
    readonly controls: ControlSpec[][];
  }
  | { readonly kind: "control"; readonly control: ControlSpec };

const itemArb: Arbitrary<Item> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("message" as const),
      payload: fc.oneof(textPayload, binaryPayload),
      cuts: fc.array(fc.nat(), { maxLength: 4 }),
      controls: fc.array(fc.array(controlArb, { maxLength: 2 }), { maxLength: 4 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("control" as const), control: controlArb }),
  },
);

/** A valid stream as generated, before encoding. */
export interface StreamSpec {
  readonly role: Role;
  readonly items: Item[];
  readonly close: CloseSpec | null;
  /** Bytes after the close frame, which the parser must ignore. */
  readonly trailing: Uint8Array;
  /** Masking keys, used in turn (zero keys included). */
  readonly keys: Uint8Array[];
}

const streamSpecArb: Arbitrary<StreamSpec> = fc.record({
  role: fc.constantFrom<Role>("server", "client"),
  items: fc.array(itemArb, { maxLength: 6 }),
  close: fc.option(closeArb, { freq: 3 }),
  trailing: fc.uint8Array({ maxLength: 12 }),
  keys: fc.array(fc.uint8Array({ minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 4 }),
});

/** One frame of an encoded valid stream, with what it must make the parser report. */
interface Step {
  readonly bytes: Uint8Array;
  /** The event the frame completes, if any. */
  readonly event: FrameEvent | null;
  /** For a data frame: its message's frames and bytes so far, this frame included. */
  readonly data: { readonly frames: number; readonly total: number } | null;
  readonly close: boolean;
}

/** The stream's frames in order; the trailing bytes (after a close) are a last step. */
function buildSteps(spec: StreamSpec): Step[] {
  const steps: Step[] = [];
  let k = 0;
  const key = (): Uint8Array | null =>
    spec.role === "server" ? spec.keys[k++ % spec.keys.length] : null;
  const control = (c: ControlSpec): Step => ({
    bytes: encodeRawFrame({ fin: true, rsv: 0, opcode: c.opcode, key: key(), payload: c.payload }),
    event: [c.opcode === 9 ? "ping" : "pong", c.payload],
    data: null,
    close: false,
  });
  for (const item of spec.items) {
    if (item.kind === "control") {
      steps.push(control(item.control));
      continue;
    }
    const { payload } = item;
    const length = payload.bytes.length;
    const cuts = item.cuts.map((c) => c % (length + 1)).sort((a, b) => a - b);
    const bounds = [0, ...cuts, length];
    const fragments = bounds.length - 1;
    for (let f = 0; f < fragments; f++) {
      const last = f === fragments - 1;
      const part = payload.bytes.subarray(bounds[f], bounds[f + 1]);
      steps.push({
        bytes: encodeRawFrame({
          fin: last,
          rsv: 0,
          opcode: f === 0 ? payload.opcode : 0,
          key: key(),
          payload: part,
        }),
        event: last ? ["message", payload.text ?? payload.bytes] : null,
        data: { frames: f + 1, total: bounds[f + 1] },
        close: false,
      });
      if (!last) { for (const c of item.controls[f] ?? []) steps.push(control(c)); }
    }
  }
  if (spec.close !== null) {
    const { code, reason } = spec.close;
    const reasonBytes = encoder.encode(reason);
    const payload = code === null ? new Uint8Array(0) : new Uint8Array(2 + reasonBytes.length);
    if (code !== null) {
      payload[0] = code >> 8;
      payload[1] = code & 0xff;
      payload.set(reasonBytes, 2);
    }
    steps.push({
      bytes: encodeRawFrame({ fin: true, rsv: 0, opcode: 8, key: key(), payload }),
      event: ["close", code ?? 1005, reason],
      data: null,
      close: true,
    });
    steps.push({ bytes: spec.trailing, event: null, data: null, close: false });
  }
  return steps;
}

function concatSteps(steps: readonly Step[]): Uint8Array {
  let total = 0;
  for (const s of steps) total += s.bytes.length;
  const out = new Uint8Array(total);
  let o = 0;
  for (const s of steps) {
    out.set(s.bytes, o);
    o += s.bytes.length;
  }
  return out;
}

/**
 * What the parser must report for a valid stream under limits: every event up to the first
 * data frame whose header breaks a limit, then 1009; nothing after a close.
 */
function expectedEvents(
  steps: readonly Step[],
  maxMessageSize: number,
  maxFragments: number,
): FrameEvent[] {
  const events: FrameEvent[] = [];
  for (const step of steps) {
    if (step.data !== null) {
      if (step.data.frames > maxFragments || step.data.total > maxMessageSize) {
        events.push(["fail", 1009]);
        return events;
      }
    }
    if (step.event !== null) events.push(step.event);
    if (step.close) return events;
  }
  return events;
}

// ---------------------------------------------------------------------------------------------
// Feeding

/** How one feed of a stream ended. */
interface Fed {
  readonly events: FrameEvent[];
  readonly finished: boolean;
  /** `parser.idle` after the last byte. */
  readonly idle: boolean;
}

/**
 * Feeds a copy of `bytes` (masked payloads are unmasked in place) to a new parser in chunks of
 * `sizes`; `offsets[i % n]` >= 0 copies chunk i to that offset of a fresh buffer with a spare
 * byte after it. Checks the push() contract on the way: it returns !finished, and a finished
 * parser takes nothing more. Then every buffer pushed is overwritten: delivered payloads are
 * standalone copies (offset 0, their own ArrayBuffer), so no event may change.
 */
function feed(
  bytes: Uint8Array,
  options: FrameParserOptions,
  sizes: readonly number[],
  offsets: readonly number[],
  how: string,
): Fed {
  const parser = new FrameParser(options);
  const recorder = new Recorder();
  const input = bytes.slice();
  const pushed: Uint8Array[] = [input];
  let pos = 0;
  let ended = false;
  for (let i = 0; i < sizes.length; i++) {
    const size = sizes[i];
    const offset = offsets.length === 0 ? -1 : offsets[i % offsets.length];
    const before = recorder.events.length;
    let more: boolean;
    if (offset >= 0) {
      const fresh = new Uint8Array(offset + size + 1).fill(0xa5);
      fresh.set(input.subarray(pos, pos + size), offset);
      pushed.push(fresh);
      more = parser.push(fresh, offset, offset + size, recorder);
    } else {
      more = parser.push(input, pos, pos + size, recorder);
    }
    pos += size;
    expect(
      more === !parser.finished,
      () => `${how}: push() returned ${more}, finished is ${parser.finished}`,
    );
    if (ended) {
      expect(!more && recorder.events.length === before, () => `${how}: a finished parser went on`);
    }
    if (!more) ended = true;
  }
  const snapshot = recorder.events.map((e) =>
    e.map((part) => part instanceof Uint8Array ? part.slice() : part)
  );
  for (const e of recorder.events) {
    for (const part of e) {
      if (!(part instanceof Uint8Array)) continue;
      expect(
        part.byteOffset === 0 && part.buffer.byteLength === part.length,
        () => `${how}: a delivered ${e[0]} payload is not a standalone copy`,
      );
    }
  }
  for (const b of pushed) b.fill(0xee);
  expect(
    sameEvents(recorder.events, snapshot as unknown as FrameEvent[]),
    () => `${how}: a delivered payload aliases the pushed bytes`,
  );
  return { events: recorder.events, finished: parser.finished, idle: parser.idle };
}

/** Whole, byte by byte (short streams) and in the generated chunking. */
function feeds(
  bytes: Uint8Array,
  options: FrameParserOptions,
  plan: ChunkPlan,
): Array<[string, Fed]> {
  const out: Array<[string, Fed]> = [];
  out.push(["whole", feed(bytes, options, bytes.length === 0 ? [] : [bytes.length], [], "whole")]);
  if (bytes.length <= 4096) {
    out.push(["bytewise", feed(bytes, options, new Array(bytes.length).fill(1), [], "bytewise")]);
  }
  const large = bytes.length > 4096;
  // A long stream in chunks of at most 4 bytes is slow for nothing: scale the plan up.
  const sizes = planSizes(
    large ? { sizes: plan.sizes.map((s) => s * 64), offsets: plan.offsets } : plan,
    bytes.length,
  );
  out.push(["planned", feed(bytes, options, sizes, plan.offsets, "planned")]);
  return out;
}

function hexPrefix(bytes: Uint8Array, max = 48): string {
  const head = Array.from(bytes.subarray(0, max), (b) => b.toString(16).padStart(2, "0"));
  return `${bytes.length} bytes: ${head.join(" ")}${bytes.length > max ? " ..." : ""}`;
}

function checkEvents(
  fed: Fed,
  expected: readonly FrameEvent[],
  how: string,
  bytes: Uint8Array,
  options: FrameParserOptions,
): void {
  expect(
    sameEvents(fed.events, expected),
    () =>
      `events fed ${how} (role ${options.role}, maxMessageSize ${options.maxMessageSize}, ` +
      `maxFragments ${options.maxFragments})\n  got      ${describeEvents(fed.events)}\n` +
      `  expected ${describeEvents(expected)}\n  input    ${hexPrefix(bytes)}`,
  );
  const terminal = expected.length > 0 &&
    (expected[expected.length - 1][0] === "close" || expected[expected.length - 1][0] === "fail");
  expect(fed.finished === terminal, () => `fed ${how}: finished is ${fed.finished}`);
}

/** At most one close or failure, last, with an allowed code; no late calls. */
function checkShape(events: readonly FrameEvent[]): void {
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    expect(e[0] !== "late", () => `a call after the end: ${describeEvents(events)}`);
    if (e[0] === "close" || e[0] === "fail") {
      expect(i === events.length - 1, () => `events after the end: ${describeEvents(events)}`);
    }
    if (e[0] === "fail") {
      expect([1002, 1007, 1009].includes(e[1]), () => `fail code ${e[1]}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary frames and byte streams

/** Byte sequences that are not UTF-8 (overlong, surrogate, > U+10FFFF, stray, truncated). */
const INVALID_UTF8 = [
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0x80],
  [0xed, 0xa0, 0x80],
  [0xf0, 0x80, 0x80, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf5, 0x80, 0x80, 0x80],
  [0xff],
  [0x80],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
];

const invalidTextBytes: Arbitrary<Uint8Array> = fc.tuple(
  smallText,
  fc.constantFrom(...INVALID_UTF8),
  smallText,
).map(([a, bad, b]) => {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const out = new Uint8Array(x.length + bad.length + y.length);
  out.set(x);
  out.set(bad, x.length);
  out.set(y, x.length + bad.length);
  return out;
});

const closePayloadBytes: Arbitrary<Uint8Array> = fc.tuple(
  fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 999, max: 1016 })),
  fc.oneof(smallText.map((t) => encoder.encode(t)), invalidTextBytes),
).map(([code, reason]) => {
  const out = new Uint8Array(2 + reason.length);
  out[0] = code >> 8;
  out[1] = code & 0xff;
  out.set(reason, 2);
  return out;
});

/**
 * A frame with any header field, mostly plausible ones. An opcode of -1 is resolved by
 * {@link resolveFrames} to one that fits where the frame lands, so streams get past their
 * first frame and reach fragmented and interleaved states.
 */
const rawFrameArb = (role: Role): Arbitrary<RawFrame> =>
  fc.record({
    fin: fc.oneof(
      { weight: 3, arbitrary: fc.constant(true) },
      { weight: 1, arbitrary: fc.constant(false) },
    ),
    rsv: fc.oneof(
      { weight: 30, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 7 }) },
    ),
    opcode: fc.oneof(
      { weight: 12, arbitrary: fc.constant(-1) },
      { weight: 2, arbitrary: fc.constantFrom(0, 1, 2, 8, 9, 10) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }) },
    ),
    masked: fc.oneof(
      { weight: 30, arbitrary: fc.constant(role === "server") },
      { weight: 1, arbitrary: fc.boolean() },
    ),
    key: fc.uint8Array({ minLength: 4, maxLength: 4 }),
    payload: fc.oneof(
      { weight: 4, arbitrary: smallText.map((t) => encoder.encode(t)) },
      { weight: 2, arbitrary: fc.uint8Array({ maxLength: 40 }) },
      { weight: 2, arbitrary: invalidTextBytes },
      { weight: 2, arbitrary: closePayloadBytes },
      { weight: 1, arbitrary: fc.integer({ min: 120, max: 300 }).map((n) => filler(n, n)) },
    ),
    lengthBytes: fc.oneof(
      { weight: 20, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constantFrom<0 | 2 | 8>(0, 2, 8) },
    ),
    declared: fc.oneof(
      { weight: 30, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 300 }) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(125, 126, 127, 65535, 65536, 2 ** 20, 2 ** 32, 2 ** 53 - 1),
      },
    ),
  }).map(({ masked, key, ...rest }) => ({ ...rest, key: masked ? key : null }));

/**
 * Replaces opcode -1 by one that fits the frame's place: a continuation or a ping/pong inside
 * a message, a text, binary, ping or pong outside one (chosen by the payload's first byte).
 * Control frames so chosen get FIN, as a valid peer sends them.
 */
function resolveFrames(frames: readonly RawFrame[]): RawFrame[] {
  let inMessage = false;
  return frames.map((frame) => {
    let { opcode, fin } = frame;
    if (opcode === -1) {
      const pick = frame.payload.length === 0 ? 0 : frame.payload[0] % 4;
      opcode = inMessage ? [0, 0, 9, 10][pick] : [1, 2, 9, 10][pick];
      if (opcode >= 8) fin = true;
    }
    if (opcode === 1 || opcode === 2) inMessage = !fin;
    else if (opcode === 0 && fin) inMessage = false;
    return { ...frame, opcode, fin };
  });
}

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Byte values worth writing into a frame stream: header bytes, length codes, UTF-8 leads. */
const FRAME_SPECIAL = [
  0x00,
  0x01,
  0x02,
  0x08,
  0x09,
  0x0a,
  0x80,
  0x81,
  0x82,
  0x88,
  0x89,
  0x8a,
  0x7d,
  0x7e,
  0x7f,
  0xfe,
  0xff,
  0xc0,
  0xed,
  0xf4,
  0xf5,
];

interface BrokenStream {
  readonly role: Role;
  readonly source: string;
  readonly bytes: Uint8Array;
}

const brokenStreamArb: Arbitrary<BrokenStream> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.tuple(
      streamSpecArb,
      fc.array(mutation(FRAME_SPECIAL), { minLength: 1, maxLength: 4 }),
    )
      .map(([spec, edits]) => ({
        role: spec.role,
        source: "mutated valid stream",
        bytes: applyMutations(concatSteps(buildSteps(spec)), edits),
      })),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom<Role>("server", "client").chain((role) =>
      fc.tuple(
        fc.array(rawFrameArb(role), { minLength: 1, maxLength: 8 }),
        fc.array(mutation(FRAME_SPECIAL), { maxLength: 2 }),
      ).map(([frames, edits]) => ({
        role,
        source: "arbitrary frames",
        bytes: applyMutations(concatBytes(resolveFrames(frames).map(encodeRawFrame)), edits),
      }))
    ),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(
      fc.constantFrom<Role>("server", "client"),
      fc.uint8Array({ maxLength: 200 }),
    )
      .map(([role, bytes]) => ({ role, source: "random bytes", bytes })),
  },
);

// ---------------------------------------------------------------------------------------------
// Properties

const validStream = defineProperty({
  name: "frame-valid-stream",
  description:
    "valid streams deliver the generated messages, pings, pongs and close in any chunking",
  arbitrary: fc.tuple(streamSpecArb, chunkPlan()),
  check: ([spec, plan]) => {
    const steps = buildSteps(spec);
    const bytes = concatSteps(steps);
    const options: FrameParserOptions = { role: spec.role };
    const expected = expectedEvents(steps, Infinity, Infinity);
    const reference = referenceEvents(bytes, options);
    expect(
      sameEvents(reference, expected),
      () =>
        `oracles disagree\n  reference ${describeEvents(reference)}\n  generated ${
          describeEvents(expected)
        }`,
    );
    for (const [how, fed] of feeds(bytes, options, plan)) {
      checkEvents(fed, expected, how, bytes, options);
      // Every message of a valid stream is complete: the parser holds nothing at its end.
      expect(fed.idle === !fed.finished, () => `fed ${how}: idle is ${fed.idle}`);
    }
  },
});

const limits = defineProperty({
  name: "frame-limits",
  description: "maxMessageSize and maxFragments fail with 1009 at the first frame that breaks them",
  arbitrary: fc.tuple(
    streamSpecArb,
    fc.oneof(
      fc.integer({ min: 0, max: 64 }),
      fc.integer({ min: 0, max: 2000 }),
      fc.integer({ min: 60000, max: 70000 }),
    ),
    fc.integer({ min: 1, max: 6 }),
    chunkPlan(),
  ),
  check: ([spec, maxMessageSize, maxFragments, plan]) => {
    const steps = buildSteps(spec);
    const bytes = concatSteps(steps);
    const options: FrameParserOptions = { role: spec.role, maxMessageSize, maxFragments };
    const expected = expectedEvents(steps, maxMessageSize, maxFragments);
    const reference = referenceEvents(bytes, options);
    expect(
      sameEvents(reference, expected),
      () =>
        `oracles disagree\n  reference ${describeEvents(reference)}\n  generated ${
          describeEvents(expected)
        }`,
    );
    for (const [how, fed] of feeds(bytes, options, plan)) {
      checkEvents(fed, expected, how, bytes, options);
      for (const e of fed.events) {
        if (e[0] !== "message") continue;
        const size = typeof e[1] === "string" ? encoder.encode(e[1]).length : e[1].length;
        expect(size <= maxMessageSize, () => `delivered ${size} bytes over ${maxMessageSize}`);
      }
    }
  },
});

const brokenStreams = defineProperty({
  name: "frame-broken-stream",
  description:
    "mutated, arbitrary-header and random streams never throw, match the reference parser in " +
    "every chunking and end in at most one close or 1002/1007/1009 failure",
  arbitrary: fc.tuple(
    brokenStreamArb,
    fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constant(1 << 20)),
    fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constant(DEFAULT_LIMITS.maxFragments)),
    chunkPlan(),
  ),
  check: ([stream, maxMessageSize, maxFragments, plan]) => {
    const options: FrameParserOptions = { role: stream.role, maxMessageSize, maxFragments };
    const expected = referenceEvents(stream.bytes, options);
    checkShape(expected);
    for (const [how, fed] of feeds(stream.bytes, options, plan)) {
      checkShape(fed.events);
      checkEvents(fed, expected, `${how} (${stream.source})`, stream.bytes, options);
    }
  },
});

/** The frame-parser properties, in the order they run. */
export const FRAME_PROPERTIES: readonly FuzzProperty[] = [validStream, limits, brokenStreams];

// Byte-level tests of the RFC 6455 frame parser. Every case is fed whole, one byte at a time
// and in seeded random chunkings (half of the chunks copied into fresh buffers at random
// offsets, so unmasking runs at every alignment); all feeds must produce identical events.
import assert from "node:assert/strict";
import {
  DEFAULT_MAX_FRAGMENTS,
  DEFAULT_MAX_MESSAGE_SIZE,
  type FrameHandler,
  FrameParser,
  type FrameParserOptions,
  FrameParserOptionsError,
  type MessageBufferPool,
} from "../../../protocol/frame/parser.ts";
import { encodeCloseFrame, encodeFrame, encodeMessage } from "../../../protocol/frame/encoder.ts";
import { FdwsError } from "../../../errors.ts";
import { concat, filled, hex, utf8 } from "../../fixtures/bytes.ts";
import { mulberry32 } from "../../fixtures/chunking.ts";
import { onWire } from "../../fixtures/close_codes.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

type Event =
  | readonly ["message", string | Uint8Array]
  | readonly ["ping", Uint8Array]
  | readonly ["pong", Uint8Array]
  | readonly ["close", number, string]
  | readonly ["fail", number]
  | readonly ["late", string];

const msg = (data: string | Uint8Array | number[]): Event => [
  "message",
  Array.isArray(data) ? new Uint8Array(data) : data,
];
const ping = (data: number[] | Uint8Array = []): Event => ["ping", Uint8Array.from(data)];
const pong = (data: number[] | Uint8Array = []): Event => ["pong", Uint8Array.from(data)];
const close = (code: number, reason = ""): Event => ["close", code, reason];
const fail = (code: number): Event => ["fail", code];

/** Records handler calls; anything after onClose/onFail is recorded as "late". */
class Recorder implements FrameHandler {
  events: Event[] = [];
  #done = false;
  #record(event: Event): void {
    this.events.push(this.#done ? ["late", event[0]] : event);
  }
  onMessage(data: string | Uint8Array, lent?: boolean): void {
    // A lent view is valid only during this call.
    this.#record(["message", lent === true && typeof data !== "string" ? data.slice() : data]);
  }
  onPing(payload: Uint8Array): void {
    this.#record(["ping", payload]);
  }
  onPong(payload: Uint8Array): void {
    this.#record(["pong", payload]);
  }
  onClose(code: number, reason: string): void {
    this.#record(["close", code, reason]);
    this.#done = true;
  }
  onFail(code: number, _reason: string): void {
    this.#record(["fail", code]);
    this.#done = true;
  }
}

/** FNV-1a over bytes or UTF-16 units: a cheap fingerprint for large payloads. */
function fingerprint(value: Uint8Array | string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) {
    h = Math.imul(h ^ (typeof value === "string" ? value.charCodeAt(i) : value[i]), 0x01000193);
  }
  return (h >>> 0).toString(16);
}

/** Small payloads verbatim, large ones as length + fingerprint. */
function summarize(events: readonly Event[]): unknown[] {
  return events.map((event) =>
    event.map((part) => {
      if (part instanceof Uint8Array) {
        return part.length <= 64 ? `bytes[${part}]` : `bytes(${part.length}) #${fingerprint(part)}`;
      }
      if (typeof part === "string" && part.length > 64) {
        return `text(${part.length}) ${JSON.stringify(part.slice(0, 20))}... #${fingerprint(part)}`;
      }
      return part;
    })
  );
}

/**
 * deepStrictEqual on summaries, so that a mismatch in a multi-megabyte payload fails at once
 * with a readable diff instead of node:assert diffing millions of elements.
 */
function assertEvents(actual: readonly Event[], expected: readonly Event[], message?: string) {
  if (sameEvents(actual, expected)) return;
  assert.deepStrictEqual(summarize(actual), summarize(expected), message ?? "parser events differ");
  assert.fail(`${message ?? "events differ"} (same fingerprints)`);
}

function sameEvents(a: readonly Event[], b: readonly Event[]): boolean {
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

/** Random chunk sizes summing to `total`: mostly tiny, sometimes up to `largest`. */
function randomSizes(total: number, rnd: () => number, largest = Math.max(1, total >> 1)) {
  const sizes: number[] = [];
  let left = total;
  while (left > 0) {
    const r = rnd();
    let n = r < 0.35
      ? 1 + Math.floor(rnd() * 3)
      : r < 0.7
      ? 1 + Math.floor(rnd() * 24)
      : 1 + Math.floor(rnd() * largest);
    if (n > left) n = left;
    sizes.push(n);
    left -= n;
  }
  return sizes;
}

/**
 * A pool that checks the lending contract: each buffer is given back once, and what comes
 * back is poisoned, so a parser that reused a buffer it had released would deliver garbage.
 */
class CheckingPool implements MessageBufferPool {
  readonly out = new Set<Uint8Array>();
  acquired = 0;
  acquire(length: number): Uint8Array {
    const buffer = new Uint8Array(length);
    this.out.add(buffer);
    this.acquired++;
    return buffer;
  }
  release(buffer: Uint8Array): void {
    assert.ok(this.out.delete(buffer), "a buffer given back twice or never lent");
    buffer.fill(0xee);
  }
}

const SERVER: FrameParserOptions = { role: "server" };
const CLIENT: FrameParserOptions = { role: "client" };

interface Outcome {
  events: Event[];
  finished: boolean;
}

/**
 * Runs `bytes` through a new parser in chunks of `sizes`. With `rnd`, about half of the chunks
 * are copied into a fresh buffer at a random offset first. Checks the push() contract on the way.
 */
function run(
  bytes: Uint8Array,
  sizes: readonly number[],
  options: FrameParserOptions,
  rnd?: () => number,
): Outcome {
  const pool = options.lend === undefined ? null : new CheckingPool();
  const parser = new FrameParser(pool === null ? options : { ...options, lend: pool });
  const recorder = new Recorder();
  const input = bytes.slice(); // push() may unmask in place
  let pos = 0;
  let ended = false;
  for (const size of sizes) {
    const before = recorder.events.length;
    let more: boolean;
    if (rnd !== undefined && rnd() < 0.5) {
      const offset = Math.floor(rnd() * 8);
      const fresh = new Uint8Array(offset + size + Math.floor(rnd() * 8));
      fresh.set(input.subarray(pos, pos + size), offset);
      more = parser.push(fresh, offset, offset + size, recorder);
    } else {
      more = parser.push(input, pos, pos + size, recorder);
    }
    pos += size;
    assert.equal(more, !parser.finished, "push() returns !finished");
    if (ended) {
      assert.equal(more, false, "a finished parser stays finished");
      assert.equal(recorder.events.length, before, "a finished parser dispatches nothing");
    }
    if (!more) ended = true;
  }
  assert.equal(pos, bytes.length);
  if (pool !== null) {
    assert.ok(pool.out.size <= (parser.idle || parser.finished ? 0 : 1), "lent buffers kept");
  }
  return { events: recorder.events, finished: parser.finished };
}

interface FeedConfig {
  /** Also feed one byte at a time (default true). */
  bytewise?: boolean;
  /** Number of random chunkings (default 4). */
  seeds?: number;
  /** Largest random chunk. */
  largest?: number;
  /** Extra fixed chunk sizes to try (e.g. 65536 to mimic socket reads). */
  reads?: number[];
}

/** Feeds `bytes` whole, byte-wise and in random chunkings; all must agree. Returns the events. */
function feed(bytes: Uint8Array, options: FrameParserOptions = SERVER, config: FeedConfig = {}) {
  const whole = run(bytes, bytes.length === 0 ? [] : [bytes.length], options);
  const check = (outcome: Outcome, how: string) => {
    assertEvents(outcome.events, whole.events, `events differ when fed ${how}`);
    assert.equal(outcome.finished, whole.finished, `finished differs when fed ${how}`);
  };
  if (config.bytewise ?? true) {
    check(run(bytes, new Array(bytes.length).fill(1), options), "bytewise");
  }
  for (const read of config.reads ?? []) {
    const sizes: number[] = [];
    for (let left = bytes.length; left > 0; left -= read) sizes.push(Math.min(read, left));
    check(run(bytes, sizes, options), `in ${read}-byte reads`);
  }
  const seeds = config.seeds ?? 4;
  for (let seed = 1; seed <= seeds; seed++) {
    const rnd = mulberry32(seed * 7919 + bytes.length);
    check(run(bytes, randomSizes(bytes.length, rnd, config.largest), options, rnd), `seed ${seed}`);
  }
  // A parser that lends its messages (each run gets a checking pool) sees the same events.
  const lending: FrameParserOptions = { ...options, lend: null };
  check(run(bytes, bytes.length === 0 ? [] : [bytes.length], lending), "whole, lending");
  for (let seed = 1; seed <= Math.min(seeds, 2); seed++) {
    const rnd = mulberry32(seed * 104729 + bytes.length);
    const sizes = randomSizes(bytes.length, rnd, config.largest);
    check(run(bytes, sizes, lending, rnd), `seed ${seed}, lending`);
  }
  return whole.events;
}

function expectEvents(
  bytes: Uint8Array,
  expected: Event[],
  options: FrameParserOptions = SERVER,
  config?: FeedConfig,
): void {
  assertEvents(feed(bytes, options, config), expected);
}

interface FrameSpec {
  fin?: boolean;
  /** RSV bits as a 3-bit number (RSV1 = 4). */
  rsv?: number;
  /** Default: masked (frames sent to a server). */
  mask?: boolean;
  key?: readonly number[];
  /** Force the length encoding: 0 = 7-bit, 2 = 16-bit, 8 = 64-bit. */
  lengthBytes?: 0 | 2 | 8;
  /** Length to announce instead of the payload's. */
  declared?: number;
}

/** Builds a frame by hand (independent of the encoder under test). */
function frame(
  opcode: number,
  payload: Uint8Array | string | readonly number[] = [],
  spec: FrameSpec = {},
): Uint8Array {
  const data = typeof payload === "string" ? utf8(payload) : Uint8Array.from(payload);
  const masked = spec.mask ?? true;
  const key = spec.key ?? [0x37, 0xfa, 0x21, 0x3d];
  const length = spec.declared ?? data.length;
  const lengthBytes = spec.lengthBytes ?? (length < 126 ? 0 : length < 65536 ? 2 : 8);
  const header: number[] = [((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | opcode];
  const maskBit = masked ? 0x80 : 0;
  if (lengthBytes === 0) header.push(maskBit | length);
  else if (lengthBytes === 2) header.push(maskBit | 126, length >>> 8, length & 0xff);
  else {
    const high = Math.floor(length / 2 ** 32);
    header.push(maskBit | 127, high >>> 24, (high >>> 16) & 0xff, (high >>> 8) & 0xff, high & 0xff);
    header.push(length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
  }
  if (masked) header.push(...key);
  const out = new Uint8Array(header.length + data.length);
  out.set(header);
  for (let i = 0; i < data.length; i++) {
    out[header.length + i] = masked ? data[i] ^ key[i & 3] : data[i];
  }
  return out;
}

/** A frame as the given role's peer must send it (masked to a server, unmasked to a client). */
function peerFrame(
  options: FrameParserOptions,
  opcode: number,
  payload: Uint8Array | string | readonly number[] = [],
  spec: FrameSpec = {},
): Uint8Array {
  return frame(opcode, payload, { mask: options.role === "server", ...spec });
}

/** {@link peerFrame} for one role. */
function peerFramer(
  options: FrameParserOptions,
): (
  opcode: number,
  payload?: Uint8Array | string | readonly number[],
  spec?: FrameSpec,
) => Uint8Array {
  return (opcode, payload = [], spec = {}) => peerFrame(options, opcode, payload, spec);
}

const ROLES = [SERVER, CLIENT] as const;
const roleName = (options: FrameParserOptions) => options.role;

function asciiText(length: number): string {
  let text = "";
  const alphabet = "The quick brown fox jumps over the lazy dog 0123456789. ";
  while (text.length < length) text += alphabet;
  return text.slice(0, length);
}

// ---------------------------------------------------------------------------------------------
// Frame layout

Deno.test("parser: RFC 6455 §5.7 example frames", async (t) => {
  await t.step("single-frame unmasked text (client)", () => {
    expectEvents(hex("81 05 48 65 6c 6c 6f"), [msg("Hello")], CLIENT);
  });
  await t.step("single-frame masked text (server)", () => {
    expectEvents(hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"), [msg("Hello")], SERVER);
  });
  await t.step("fragmented unmasked text (client)", () => {
    expectEvents(hex("01 03 48 65 6c 80 02 6c 6f"), [msg("Hello")], CLIENT);
  });
  await t.step("unmasked ping and masked pong", () => {
    expectEvents(hex("89 05 48 65 6c 6c 6f"), [ping(utf8("Hello"))], CLIENT);
    expectEvents(hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58"), [pong(utf8("Hello"))], SERVER);
  });
  await t.step("256 bytes binary with 16-bit length, 64 KiB with 64-bit length", () => {
    const small = filled(256);
    expectEvents(concat(hex("82 7e 01 00"), small), [msg(small)], CLIENT);
    const big = filled(65536);
    expectEvents(concat(hex("82 7f 00 00 00 00 00 01 00 00"), big), [msg(big)], CLIENT, {
      bytewise: false,
      reads: [1000, 65536],
    });
  });
});

Deno.test("parser: payload lengths in 7-, 16- and 64-bit encodings", async (t) => {
  const lengths = [0, 1, 2, 3, 4, 5, 31, 32, 33, 63, 64, 65, 124, 125, 126, 127, 128, 1023, 1024];
  lengths.push(1025, 4099, 65535, 65536, 65537, 100_003);
  for (const options of ROLES) {
    for (const length of lengths) {
      await t.step(`${roleName(options)}: ${length} bytes, binary and text`, () => {
        const big = length > 5000;
        const config: FeedConfig = { bytewise: !big, seeds: big ? 2 : 4, reads: [4096] };
        const data = filled(length);
        expectEvents(peerFrame(options, 0x2, data), [msg(data)], options, config);
        const text = asciiText(length);
        expectEvents(peerFrame(options, 0x1, text), [msg(text)], options, config);
      });
    }
  }
  await t.step("16-bit lengths of 126 and more and 64-bit lengths of 65536 and more", () => {
    // The smallest lengths each encoding may carry (RFC 6455 §5.2), so the boundaries of the
    // minimal-length check are accepted.
    for (const options of ROLES) {
      for (const [length, lengthBytes] of [[126, 2], [127, 2], [65535, 2], [65536, 8]] as const) {
        const data = filled(length);
        const config: FeedConfig = { bytewise: length < 2000, seeds: 2 };
        expectEvents(peerFrame(options, 0x2, data, { lengthBytes }), [msg(data)], options, config);
        const text = asciiText(length);
        expectEvents(peerFrame(options, 0x1, text, { lengthBytes }), [msg(text)], options, config);
      }
    }
  });
  await t.step("non-minimal 16-bit and 64-bit length encodings fail with 1002", () => {
    // RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length". A 126
    // code carrying less than 126, or a 127 code carrying less than 65536, is a protocol
    // error, for data and control frames alike, announced or followed by the payload.
    for (const options of ROLES) {
      const f = peerFramer(options);
      const cases: Array<[number, 2 | 8]> = [[0, 2], [1, 2], [5, 2], [125, 2]];
      for (const length of [0, 1, 125, 126, 1000, 65535]) cases.push([length, 8]);
      for (const [length, lengthBytes] of cases) {
        const config: FeedConfig = { bytewise: length < 2000, seeds: 4 };
        const what = `${roleName(options)}: ${length} in ${lengthBytes} bytes`;
        assertEvents(feed(f(0x2, filled(length), { lengthBytes }), options, config), [
          fail(1002),
        ], what);
        assertEvents(feed(f(0x1, asciiText(length), { lengthBytes }), options, config), [
          fail(1002),
        ], what);
        if (length <= 125) {
          assertEvents(feed(f(0x9, filled(length), { lengthBytes }), options), [fail(1002)], what);
        }
        // The header alone decides: nothing of the payload needs to arrive.
        const header = f(0x2, [], { lengthBytes, declared: length });
        assertEvents(feed(header, options), [fail(1002)], `${what}, header only`);
      }
    }
  });
  await t.step(
    "non-minimal lengths fail after earlier frames and inside a fragmented message",
    () => {
      for (const options of ROLES) {
        const f = peerFramer(options);
        expectEvents(
          concat(f(0x1, "ok"), f(0x9, "p"), f(0x2, [1, 2, 3], { lengthBytes: 2 }), f(0x1, "x")),
          [msg("ok"), ping(utf8("p")), fail(1002)],
          options,
        );
        expectEvents(
          concat(f(0x1, "frag", { fin: false }), f(0x0, "ment", { lengthBytes: 8 }), f(0x9)),
          [fail(1002)],
          options,
        );
      }
    },
  );
  await t.step("the exact bytes of a non-minimal header (client and server)", () => {
    // 16-bit code carrying 5, then 64-bit code carrying 0xffff: both one below the minimum.
    expectEvents(hex("82 7e 00 05 01 02 03 04 05"), [fail(1002)], CLIENT);
    expectEvents(hex("82 fe 00 05 00 00 00 00 01 02 03 04 05"), [fail(1002)], SERVER);
    expectEvents(hex("81 7f 00 00 00 00 00 00 ff ff"), [fail(1002)], CLIENT);
    expectEvents(hex("81 ff 00 00 00 00 00 00 ff ff 00 00 00 00"), [fail(1002)], SERVER);
    expectEvents(hex("89 7e 00 00"), [fail(1002)], CLIENT);
    expectEvents(hex("8a ff 00 00 00 00 00 00 00 00 00 00 00 00"), [fail(1002)], SERVER);
  });
  await t.step("a non-minimal length fails as soon as its last length byte arrives", () => {
    for (const options of ROLES) {
      const bytes = peerFrame(options, 0x2, [], { lengthBytes: 8, declared: 0xffff });
      const parser = new FrameParser(options);
      const recorder = new Recorder();
      for (let i = 0; i < 9; i++) assert.equal(parser.push(bytes, i, i + 1, recorder), true);
      assertEvents(recorder.events, []);
      assert.equal(parser.push(bytes, 9, 10, recorder), false);
      assertEvents(recorder.events, [fail(1002)]);
    }
  });
  await t.step("64-bit length with the most significant bit set fails with 1002", () => {
    for (const options of ROLES) {
      const bytes = concat(
        hex("82 7f 80 00 00 00 00 00 00 01"),
        options.role === "server" ? hex("01 02 03 04") : new Uint8Array(0),
        hex("aa"),
      );
      bytes[1] |= options.role === "server" ? 0x80 : 0;
      expectEvents(bytes, [fail(1002)], options);
      const huge = hex("82 ff ff ff ff ff ff ff ff ff 01 02 03 04");
      expectEvents(huge, [fail(1002)]);
    }
  });
  await t.step("the high-bit failure happens as soon as that length byte arrives", () => {
    const parser = new FrameParser(SERVER);
    const recorder = new Recorder();
    assert.equal(parser.push(hex("82 ff"), 0, 2, recorder), true);
    assertEvents(recorder.events, []);
    assert.equal(parser.push(hex("80"), 0, 1, recorder), false);
    assertEvents(recorder.events, [fail(1002)]);
  });
  await t.step("largest lengths with the high bit clear fail with 1009, not 1002", () => {
    expectEvents(hex("82 ff 7f ff ff ff ff ff ff ff 01 02 03 04"), [fail(1009)]);
    expectEvents(hex("82 ff 00 20 00 00 00 00 00 00 01 02 03 04"), [fail(1009)]);
  });
  await t.step("several frames in one buffer, then a partial one", () => {
    const bytes = concat(
      frame(0x1, "one"),
      frame(0x2, [1, 2]),
      frame(0x9, "p"),
      frame(0x1, "two"),
      frame(0x1, "three").subarray(0, 4),
    );
    expectEvents(bytes, [msg("one"), msg([1, 2]), ping(utf8("p")), msg("two")]);
  });
  await t.step("a header split at every byte position", () => {
    const whole = concat(frame(0x2, filled(300)), frame(0x1, "after"));
    for (let split = 1; split < whole.length; split++) {
      const outcome = run(whole, [split, whole.length - split], SERVER);
      assertEvents(outcome.events, [msg(filled(300)), msg("after")], `split ${split}`);
    }
  });
  await t.step("masking keys with every byte value and zero keys", () => {
    for (let k = 0; k < 256; k += 5) {
      const key = [k, 255 - k, (k * 7) & 0xff, (k * 13) & 0xff];
      const data = filled(70 + k);
      expectEvents(frame(0x2, data, { key }), [msg(data)], SERVER, { bytewise: false, seeds: 2 });
    }
    expectEvents(frame(0x1, "zero key", { key: [0, 0, 0, 0] }), [msg("zero key")]);
  });
  await t.step("unmasking at every buffer alignment and split", () => {
    for (const length of [1, 3, 4, 7, 31, 32, 33, 64, 1023, 1024, 1025, 1030, 5000]) {
      const data = filled(length, 99);
      const bytes = frame(0x2, data, { key: [0xde, 0xad, 0xbe, 0xef] });
      for (let offset = 0; offset < 8; offset++) {
        const header = bytes.length - length;
        for (const split of [0, 1, 2, 3, 5, Math.floor(length / 2), length - 1]) {
          if (split < 0 || split > length) continue;
          const parser = new FrameParser(SERVER);
          const recorder = new Recorder();
          const buffer = new Uint8Array(offset + bytes.length + 3);
          buffer.set(bytes, offset);
          parser.push(buffer, offset, offset + header + split, recorder);
          parser.push(buffer, offset + header + split, offset + bytes.length, recorder);
          assertEvents(recorder.events, [msg(data)], `length ${length} offset ${offset}`);
        }
      }
    }
  });
  await t.step("unmasking inside a view whose own buffer is larger (byteOffset != 0)", () => {
    const data = filled(4096, 3);
    const bytes = frame(0x2, data);
    const backing = new Uint8Array(bytes.length + 64);
    const view = backing.subarray(13, 13 + bytes.length);
    view.set(bytes);
    const recorder = new Recorder();
    new FrameParser(SERVER).push(view, 0, view.length, recorder);
    assertEvents(recorder.events, [msg(data)]);
  });
});

// ---------------------------------------------------------------------------------------------
// Header rules

Deno.test("parser: RSV bits without a negotiated extension fail with 1002", async (t) => {
  for (const options of ROLES) {
    for (let rsv = 1; rsv < 8; rsv++) {
      await t.step(`${roleName(options)}: RSV=${rsv.toString(2).padStart(3, "0")}`, () => {
        for (const opcode of [0x1, 0x2, 0x8, 0x9, 0xa]) {
          expectEvents(peerFrame(options, opcode, "x", { rsv }), [fail(1002)], options);
        }
        // On a continuation frame, after a valid first fragment; and after a valid message.
        expectEvents(
          concat(peerFrame(options, 0x1, "a", { fin: false }), peerFrame(options, 0, "b", { rsv })),
          [fail(1002)],
          options,
        );
        expectEvents(
          concat(peerFrame(options, 0x1, "ok"), peerFrame(options, 0x1, "x", { rsv })),
          [msg("ok"), fail(1002)],
          options,
        );
      });
    }
  }
  await t.step("fails on the second header byte, before the rest of the header", () => {
    const parser = new FrameParser(SERVER);
    const recorder = new Recorder();
    assert.equal(parser.push(hex("c1 85"), 0, 2, recorder), false);
    assertEvents(recorder.events, [fail(1002)]);
  });
});

Deno.test("parser: reserved opcodes fail with 1002", async (t) => {
  for (const options of ROLES) {
    await t.step(`${roleName(options)}: 0x3-0x7 and 0xB-0xF`, () => {
      for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
        for (const fin of [true, false]) {
          expectEvents(peerFrame(options, opcode, "", { fin }), [fail(1002)], options);
          expectEvents(peerFrame(options, opcode, "payload", { fin }), [fail(1002)], options);
        }
        // Autobahn 4.1.3 / 4.2.3: valid text, then the reserved frame, then a ping.
        expectEvents(
          concat(
            peerFrame(options, 0x1, "hi"),
            peerFrame(options, opcode),
            peerFrame(options, 0x9),
          ),
          [msg("hi"), fail(1002)],
          options,
        );
        // Inside a fragmented message.
        expectEvents(
          concat(peerFrame(options, 0x2, [1], { fin: false }), peerFrame(options, opcode, [2])),
          [fail(1002)],
          options,
        );
      }
    });
  }
});

Deno.test("parser: control frame rules", async (t) => {
  for (const options of ROLES) {
    const f = peerFramer(options);
    await t.step(`${roleName(options)}: pings and pongs of 0, 1 and 125 bytes`, () => {
      for (const length of [0, 1, 2, 124, 125]) {
        const data = filled(length);
        expectEvents(f(0x9, data), [ping(data)], options);
        expectEvents(f(0xa, data), [pong(data)], options);
      }
    });
    await t.step(`${roleName(options)}: control frames without FIN fail with 1002`, () => {
      for (const opcode of [0x8, 0x9, 0xa]) {
        expectEvents(f(opcode, [], { fin: false }), [fail(1002)], options);
        expectEvents(f(opcode, [3, 0xe8], { fin: false }), [fail(1002)], options);
      }
      // Autobahn 5.1 / 5.2: a ping or pong "fragmented" into two frames.
      expectEvents(concat(f(0x9, "pi", { fin: false }), f(0, "ng")), [fail(1002)], options);
      expectEvents(concat(f(0xa, "po", { fin: false }), f(0, "ng")), [fail(1002)], options);
    });
    await t.step(`${roleName(options)}: control payload over 125 fails before the payload`, () => {
      for (const opcode of [0x8, 0x9, 0xa]) {
        for (const length of [126, 127, 1000, 65535, 65536]) {
          const bytes = f(opcode, filled(length));
          expectEvents(bytes, [fail(1002)], options, { bytewise: length < 2000, seeds: 2 });
          const header = bytes.subarray(0, bytes.length - length);
          expectEvents(header, [fail(1002)], options);
        }
      }
    });
    await t.step(`${roleName(options)}: 10 pings in a row (Autobahn 2.10)`, () => {
      const pings: Uint8Array[] = [];
      const expected: Event[] = [];
      for (let i = 0; i < 10; i++) {
        pings.push(f(0x9, `payload-${i}`));
        expected.push(ping(utf8(`payload-${i}`)));
      }
      expectEvents(concat(...pings), expected, options);
    });
    await t.step(`${roleName(options)}: unsolicited pong, binary ping payload`, () => {
      expectEvents(
        concat(f(0xa), f(0xa, "unsolicited")),
        [pong(), pong(utf8("unsolicited"))],
        options,
      );
      const binary = Uint8Array.from([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]);
      expectEvents(f(0x9, binary), [ping(binary)], options);
    });
  }
});

Deno.test("parser: mask bit must match the role", async (t) => {
  await t.step("server: unmasked frames fail with 1002", () => {
    for (const opcode of [0x0, 0x1, 0x2, 0x8, 0x9, 0xa]) {
      expectEvents(frame(opcode, "x", { mask: false }), [fail(1002)]);
    }
    // A masked first fragment followed by an unmasked continuation.
    expectEvents(
      concat(frame(0x1, "a", { fin: false }), frame(0x0, "b", { mask: false })),
      [fail(1002)],
    );
  });
  await t.step("client: masked frames fail with 1002", () => {
    for (const opcode of [0x1, 0x2, 0x8, 0x9, 0xa]) {
      expectEvents(frame(opcode, "x", { mask: true }), [fail(1002)], CLIENT);
    }
  });
  await t.step("fails on the second header byte", () => {
    const parser = new FrameParser(SERVER);
    const recorder = new Recorder();
    assert.equal(parser.push(hex("81"), 0, 1, recorder), true);
    assert.equal(parser.push(hex("05"), 0, 1, recorder), false);
    assertEvents(recorder.events, [fail(1002)]);
  });
});

// ---------------------------------------------------------------------------------------------
// Fragmentation

Deno.test("parser: fragmentation", async (t) => {
  for (const options of ROLES) {
    const f = peerFramer(options);
    const r = roleName(options);
    await t.step(`${r}: text and binary in 2, 3 and many fragments`, () => {
      expectEvents(
        concat(f(0x1, "frag", { fin: false }), f(0, "ment")),
        [msg("fragment")],
        options,
      );
      expectEvents(
        concat(f(0x2, [1, 2], { fin: false }), f(0, [3], { fin: false }), f(0, [4, 5])),
        [msg([1, 2, 3, 4, 5])],
        options,
      );
      const parts: Uint8Array[] = [];
      const text = asciiText(700);
      for (let i = 0; i < 700; i += 7) {
        parts.push(f(i === 0 ? 0x1 : 0x0, text.slice(i, i + 7), { fin: i + 7 >= 700 }));
      }
      expectEvents(concat(...parts), [msg(text)], options);
    });
    await t.step(`${r}: empty fragments, empty messages`, () => {
      expectEvents(f(0x1, ""), [msg("")], options);
      expectEvents(f(0x2, []), [msg([])], options);
      expectEvents(concat(f(0x1, "", { fin: false }), f(0, "")), [msg("")], options);
      expectEvents(
        concat(f(0x2, [], { fin: false }), f(0, [], { fin: false }), f(0, [9]), f(0x2, [])),
        [msg([9]), msg([])],
        options,
      );
      expectEvents(
        concat(
          f(0x1, "a", { fin: false }),
          f(0, "", { fin: false }),
          f(0, "", { fin: false }),
          f(0, "b"),
        ),
        [msg("ab")],
        options,
      );
    });
    await t.step(`${r}: continuation without a message in progress fails with 1002`, () => {
      expectEvents(f(0x0, "x"), [fail(1002)], options);
      expectEvents(f(0x0, "x", { fin: false }), [fail(1002)], options);
      expectEvents(f(0x0, ""), [fail(1002)], options);
      // Autobahn 5.9-5.14: after a complete message, or mixed with valid frames.
      expectEvents(concat(f(0x1, "done"), f(0x0, "x")), [msg("done"), fail(1002)], options);
      expectEvents(
        concat(f(0x0, "x", { fin: false }), f(0x1, "a", { fin: false }), f(0, "b")),
        [fail(1002)],
        options,
      );
      // Autobahn 5.15: a fragmented message, then a stray continuation, then a message.
      expectEvents(
        concat(f(0x1, "fr", { fin: false }), f(0, "ag1"), f(0, "x", { fin: false }), f(0x1, "y")),
        [msg("frag1"), fail(1002)],
        options,
      );
    });
    await t.step(`${r}: a new data frame during a fragmented message fails with 1002`, () => {
      for (const first of [0x1, 0x2]) {
        for (const second of [0x1, 0x2]) {
          for (const fin of [true, false]) {
            expectEvents(
              concat(f(first, "a", { fin: false }), f(second, "b", { fin })),
              [fail(1002)],
              options,
            );
            expectEvents(
              concat(
                f(first, "a", { fin: false }),
                f(0, "b", { fin: false }),
                f(second, "c", { fin }),
              ),
              [fail(1002)],
              options,
            );
          }
        }
      }
    });
    await t.step(`${r}: control frames between fragments are dispatched at once`, () => {
      expectEvents(
        concat(
          f(0x1, "Hel", { fin: false }),
          f(0x9, "p1"),
          f(0, "l", { fin: false }),
          f(0xa, "p2"),
          f(0x9),
          f(0, "o"),
        ),
        [ping(utf8("p1")), pong(utf8("p2")), ping(), msg("Hello")],
        options,
      );
      expectEvents(
        concat(f(0x2, [1], { fin: false }), f(0x9, [7]), f(0, [2])),
        [ping([7]), msg([1, 2])],
        options,
      );
    });
    await t.step(`${r}: the ping is delivered before the message's last fragment arrives`, () => {
      const bytes = concat(f(0x1, "Hel", { fin: false }), f(0x9, "mid"), f(0, "lo"));
      const cut = bytes.length - f(0, "lo").length;
      const parser = new FrameParser(options);
      const recorder = new Recorder();
      parser.push(bytes, 0, cut, recorder);
      assertEvents(recorder.events, [ping(utf8("mid"))]);
      parser.push(bytes, cut, bytes.length, recorder);
      assertEvents(recorder.events, [ping(utf8("mid")), msg("Hello")]);
    });
    await t.step(`${r}: close between fragments ends everything`, () => {
      expectEvents(
        concat(f(0x1, "Hel", { fin: false }), f(0x8, [3, 0xe8, 0x62, 0x79, 0x65]), f(0, "lo")),
        [close(1000, "bye")],
        options,
      );
      // A close in the middle of an unfinished UTF-8 sequence is still a clean close.
      expectEvents(
        concat(f(0x1, hex("e2 82"), { fin: false }), f(0x8, [0x03, 0xe9])),
        [close(1001)],
        options,
      );
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Close frames

Deno.test("parser: close frames", async (t) => {
  for (const options of ROLES) {
    const f = peerFramer(options);
    const r = roleName(options);
    await t.step(`${r}: empty payload reports 1005 and ""`, () => {
      expectEvents(f(0x8), [close(1005)], options);
    });
    await t.step(`${r}: one-byte payload fails with 1002`, () => {
      expectEvents(f(0x8, [0x03]), [fail(1002)], options);
    });
    await t.step(`${r}: code only, code with reason, 123-byte reason`, () => {
      expectEvents(f(0x8, [0x03, 0xe8]), [close(1000)], options);
      expectEvents(
        f(0x8, concat(hex("0f a0"), utf8("going ☃"))),
        [close(4000, "going ☃")],
        options,
      );
      const reason = "r".repeat(120) + "€";
      assert.equal(utf8(reason).length, 123);
      expectEvents(f(0x8, concat(hex("03 e8"), utf8(reason))), [close(1000, reason)], options);
    });
    await t.step(`${r}: 124-byte reason makes the payload too long (1002)`, () => {
      expectEvents(f(0x8, concat(hex("03 e8"), utf8("r".repeat(124)))), [fail(1002)], options);
    });
    await t.step(`${r}: reason that is not UTF-8 fails with 1007`, () => {
      for (
        const bad of ["ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64", "ff", "c0 80", "e2 82"]
      ) {
        expectEvents(f(0x8, concat(hex("03 e8"), hex(bad))), [fail(1007)], options);
      }
    });
    await t.step(`${r}: invalid code fails with 1002 even with a bad reason`, () => {
      expectEvents(f(0x8, concat(hex("03 ed"), hex("ff"))), [fail(1002)], options);
    });
    await t.step(`${r}: nothing is dispatched after the close`, () => {
      expectEvents(
        concat(f(0x1, "before"), f(0x8, [3, 0xe8]), f(0x1, "after"), f(0x9), f(0x8, [3, 0xe9])),
        [msg("before"), close(1000)],
        options,
      );
      // Garbage after the close is not even looked at.
      expectEvents(concat(f(0x8), hex("ff ff ff ff")), [close(1005)], options);
    });
    await t.step(`${r}: every close code 0..5100 (and 65535)`, () => {
      for (let code = 0; code <= 5100; code++) {
        const bytes = f(0x8, [code >> 8, code & 0xff, 0x6f, 0x6b]);
        const expected = onWire(code) ? close(code, "ok") : fail(1002);
        assertEvents(run(bytes, [bytes.length], options).events, [expected], `${code}`);
      }
      for (const code of [999, 1000, 1004, 1005, 1006, 1014, 1015, 2999, 3000, 4999, 5000]) {
        expectEvents(
          f(0x8, [code >> 8, code & 0xff]),
          [onWire(code) ? close(code) : fail(1002)],
          options,
        );
      }
      expectEvents(f(0x8, [0xff, 0xff]), [fail(1002)], options);
    });
  }
});

Deno.test("parser: nothing is dispatched after a failure", () => {
  for (const options of ROLES) {
    const f = peerFramer(options);
    expectEvents(
      concat(f(0x1, "ok"), f(0x3), f(0x1, "never"), f(0x8)),
      [msg("ok"), fail(1002)],
      options,
    );
    expectEvents(
      concat(f(0x1, hex("ff")), f(0x9, "never"), f(0x8)),
      [fail(1007)],
      options,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Limits

Deno.test("parser: maxMessageSize", async (t) => {
  for (const options of ROLES) {
    const r = roleName(options);
    const f = peerFramer(options);
    for (const limit of [0, 1, 125, 126, 1000, 65535, 65536, 100_000]) {
      const limited = { ...options, maxMessageSize: limit };
      await t.step(`${r}: limit ${limit}: exactly the limit passes, one more fails`, () => {
        const big = limit > 2000;
        const config = { bytewise: !big, seeds: 2 };
        expectEvents(f(0x2, filled(limit)), [msg(filled(limit))], limited, config);
        expectEvents(f(0x1, "a".repeat(limit)), [msg("a".repeat(limit))], limited, config);
        expectEvents(f(0x2, filled(limit + 1)), [fail(1009)], limited, config);
        expectEvents(f(0x1, "a".repeat(limit + 1)), [fail(1009)], limited, config);
      });
      await t.step(`${r}: limit ${limit}: 1009 as soon as the header announces it`, () => {
        const bytes = f(0x2, filled(limit + 1));
        const header = bytes.subarray(0, bytes.length - limit - 1);
        expectEvents(header, [fail(1009)], limited);
        expectEvents(f(0x2, [], { declared: 2 ** 40 }), [fail(1009)], limited);
      });
    }
    await t.step(`${r}: the limit applies to the sum of the fragments`, () => {
      const limited = { ...options, maxMessageSize: 10 };
      expectEvents(
        concat(f(0x1, "12345", { fin: false }), f(0, "678", { fin: false }), f(0, "90")),
        [msg("1234567890")],
        limited,
      );
      const over = concat(f(0x2, filled(5), { fin: false }), f(0, filled(3), { fin: false }));
      const third = f(0, filled(3));
      expectEvents(concat(over, third), [fail(1009)], limited);
      // Fails on the third header, before its payload.
      expectEvents(concat(over, third.subarray(0, third.length - 3)), [fail(1009)], limited);
    });
    await t.step(`${r}: control frames are not subject to maxMessageSize`, () => {
      const limited = { ...options, maxMessageSize: 0 };
      expectEvents(
        concat(f(0x9, filled(125)), f(0xa, filled(3)), f(0x8, [3, 0xe8])),
        [ping(filled(125)), pong(filled(3)), close(1000)],
        limited,
      );
    });
  }
  await t.step("default limit is 64 MiB; at least 16 MiB works", () => {
    assert.equal(DEFAULT_MAX_MESSAGE_SIZE, 64 * 1024 * 1024);
    const header = frame(0x2, [], { declared: DEFAULT_MAX_MESSAGE_SIZE + 1 });
    expectEvents(header, [fail(1009)]);
    const ok = frame(0x2, [], { declared: DEFAULT_MAX_MESSAGE_SIZE });
    expectEvents(ok, []);
  });
});

Deno.test("parser: maxFragments", async (t) => {
  for (const options of ROLES) {
    const r = roleName(options);
    const f = peerFramer(options);
    const fragments = (n: number) => {
      const parts: Uint8Array[] = [];
      for (let i = 0; i < n; i++) parts.push(f(i === 0 ? 0x1 : 0, "x", { fin: i === n - 1 }));
      return concat(...parts);
    };
    await t.step(`${r}: exactly maxFragments passes, one more fails with 1009`, () => {
      for (const max of [1, 2, 5, 17]) {
        const limited = { ...options, maxFragments: max };
        expectEvents(fragments(max), [msg("x".repeat(max))], limited);
        expectEvents(fragments(max + 1), [fail(1009)], limited);
      }
    });
    await t.step(`${r}: fails at the header of the extra fragment`, () => {
      const limited = { ...options, maxFragments: 3 };
      const bytes = concat(
        f(0x1, "a", { fin: false }),
        f(0, "b", { fin: false }),
        f(0, "c", { fin: false }),
        f(0, "", { fin: false }).subarray(0, 2),
      );
      expectEvents(bytes, [fail(1009)], limited);
    });
    await t.step(`${r}: the count restarts with every message; control frames do not count`, () => {
      const limited = { ...options, maxFragments: 2 };
      expectEvents(
        concat(
          f(0x1, "a", { fin: false }),
          f(0x9),
          f(0xa),
          f(0, "b"),
          f(0x2, [1], { fin: false }),
          f(0, [2]),
        ),
        [ping(), pong(), msg("ab"), msg([1, 2])],
        limited,
      );
    });
  }
  await t.step("default allows 16 MiB in 64-byte fragments", () => {
    assert.ok(DEFAULT_MAX_FRAGMENTS >= 262144);
  });
});

Deno.test("parser: 16 MiB messages", async (t) => {
  const size = 16 * 1024 * 1024;
  const config: FeedConfig = { bytewise: false, seeds: 1, largest: 200_000, reads: [65536] };
  await t.step("16 MiB binary in 64-byte fragments (server, masked)", () => {
    const data = filled(size, 5);
    const bytes = encodeMessage(data, { mask: true, fragmentSize: 64 });
    assertEvents(feed(bytes, SERVER, config), [msg(data)]);
  });
  await t.step("16 MiB text in 64-byte fragments (client, unmasked)", () => {
    const text = asciiText(size - 4) + "€a";
    const bytes = encodeMessage(text, { fragmentSize: 64 });
    assertEvents(feed(bytes, CLIENT, config), [msg(text)]);
  });
  await t.step("16 MiB single frame delivered in 64 KiB reads", () => {
    const data = filled(size, 6);
    const bytes = frame(0x2, data);
    const events = feed(bytes, SERVER, { ...config, seeds: 0 });
    assertEvents(events, [msg(data)]);
  });
});

// ---------------------------------------------------------------------------------------------
// UTF-8

/**
 * Independent reference validator (Unicode Table 3-7, written out longhand). Returns the index
 * of the first byte at which `bytes` is known to be invalid, -1 if valid, or -2 if it is a
 * valid prefix that ends inside a sequence.
 */
function firstInvalid(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b <= 0x7f) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b === 0xe0) [need, lo] = [2, 0xa0];
    else if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) need = 2;
    else if (b === 0xed) [need, hi] = [2, 0x9f];
    else if (b === 0xf0) [need, lo] = [3, 0x90];
    else if (b >= 0xf1 && b <= 0xf3) need = 3;
    else if (b === 0xf4) [need, hi] = [3, 0x8f];
    else return i;
    i++;
    for (let j = 0; j < need; j++, i++) {
      if (i >= bytes.length) return -2;
      if (bytes[i] < lo || bytes[i] > hi) return i;
      lo = 0x80;
      hi = 0xbf;
    }
  }
  return -1;
}

const KOSME = "ce ba e1 bd b9 cf 83 ce bc ce b5";

/** The Markus Kuhn / Autobahn 6.x test set: [description, hex, valid]. */
const UTF8_CASES: [string, string, boolean][] = [
  ["hello$world", "68656c6c6f 24 776f726c64", true],
  ["hello¢world", "68656c6c6f c2a2 776f726c64", true],
  ["hello€world", "68656c6c6f e282ac 776f726c64", true],
  ["hello𤭢world", "68656c6c6f f0a4ada2 776f726c64", true],
  ["κόσμε", KOSME, true],
  ["first 1-byte U+0000", "00", true],
  ["first 2-byte U+0080", "c2 80", true],
  ["first 3-byte U+0800", "e0 a0 80", true],
  ["first 4-byte U+10000", "f0 90 80 80", true],
  ["first 5-byte", "f8 88 80 80 80", false],
  ["first 6-byte", "fc 84 80 80 80 80", false],
  ["last 1-byte U+007F", "7f", true],
  ["last 2-byte U+07FF", "df bf", true],
  ["last 3-byte U+FFFF", "ef bf bf", true],
  ["last 4-byte U+10FFFF", "f4 8f bf bf", true],
  ["last 4-byte pattern U+1FFFFF", "f7 bf bf bf", false],
  ["last 5-byte", "fb bf bf bf bf", false],
  ["last 6-byte", "fd bf bf bf bf bf", false],
  ["U+D7FF", "ed 9f bf", true],
  ["U+E000", "ee 80 80", true],
  ["U+FFFD", "ef bf bd", true],
  ["U+110000", "f4 90 80 80", false],
  ["continuation 80", "80", false],
  ["continuation bf", "bf", false],
  ["2 continuations", "80 bf", false],
  ["3 continuations", "80 bf 80", false],
  ["4 continuations", "80 bf 80 bf", false],
  ["5 continuations", "80 bf 80 bf 80", false],
  ["6 continuations", "80 bf 80 bf 80 bf", false],
  [
    "all continuations 80-bf",
    Array.from({ length: 64 }, (_, i) => (0x80 + i).toString(16)).join(""),
    false,
  ],
  ...([[0xc0, 0xdf], [0xe0, 0xef], [0xf0, 0xf7], [0xf8, 0xfb], [0xfc, 0xfd]] as const).map(
    ([from, to]): [string, string, boolean] => [
      `lonely starts ${from.toString(16)}-${to.toString(16)} each followed by a space`,
      Array.from({ length: to - from + 1 }, (_, i) => (from + i).toString(16) + "20").join(""),
      false,
    ],
  ),
  ["2-byte missing last (c0)", "c0", false],
  ["3-byte missing last (e0 80)", "e0 80", false],
  ["4-byte missing last (f0 80 80)", "f0 80 80", false],
  ["5-byte missing last", "f8 80 80 80", false],
  ["6-byte missing last", "fc 80 80 80 80", false],
  ["2-byte missing last (df)", "df", false],
  ["3-byte missing last (ef bf)", "ef bf", false],
  ["4-byte missing last (f7 bf bf)", "f7 bf bf", false],
  ["5-byte missing last (fb ...)", "fb bf bf bf", false],
  ["6-byte missing last (fd ...)", "fd bf bf bf bf", false],
  [
    "concatenated incomplete sequences",
    "c0 e080 f08080 f8808080 fc80808080 df efbf f7bfbf fbbfbfbf fdbfbfbfbf",
    false,
  ],
  ["valid 2-byte prefix at the end (c2)", "41 c2", false],
  ["valid 3-byte prefix at the end (e2 82)", "41 e2 82", false],
  ["valid 4-byte prefix at the end (f0 9f 98)", "41 f0 9f 98", false],
  ["impossible fe", "fe", false],
  ["impossible ff", "ff", false],
  ["impossible fe fe ff ff", "fe fe ff ff", false],
  ["overlong / c0 af", "c0 af", false],
  ["overlong / e0 80 af", "e0 80 af", false],
  ["overlong / f0 80 80 af", "f0 80 80 af", false],
  ["overlong / f8 ...", "f8 80 80 80 af", false],
  ["overlong / fc ...", "fc 80 80 80 80 af", false],
  ["max overlong c1 bf", "c1 bf", false],
  ["max overlong e0 9f bf", "e0 9f bf", false],
  ["max overlong f0 8f bf bf", "f0 8f bf bf", false],
  ["max overlong f8 ...", "f8 87 bf bf bf", false],
  ["max overlong fc ...", "fc 83 bf bf bf bf", false],
  ["overlong NUL c0 80", "c0 80", false],
  ["overlong NUL e0 80 80", "e0 80 80", false],
  ["overlong NUL f0 80 80 80", "f0 80 80 80", false],
  ["overlong NUL f8 ...", "f8 80 80 80 80", false],
  ["overlong NUL fc ...", "fc 80 80 80 80 80", false],
  ["U+D800", "ed a0 80", false],
  ["U+DB7F", "ed ad bf", false],
  ["U+DB80", "ed ae 80", false],
  ["U+DBFF", "ed af bf", false],
  ["U+DC00", "ed b0 80", false],
  ["U+DF80", "ed be 80", false],
  ["U+DFFF", "ed bf bf", false],
  ["U+D800 U+DC00", "eda080 edb080", false],
  ["U+D800 U+DFFF", "eda080 edbfbf", false],
  ["U+DB7F U+DC00", "edadbf edb080", false],
  ["U+DB7F U+DFFF", "edadbf edbfbf", false],
  ["U+DB80 U+DC00", "edae80 edb080", false],
  ["U+DB80 U+DFFF", "edae80 edbfbf", false],
  ["U+DBFF U+DC00", "edafbf edb080", false],
  ["U+DBFF U+DFFF", "edafbf edbfbf", false],
  ["noncharacter U+FFFE", "ef bf be", true],
  ["noncharacter U+FFFF", "ef bf bf", true],
  ["specials U+FFF9..U+FFFD", "efbfb9 efbfba efbfbb efbfbc efbfbd", true],
  ["BOM is content", "ef bb bf 41", true],
  ["κόσμε then U+110000 then 'edited' (6.4.1)", `${KOSME} f4908080 656469746564`, false],
  ["κόσμε then U+D800 then 'edited'", `${KOSME} eda080 656469746564`, false],
  ["'edited' then U+D800 (validator 7th byte)", "65 64 69 74 65 64 ed a0 80", false],
];

// Noncharacters in every plane (Autobahn 6.22): F0-F4 x 8F/9F/AF/BF x BF x BE/BF.
for (const b1 of [0xf0, 0xf1, 0xf2, 0xf3, 0xf4]) {
  for (const b2 of [0x8f, 0x9f, 0xaf, 0xbf]) {
    if (b1 === 0xf4 && b2 !== 0x8f) continue;
    if (b1 === 0xf0 && b2 === 0x8f) continue;
    for (const b4 of [0xbe, 0xbf]) {
      const bytes = [b1, b2, 0xbf, b4].map((b) => b.toString(16)).join("");
      UTF8_CASES.push([`noncharacter ${bytes}`, bytes, true]);
    }
  }
}
// Every prefix of κόσμε: valid exactly at character boundaries.
{
  const kosme = hex(KOSME);
  for (let i = 1; i <= kosme.length; i++) {
    const prefix = kosme.subarray(0, i);
    UTF8_CASES.push([
      `κόσμε prefix ${i}`,
      Array.from(prefix, (b) => b.toString(16).padStart(2, "0")).join(""),
      [2, 5, 7, 9, 11].includes(i),
    ]);
  }
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Expected events for a text message of `bytes`, per the reference validator. */
function expectedText(bytes: Uint8Array): Event[] {
  return firstInvalid(bytes) === -1 ? [msg(strictDecoder.decode(bytes))] : [fail(1007)];
}

Deno.test("parser: UTF-8 reference validator agrees with the test table and TextDecoder", () => {
  for (const [name, hexText, valid] of UTF8_CASES) {
    const bytes = hex(hexText);
    assert.equal(firstInvalid(bytes) === -1, valid, name);
    let decodes = true;
    try {
      strictDecoder.decode(bytes);
    } catch {
      decodes = false;
    }
    assert.equal(decodes, valid, name);
  }
});

Deno.test("parser: UTF-8 test set (Markus Kuhn / Autobahn 6.x)", async (t) => {
  for (const [name, hexText, valid] of UTF8_CASES) {
    await t.step(`${valid ? "valid" : "invalid"}: ${name}`, () => {
      const bytes = hex(hexText);
      const expected = valid ? [msg(strictDecoder.decode(bytes))] : [fail(1007)];
      for (const options of ROLES) {
        const f = peerFramer(options);
        // One frame.
        expectEvents(f(0x1, bytes), expected, options);
        // Two fragments split at every byte position.
        for (let split = 0; split <= bytes.length; split++) {
          const two = concat(
            f(0x1, bytes.subarray(0, split), { fin: false }),
            f(0x0, bytes.subarray(split)),
          );
          expectEvents(two, expected, options, { seeds: 1 });
        }
        // One fragment per byte, with pings in between.
        const parts: Uint8Array[] = [];
        for (let i = 0; i < bytes.length; i++) {
          parts.push(
            f(i === 0 ? 0x1 : 0x0, bytes.subarray(i, i + 1), { fin: i === bytes.length - 1 }),
          );
          if (i % 3 === 1) parts.push(f(0x9, new Uint8Array(0)));
        }
        const perByte = feed(concat(...parts), options, { seeds: 1 });
        assertEvents(perByte.filter((e) => e[0] !== "ping"), expected);
      }
    });
  }
});

Deno.test("parser: UTF-8 fails fast, at the first invalid byte", async (t) => {
  const invalid = UTF8_CASES.filter(([, , valid]) => !valid);
  for (const [name, hexText] of invalid) {
    await t.step(name, () => {
      // Padding makes truncated sequences fail on the first padding byte, and keeps the
      // declared frame length larger than what has been delivered.
      const bytes = concat(hex(hexText), utf8("xxxxxxxx"));
      const bad = firstInvalid(bytes);
      assert.ok(bad >= 0, "the padded sequence is invalid");
      for (const options of ROLES) {
        // (a) Inside one frame whose tail has not arrived.
        const whole = peerFrame(options, 0x1, concat(bytes, utf8("tail not yet sent")));
        const header = whole.length - bytes.length - 17;
        for (const step of [1, 2, 1000]) {
          const parser = new FrameParser(options);
          const recorder = new Recorder();
          const input = whole.slice();
          let pos = 0;
          const upTo = header + bad; // everything before the bad byte
          while (pos < upTo) {
            const next = Math.min(upTo, pos + step);
            assert.equal(parser.push(input, pos, next, recorder), true);
            pos = next;
          }
          assertEvents(recorder.events, [], "no failure before the invalid byte");
          assert.equal(parser.push(input, upTo, upTo + 1, recorder), false);
          assertEvents(recorder.events, [fail(1007)], "failure on the invalid byte");
        }
        // (b) Across fragments: valid prefix in a complete first fragment, the bad byte at the
        // start of a second fragment whose header announces more.
        const first = peerFrame(options, 0x1, bytes.subarray(0, bad), { fin: false });
        const second = peerFrame(options, 0x0, bytes.subarray(bad), { fin: true });
        const secondHeader = second.length - (bytes.length - bad);
        const parser = new FrameParser(options);
        const recorder = new Recorder();
        parser.push(first, 0, first.length, recorder);
        assertEvents(recorder.events, []);
        assert.equal(parser.push(second, 0, secondHeader + 1, recorder), false);
        assertEvents(recorder.events, [fail(1007)]);
      }
    });
  }
  await t.step("a message ending inside a sequence fails when the message ends", () => {
    for (const tail of ["c2", "e2 82", "f0 9f 98", "e0 a0", "f4 8f bf"]) {
      const bytes = concat(utf8("ok"), hex(tail));
      const parser = new FrameParser(SERVER);
      const recorder = new Recorder();
      const first = frame(0x1, bytes, { fin: false });
      parser.push(first, 0, first.length, recorder);
      assertEvents(recorder.events, [], `${tail}: a prefix is fine mid-message`);
      const last = frame(0x0, []);
      parser.push(last, 0, last.length, recorder);
      assertEvents(recorder.events, [fail(1007)], tail);
      expectEvents(frame(0x1, bytes), [fail(1007)]);
    }
  });
  await t.step("Autobahn 6.4.1-6.4.4", () => {
    const p1 = hex(KOSME);
    const p2 = hex("f4 90 80 80");
    const p3 = utf8("edited");
    const check = (chops: Uint8Array[], failAfter: number) => {
      const parser = new FrameParser(SERVER);
      const recorder = new Recorder();
      chops.forEach((chop, i) => {
        parser.push(chop, 0, chop.length, recorder);
        assertEvents(recorder.events, i < failAfter ? [] : [fail(1007)], `chop ${i}`);
      });
    };
    // 6.4.1: three frames; the second (invalid) fails at once.
    check([frame(0x1, p1, { fin: false }), frame(0x0, p2, { fin: false }), frame(0x0, p3)], 1);
    // 6.4.2: the first frame ends with F4, the second starts with 90.
    check(
      [
        frame(0x1, concat(p1, p2.subarray(0, 1)), { fin: false }),
        frame(0x0, p2.subarray(1), { fin: false }),
        frame(0x0, p3),
      ],
      1,
    );
    // 6.4.3 / 6.4.4: one frame delivered in three chops.
    const one = frame(0x1, concat(p1, p2, p3));
    const h = one.length - p1.length - p2.length - p3.length;
    check([one.subarray(0, h + 11), one.subarray(h + 11, h + 15), one.subarray(h + 15)], 1);
    const two = frame(0x1, concat(p1, p2, p3));
    check([two.subarray(0, h + 12), two.subarray(h + 12, h + 13), two.subarray(h + 13)], 1);
  });
});

Deno.test("parser: UTF-8 exhaustive byte pairs and lead/second-byte triples", async (t) => {
  await t.step("all 65536 two-byte payloads, as one frame and as two fragments", () => {
    const parser = () => new FrameParser(CLIENT);
    for (let a = 0; a < 256; a++) {
      for (let b = 0; b < 256; b++) {
        const bytes = Uint8Array.of(a, b);
        const expected = expectedText(bytes);
        const one = Uint8Array.of(0x81, 2, a, b);
        const recorder = new Recorder();
        parser().push(one, 0, 4, recorder);
        assertEvents(recorder.events, expected, `${a.toString(16)} ${b.toString(16)}`);
        const split = Uint8Array.of(0x01, 1, a, 0x80, 1, b);
        const recorder2 = new Recorder();
        parser().push(split, 0, 6, recorder2);
        assertEvents(recorder2.events, expected, `split ${a} ${b}`);
      }
    }
  });
  await t.step("leads E0-F7 with every second byte, streamed byte by byte", () => {
    for (let lead = 0xe0; lead <= 0xf7; lead++) {
      for (let second = 0; second < 256; second++) {
        for (const third of [0x41, 0x80, 0xbf, 0xc0]) {
          const bytes = lead >= 0xf0
            ? Uint8Array.of(lead, second, third, 0x80)
            : Uint8Array.of(lead, second, third);
          const expected = expectedText(bytes);
          const whole = concat(Uint8Array.of(0x81, bytes.length), bytes);
          const a = new Recorder();
          new FrameParser(CLIENT).push(whole, 0, whole.length, a);
          assertEvents(a.events, expected);
          const b = new Recorder();
          const parser = new FrameParser(CLIENT);
          for (let i = 0; i < whole.length; i++) parser.push(whole, i, i + 1, b);
          assertEvents(b.events, expected);
        }
      }
    }
  });
  await t.step("every code point U+0000..U+10FFFF (no surrogates) in one message", () => {
    const parts: string[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp < 0xd800 || cp > 0xdfff) parts.push(String.fromCodePoint(cp));
    }
    const text = parts.join("");
    const bytes = utf8(text);
    const config: FeedConfig = { bytewise: false, seeds: 2, largest: 64, reads: [65536, 4097] };
    expectEvents(frame(0x1, bytes), [msg(text)], SERVER, config);
    // Fragments of 1..7 bytes, cutting sequences at every possible point.
    const fragmented: Uint8Array[] = [];
    const rnd = mulberry32(42);
    const slice = bytes.subarray(0, 200_000);
    for (let i = 0; i < slice.length;) {
      const n = 1 + Math.floor(rnd() * 7);
      fragmented.push(
        frame(i === 0 ? 0x1 : 0x0, slice.subarray(i, i + n), { fin: i + n >= slice.length }),
      );
      i += n;
    }
    expectEvents(concat(...fragmented), [msg(strictDecoder.decode(slice))], SERVER, {
      bytewise: false,
      seeds: 1,
      reads: [1000],
    });
  });
  await t.step("every surrogate code point encoded as 3 bytes is rejected", () => {
    for (let cp = 0xd800; cp <= 0xdfff; cp++) {
      const bytes = Uint8Array.of(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
      const recorder = new Recorder();
      const f = frame(0x1, bytes);
      new FrameParser(SERVER).push(f, 0, f.length, recorder);
      assertEvents(recorder.events, [fail(1007)], cp.toString(16));
    }
  });
  await t.step("a genuine U+FFFD among ASCII and the BOM are preserved", () => {
    expectEvents(frame(0x1, "a\uFFFDb"), [msg("a\uFFFDb")]);
    expectEvents(frame(0x1, "\uFEFFbom"), [msg("\uFEFFbom")]);
    expectEvents(concat(frame(0x1, "\uFEFF", { fin: false }), frame(0, "x")), [msg("\uFEFFx")]);
    expectEvents(frame(0x1, hex("ef bf bd ff")), [fail(1007)]);
  });
});

// ---------------------------------------------------------------------------------------------
// Round trips with the encoder

Deno.test("parser: encoder round trips", async (t) => {
  const lengths = [0, 1, 125, 126, 127, 65535, 65536, 16 * 1024 * 1024];
  for (const length of lengths) {
    const big = length > 70000;
    const config: FeedConfig = big
      ? { bytewise: false, seeds: 0, reads: [65536] }
      : { bytewise: length < 1000, seeds: 2, reads: [65536, 1000] };
    await t.step(`${length} bytes: client→server (masked) and server→client`, () => {
      const data = filled(length, length + 1);
      const text = length > 10 ? asciiText(length - 9) + "é€𝄞" : "x".repeat(length);
      assert.equal(utf8(text).length, length);
      for (const [options, mask] of [[SERVER, true], [CLIENT, false]] as const) {
        const binary = encodeMessage(data, { mask });
        assertEvents(feed(binary, options, config), [msg(data)]);
        const textFrame = encodeMessage(text, { mask });
        assertEvents(feed(textFrame, options, config), [msg(text)]);
        const viaFrame = encodeFrame(0x1, text, { mask });
        assertEvents(feed(viaFrame, options, config), [msg(text)]);
      }
    });
  }
  await t.step("fragmented messages at many fragment sizes", () => {
    const text = asciiText(3000) + "κόσμε𝄞€";
    const data = filled(3001);
    for (const fragmentSize of [1, 2, 3, 7, 64, 125, 126, 1000, 2999, 5000]) {
      for (const [options, mask] of [[SERVER, true], [CLIENT, false]] as const) {
        const config: FeedConfig = { bytewise: false, seeds: 1 };
        assertEvents(feed(encodeMessage(text, { mask, fragmentSize }), options, config), [
          msg(text),
        ]);
        assertEvents(feed(encodeMessage(data, { mask, fragmentSize }), options, config), [
          msg(data),
        ]);
      }
    }
  });
  await t.step("control and close frames", () => {
    for (const [options, mask] of [[SERVER, true], [CLIENT, false]] as const) {
      const bytes = concat(
        encodeFrame(0x9, "ping", { mask }),
        encodeFrame(0xa, new Uint8Array([1, 2, 3]), { mask }),
        encodeCloseFrame(4001, "bye ☃", mask),
      );
      expectEvents(bytes, [ping(utf8("ping")), pong([1, 2, 3]), close(4001, "bye ☃")], options);
      expectEvents(encodeCloseFrame(undefined, "", mask), [close(1005)], options);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// API contract

Deno.test("parser: delivered data is an owned, standalone copy", () => {
  const data = filled(300);
  const input = concat(frame(0x2, data), frame(0x9, [1, 2, 3]), frame(0x2, filled(40)));
  const recorder = new Recorder();
  new FrameParser(SERVER).push(input, 0, input.length, recorder);
  input.fill(0);
  assertEvents(recorder.events, [msg(data), ping([1, 2, 3]), msg(filled(40))]);
  for (const event of recorder.events) {
    const payload = event[1] as Uint8Array;
    assert.equal(payload.byteOffset, 0);
    assert.equal(payload.buffer.byteLength, payload.length);
  }
  // Fragmented and split binary messages too.
  const fragmented = encodeMessage(filled(1000), { mask: true, fragmentSize: 300 });
  for (const sizes of [[fragmented.length], [10, 500, fragmented.length - 510]]) {
    const out = run(fragmented, sizes, SERVER).events;
    const payload = out[0][1] as Uint8Array;
    assertEvents(out, [msg(filled(1000))]);
    assert.equal(payload.byteOffset, 0);
    assert.equal(payload.buffer.byteLength, 1000);
  }
});

Deno.test("parser: lending hands over views and gives every buffer back", async (t) => {
  /** A handler that checks each message while it is lent and notes what the pool holds. */
  const watch = (pool: CheckingPool) => {
    const seen: { data: Uint8Array; lent: boolean; out: number; buffer: ArrayBufferLike }[] = [];
    const handler: FrameHandler = {
      onMessage(data, lent) {
        const bytes = data as Uint8Array;
        seen.push({
          data: bytes.slice(),
          lent: lent === true,
          out: pool.out.size,
          buffer: bytes.buffer,
        });
      },
      onPing() {},
      onPong() {},
      onClose() {},
      onFail() {},
    };
    return { seen, handler };
  };

  await t.step("a message whole in one push is a view of the input", () => {
    const pool = new CheckingPool();
    const { seen, handler } = watch(pool);
    const input = concat(frame(0x2, filled(300)), frame(0x2, filled(70_000)));
    new FrameParser({ ...SERVER, lend: pool }).push(input, 0, input.length, handler);
    assert.equal(seen.length, 2);
    for (const m of seen) {
      assert.equal(m.lent, true);
      assert.equal(m.buffer, input.buffer, "no copy");
    }
    assertEvents([msg(seen[0].data), msg(seen[1].data)], [msg(filled(300)), msg(filled(70_000))]);
    assert.equal(pool.acquired, 0);
  });

  await t.step("a message across pushes is lent from the pool and given back after", () => {
    const pool = new CheckingPool();
    const { seen, handler } = watch(pool);
    const parser = new FrameParser({ ...SERVER, lend: pool });
    const input = frame(0x2, filled(70_000));
    parser.push(input, 0, 1000, handler);
    parser.push(input, 1000, input.length, handler);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].lent, true);
    assert.equal(seen[0].out, 1, "held while the handler runs");
    assertEvents([msg(seen[0].data)], [msg(filled(70_000))]);
    assert.equal(pool.out.size, 0, "given back when it returned");
  });

  await t.step("fragments grow through the pool; outgrown buffers go back at once", () => {
    const pool = new CheckingPool();
    const { seen, handler } = watch(pool);
    const parser = new FrameParser({ ...SERVER, lend: pool });
    const input = encodeMessage(filled(100_000), { mask: true, fragmentSize: 5000 });
    for (let at = 0; at < input.length; at += 3000) {
      parser.push(input, at, Math.min(at + 3000, input.length), handler);
      assert.ok(pool.out.size <= 1, "one buffer per message in progress");
    }
    assertEvents([msg(seen[0].data)], [msg(filled(100_000))]);
    assert.ok(pool.acquired > 1);
    assert.equal(pool.out.size, 0);
  });

  await t.step("a throwing handler still gives the buffer back", () => {
    const pool = new CheckingPool();
    const parser = new FrameParser({ ...SERVER, lend: pool });
    const input = frame(0x2, filled(5000));
    const handler: FrameHandler = {
      onMessage() {
        throw new Error("boom");
      },
      onPing() {},
      onPong() {},
      onClose() {},
      onFail() {},
    };
    parser.push(input, 0, 100, handler);
    assert.throws(() => parser.push(input, 100, input.length, handler), /boom/);
    assert.equal(pool.out.size, 0);
  });

  await t.step("a message dropped half way (failure, reset) gives its buffer back", () => {
    for (const end of ["fail", "reset"] as const) {
      const pool = new CheckingPool();
      const recorder = new Recorder();
      const parser = new FrameParser({ ...SERVER, lend: pool });
      const first = frame(0x2, filled(9000), { fin: false });
      parser.push(first, 0, first.length, recorder);
      assert.equal(pool.out.size, 1);
      if (end === "fail") {
        const bad = frame(0x1, "x"); // a new message inside a fragmented one: 1002
        parser.push(bad, 0, bad.length, recorder);
        assertEvents(recorder.events, [fail(1002)]);
      } else {
        parser.reset();
      }
      assert.equal(pool.out.size, 0, end);
    }
  });
});

Deno.test("parser: finished, reset and re-entrancy", async (t) => {
  await t.step("finished reflects close and failure", () => {
    const parser = new FrameParser(SERVER);
    const recorder = new Recorder();
    assert.equal(parser.finished, false);
    const bytes = frame(0x8, [3, 0xe8]);
    assert.equal(parser.push(bytes, 0, bytes.length, recorder), false);
    assert.equal(parser.finished, true);
    const more = frame(0x1, "x");
    assert.equal(parser.push(more, 0, more.length, recorder), false);
    assertEvents(recorder.events, [close(1000)]);
  });
  await t.step("the handler sees finished === true inside onClose and onFail", () => {
    const parser = new FrameParser(SERVER);
    let seen: boolean[] = [];
    const handler: FrameHandler = {
      onMessage: () => seen.push(parser.finished),
      onPing: () => {},
      onPong: () => {},
      onClose: () => seen.push(parser.finished),
      onFail: () => seen.push(parser.finished),
    };
    const bytes = concat(frame(0x1, "a"), frame(0x8));
    parser.push(bytes, 0, bytes.length, handler);
    assert.deepStrictEqual(seen, [false, true]);
    seen = [];
    const other = new FrameParser(SERVER);
    const bad = frame(0x3);
    other.push(bad, 0, bad.length, { ...handler, onFail: () => seen.push(other.finished) });
    assert.deepStrictEqual(seen, [true]);
  });
  await t.step("reset drops a partial frame and a partial message", () => {
    const parser = new FrameParser(SERVER);
    const recorder = new Recorder();
    const partial = concat(frame(0x1, "abc", { fin: false }), frame(0x0, "def").subarray(0, 7));
    parser.push(partial, 0, partial.length, recorder);
    parser.reset();
    const fresh = concat(frame(0x2, [1]), frame(0x1, "new"));
    assert.equal(parser.push(fresh, 0, fresh.length, recorder), true);
    assertEvents(recorder.events, [msg([1]), msg("new")]);
  });
  await t.step("reset after a failure makes the parser usable again", () => {
    const parser = new FrameParser(CLIENT);
    const recorder = new Recorder();
    const bad = frame(0x1, "x", { mask: true });
    parser.push(bad, 0, bad.length, recorder);
    assert.equal(parser.finished, true);
    parser.reset();
    assert.equal(parser.finished, false);
    const good = frame(0x1, "y", { mask: false });
    const other = new Recorder();
    parser.push(good, 0, good.length, other);
    assertEvents(other.events, [msg("y")]);
  });
  await t.step("reset from inside a handler stops the push in progress", () => {
    const parser = new FrameParser(SERVER);
    const seen: string[] = [];
    const handler: FrameHandler = {
      onMessage: (data) => {
        seen.push(data as string);
        if (data === "stop") parser.reset();
      },
      onPing: () => seen.push("ping"),
      onPong: () => {},
      onClose: () => seen.push("close"),
      onFail: () => seen.push("fail"),
    };
    const bytes = concat(frame(0x1, "a"), frame(0x1, "stop"), frame(0x9), frame(0x1, "b"));
    assert.equal(parser.push(bytes, 0, bytes.length, handler), true);
    assert.deepStrictEqual(seen, ["a", "stop"]);
    const next = frame(0x1, "c");
    parser.push(next, 0, next.length, handler);
    assert.deepStrictEqual(seen, ["a", "stop", "c"]);
  });
  await t.step("an empty push does nothing", () => {
    const parser = new FrameParser(SERVER);
    const recorder = new Recorder();
    assert.equal(parser.push(new Uint8Array(0), 0, 0, recorder), true);
    assert.equal(parser.push(new Uint8Array(10), 5, 5, recorder), true);
    assertEvents(recorder.events, []);
  });
});

Deno.test("parser: invalid options throw FrameParserOptionsError", () => {
  const bad: unknown[] = [
    { role: "peer" },
    { role: "server", maxMessageSize: -1 },
    { role: "server", maxMessageSize: 1.5 },
    { role: "client", maxFragments: 0 },
    { role: "client", maxFragments: NaN },
  ];
  for (const options of bad) {
    assert.throws(
      () => new FrameParser(options as FrameParserOptions),
      (err: unknown) =>
        err instanceof FrameParserOptionsError && err instanceof FdwsError &&
        err.code === "INVALID_OPTIONS",
    );
  }
  new FrameParser({ role: "server", maxMessageSize: 0, maxFragments: 1 });
  new FrameParser({ role: "client", maxMessageSize: Infinity, maxFragments: Infinity });
  assert.throws(
    () => new FrameParser({ role: "client", maxMessageSize: -Infinity }),
    FrameParserOptionsError,
  );
});

Deno.test("parser: without limits, oversized messages still fail cleanly with 1009", async (t) => {
  const unlimited: FrameParserOptions = { role: "server", maxMessageSize: Infinity };
  await t.step("text longer than the engine's longest string fails at the header", () => {
    // 2^29 - 24 UTF-8 bytes always fit in a string; one more byte is refused up front.
    expectEvents(frame(0x1, [], { declared: 2 ** 29 - 23 }), [fail(1009)], unlimited);
    expectEvents(
      concat(frame(0x1, "a", { fin: false }), frame(0x0, [], { declared: 2 ** 29 - 24 })),
      [fail(1009)],
      unlimited,
    );
  });
  // Issue 16 item 2 changed this step: a header announcing 2^50 bytes used to allocate them
  // at once (and fail with 1009); buffers now grow with the payload that arrives, so the
  // header alone reserves nothing and the parser simply waits for its payload.
  await t.step("a header announcing 2^50 bytes reserves nothing and waits", () => {
    expectEvents(
      frame(0x2, [1, 2, 3], { declared: 2 ** 50 }),
      [],
      unlimited,
      { seeds: 1 },
    );
  });
  await t.step("Infinity limits otherwise behave normally", () => {
    const options: FrameParserOptions = { ...unlimited, maxFragments: Infinity };
    expectEvents(
      concat(frame(0x2, [1], { fin: false }), frame(0, [2]), frame(0x1, "ok")),
      [msg([1, 2]), msg("ok")],
      options,
    );
  });
});

Deno.test("parser: Autobahn-style scenarios (cases 1-7, 9, 10)", async (t) => {
  const f = frame;
  await t.step("1.x: text and binary of 0..65536 bytes", () => {
    for (const length of [0, 125, 126, 127, 128, 65535, 65536]) {
      const cfg = { bytewise: length < 200, seeds: 1 };
      expectEvents(f(0x1, "*".repeat(length)), [msg("*".repeat(length))], SERVER, cfg);
      expectEvents(
        f(0x2, new Uint8Array(length).fill(0xfe)),
        [msg(new Uint8Array(length).fill(0xfe))],
        SERVER,
        cfg,
      );
    }
  });
  await t.step("2.x: pings and pongs", () => {
    expectEvents(f(0x9), [ping()]);
    expectEvents(f(0x9, "Hello, world!"), [ping(utf8("Hello, world!"))]);
    expectEvents(f(0x9, new Uint8Array(125).fill(0xfe)), [ping(new Uint8Array(125).fill(0xfe))]);
    expectEvents(f(0x9, new Uint8Array(126).fill(0xfe)), [fail(1002)]);
    expectEvents(concat(f(0xa, "unsolicited"), f(0x9, "ping")), [
      pong(utf8("unsolicited")),
      ping(utf8("ping")),
    ]);
  });
  await t.step("3.x: reserved bits, including on close and after valid frames", () => {
    expectEvents(f(0x1, "Hello", { rsv: 4 }), [fail(1002)]);
    expectEvents(concat(f(0x1, "ok"), f(0x1, "bad", { rsv: 2 }), f(0x9)), [msg("ok"), fail(1002)]);
    expectEvents(concat(f(0x1, "ok"), f(0x1, "bad", { rsv: 3 }), f(0x9)), [msg("ok"), fail(1002)]);
    expectEvents(f(0x2, [0, 0xff], { rsv: 1 }), [fail(1002)]);
    expectEvents(f(0x9, "x", { rsv: 5 }), [fail(1002)]);
    expectEvents(f(0x8, [3, 0xe8], { rsv: 7 }), [fail(1002)]);
  });
  await t.step("5.x: fragmentation with interleaved control frames, chopped", () => {
    const bytes = concat(
      f(0x1, "fragment1", { fin: false }),
      f(0x9, "ping payload"),
      f(0x0, "fragment2"),
    );
    expectEvents(bytes, [ping(utf8("ping payload")), msg("fragment1fragment2")]);
    expectEvents(
      concat(f(0x1, "fragment1", { fin: false }), f(0x0, "fragment2", { fin: false }), f(0x1, "x")),
      [fail(1002)],
    );
    expectEvents(concat(f(0x0, "fragment1"), f(0x1, "fragment2")), [fail(1002)]);
  });
  await t.step("7.1.x: close, then anything", () => {
    expectEvents(concat(f(0x1, "Hello"), f(0x8, [3, 0xe8])), [msg("Hello"), close(1000)]);
    expectEvents(concat(f(0x8, [3, 0xe8]), f(0x8, [3, 0xe8])), [close(1000)]);
    expectEvents(concat(f(0x8, [3, 0xe8]), f(0x9)), [close(1000)]);
    expectEvents(concat(f(0x8, [3, 0xe8]), f(0x1, "x")), [close(1000)]);
    expectEvents(
      concat(f(0x1, "frag", { fin: false }), f(0x8, [3, 0xe8]), f(0x0, "ment")),
      [close(1000)],
    );
    const big = asciiText(256 * 1024);
    expectEvents(
      concat(f(0x1, big), f(0x8, [3, 0xe8]), f(0x9)),
      [msg(big), close(1000)],
      SERVER,
      { bytewise: false, seeds: 1 },
    );
  });
  await t.step("7.3.x / 7.5.1 / 7.7.x / 7.9.x / 7.13.x: close payloads", () => {
    expectEvents(f(0x8), [close(1005)]);
    expectEvents(f(0x8, [0x03]), [fail(1002)]);
    expectEvents(f(0x8, [0x03, 0xe8]), [close(1000)]);
    expectEvents(f(0x8, concat(hex("03e8"), utf8("Hello World!"))), [close(1000, "Hello World!")]);
    expectEvents(f(0x8, concat(hex("03e8"), utf8("*".repeat(123)))), [
      close(1000, "*".repeat(123)),
    ]);
    expectEvents(f(0x8, concat(hex("03e8"), utf8("*".repeat(124)))), [fail(1002)]);
    expectEvents(f(0x8, concat(hex("03e8"), hex(KOSME), hex("eda080"), utf8("edited"))), [
      fail(1007),
    ]);
    for (
      const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
    ) {
      expectEvents(f(0x8, [code >> 8, code & 0xff]), [close(code)]);
    }
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
      expectEvents(f(0x8, [code >> 8, code & 0xff]), [fail(1002)]);
    }
  });
  await t.step("9.x: large messages in many reads and many fragments", () => {
    const text = asciiText(4 * 1024 * 1024);
    const cfg: FeedConfig = { bytewise: false, seeds: 1, largest: 100_000, reads: [65536] };
    expectEvents(frame(0x1, text), [msg(text)], SERVER, cfg);
    for (const fragmentSize of [64, 256, 4096, 65536, 1024 * 1024]) {
      expectEvents(encodeMessage(text, { mask: true, fragmentSize }), [msg(text)], SERVER, {
        bytewise: false,
        seeds: 0,
        reads: [65536],
      });
    }
    const bursts: Uint8Array[] = [];
    const expected: Event[] = [];
    for (let i = 0; i < 1000; i++) {
      bursts.push(frame(0x2, filled(64, i)));
      expected.push(msg(filled(64, i)));
    }
    expectEvents(concat(...bursts), expected, SERVER, { bytewise: false, seeds: 1, reads: [4096] });
  });
  await t.step("10.1.1: 65536 bytes auto-fragmented into 1300-byte frames", () => {
    const text = "*".repeat(65536);
    expectEvents(encodeMessage(text, { mask: true, fragmentSize: 1300 }), [msg(text)], SERVER, {
      bytewise: false,
      seeds: 2,
    });
  });
});

// Byte-level tests of the RFC 6455 frame encoder. Frames are checked against hand-written bytes
// or a minimal decoder written here (independent of the parser under test elsewhere).
import assert from "node:assert/strict";
import {
  encodeCloseFrame,
  encodeControlFrame,
  encodeFrame,
  encodeMessage,
  frameHeaderLength,
  writeFrameHeader,
} from "../../../protocol/frame/encoder.ts";
import { FrameEncodeError } from "../../../protocol/frame/encode_error.ts";
import { applyMask, packMaskKey } from "../../../protocol/frame/mask.ts";
import { CloseCodeError } from "../../../protocol/frame/close_codes.ts";
import { FdwsError } from "../../../errors.ts";
import { filled, hex, toHex, utf8 } from "../../fixtures/bytes.ts";

interface Decoded {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  key: Uint8Array | null;
  payload: Uint8Array;
  /** Bytes this frame occupied. */
  size: number;
}

/** Minimal reference decoder for one frame at `bytes[offset..]`. */
function decode(bytes: Uint8Array, offset = 0): Decoded {
  let p = offset;
  const b0 = bytes[p++];
  const b1 = bytes[p++];
  let length = b1 & 0x7f;
  if (length === 126) {
    length = bytes[p] * 256 + bytes[p + 1];
    p += 2;
  } else if (length === 127) {
    length = 0;
    for (let i = 0; i < 8; i++) length = length * 256 + bytes[p + i];
    p += 8;
  }
  const masked = (b1 & 0x80) !== 0;
  const key = masked ? bytes.slice(p, p + 4) : null;
  if (masked) p += 4;
  const payload = bytes.slice(p, p + length);
  if (key !== null) { for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3]; }
  return {
    fin: (b0 & 0x80) !== 0,
    rsv: (b0 >> 4) & 7,
    opcode: b0 & 0x0f,
    masked,
    key,
    payload,
    size: p + length - offset,
  };
}

/** All frames in a buffer. */
function decodeAll(bytes: Uint8Array): Decoded[] {
  const frames: Decoded[] = [];
  for (let p = 0; p < bytes.length;) {
    const frame = decode(bytes, p);
    frames.push(frame);
    p += frame.size;
  }
  return frames;
}

function isEncodeError(code: string): (err: unknown) => boolean {
  return (err) => err instanceof FrameEncodeError && err instanceof FdwsError && err.code === code;
}

function isCloseError(code: string): (err: unknown) => boolean {
  return (err) => err instanceof CloseCodeError && err instanceof FdwsError && err.code === code;
}

/** A standalone buffer: byte offset 0 and exactly as long as its ArrayBuffer. */
function assertStandalone(frame: Uint8Array): void {
  assert.equal(frame.byteOffset, 0);
  assert.equal(frame.buffer.byteLength, frame.length);
}

Deno.test("encoder: frameHeaderLength", () => {
  const cases: [number, number][] = [
    [0, 2],
    [1, 2],
    [125, 2],
    [126, 4],
    [127, 4],
    [65535, 4],
    [65536, 10],
    [2 ** 32, 10],
    [Number.MAX_SAFE_INTEGER, 10],
  ];
  for (const [length, expected] of cases) {
    assert.equal(frameHeaderLength(length, false), expected, `${length}`);
    assert.equal(frameHeaderLength(length, true), expected + 4, `${length} masked`);
  }
});

Deno.test("encoder: writeFrameHeader", async (t) => {
  await t.step("7-, 16- and 64-bit lengths, shortest form", () => {
    const cases: [number, string][] = [
      [0, "82 00"],
      [5, "82 05"],
      [125, "82 7d"],
      [126, "82 7e 00 7e"],
      [127, "82 7e 00 7f"],
      [65535, "82 7e ff ff"],
      [65536, "82 7f 00 00 00 00 00 01 00 00"],
      [2 ** 32, "82 7f 00 00 00 01 00 00 00 00"],
      [2 ** 32 + 0x01020304, "82 7f 00 00 00 01 01 02 03 04"],
      [Number.MAX_SAFE_INTEGER, "82 7f 00 1f ff ff ff ff ff ff"],
    ];
    for (const [length, expected] of cases) {
      const out = new Uint8Array(14);
      const n = writeFrameHeader(out, 0, 0x2, true, length);
      assert.equal(toHex(out.subarray(0, n)), expected, `${length}`);
      assert.equal(n, frameHeaderLength(length, false));
    }
  });
  await t.step("FIN, every opcode, mask key, offset", () => {
    for (let opcode = 0; opcode < 16; opcode++) {
      for (const fin of [true, false]) {
        const out = new Uint8Array(20).fill(0xee);
        const n = writeFrameHeader(out, 3, opcode, fin, 300, Uint8Array.of(1, 2, 3, 4));
        assert.equal(n, 8);
        assert.equal(
          toHex(out),
          toHex(
            Uint8Array.of(
              0xee,
              0xee,
              0xee,
              (fin ? 0x80 : 0) | opcode,
              0xfe,
              0x01,
              0x2c,
              1,
              2,
              3,
              4,
              ...new Uint8Array(9).fill(0xee),
            ),
          ),
        );
      }
    }
  });
  await t.step("null or omitted key means unmasked", () => {
    const out = new Uint8Array(2);
    assert.equal(writeFrameHeader(out, 0, 0x9, true, 0, null), 2);
    assert.equal(toHex(out), "89 00");
  });
  await t.step("rejects invalid input instead of writing garbage", () => {
    const out = new Uint8Array(14);
    for (const opcode of [-1, 16, 1.5, NaN]) {
      assert.throws(
        () => writeFrameHeader(out, 0, opcode, true, 0),
        isEncodeError("INVALID_OPCODE"),
      );
    }
    for (const length of [-1, 1.5, NaN, 2 ** 53, Infinity]) {
      assert.throws(
        () => writeFrameHeader(out, 0, 1, true, length),
        isEncodeError("INVALID_LENGTH"),
      );
    }
    assert.throws(
      () => writeFrameHeader(out, 0, 1, true, 0, Uint8Array.of(1, 2, 3)),
      isEncodeError("INVALID_MASK_KEY"),
    );
    assert.throws(() => writeFrameHeader(out, 13, 1, true, 0), isEncodeError("BUFFER_TOO_SMALL"));
    assert.throws(() => writeFrameHeader(out, -1, 1, true, 0), isEncodeError("BUFFER_TOO_SMALL"));
    assert.throws(
      () => writeFrameHeader(new Uint8Array(13), 0, 1, true, 70000, Uint8Array.of(1, 2, 3, 4)),
      isEncodeError("BUFFER_TOO_SMALL"),
    );
    writeFrameHeader(new Uint8Array(14), 0, 1, true, 70000, Uint8Array.of(1, 2, 3, 4));
  });
});

Deno.test("encoder: packMaskKey and applyMask", async (t) => {
  await t.step("RFC 6455 §5.7 masked Hello", () => {
    const data = utf8("Hello");
    applyMask(data, 0, 5, packMaskKey(hex("37 fa 21 3d")));
    assert.equal(toHex(data), "7f 9f 4d 51 58");
  });
  await t.step("packMaskKey reads 4 bytes at an offset and rejects short keys", () => {
    assert.equal(packMaskKey(Uint8Array.of(9, 1, 2, 3, 4), 1), 0x04030201);
    assert.equal(packMaskKey(Uint8Array.of(0xff, 0xff, 0xff, 0xff)), 0xffffffff);
    assert.throws(() => packMaskKey(Uint8Array.of(1, 2, 3)), isEncodeError("INVALID_MASK_KEY"));
    assert.throws(
      () => packMaskKey(Uint8Array.of(1, 2, 3, 4), 1),
      isEncodeError("INVALID_MASK_KEY"),
    );
  });
  await t.step("matches a byte-by-byte reference at every alignment and length", () => {
    const key = Uint8Array.of(0x9e, 0x01, 0xff, 0x5a);
    const packed = packMaskKey(key);
    const lengths = [0, 1, 2, 3, 4, 5, 31, 32, 33, 63, 64, 65, 1023, 1024, 1025, 1029, 4096, 5003];
    for (const length of lengths) {
      for (let offset = 0; offset < 8; offset++) {
        const source = filled(length, length * 8 + offset);
        const expected = source.map((b, i) => b ^ key[i & 3]);
        // Inside a larger buffer at an odd position; the surrounding bytes must not change.
        const backing = new Uint8Array(length + 24).fill(0x55);
        const view = backing.subarray(offset, offset + length + 16);
        view.set(source, 8);
        applyMask(view, 8, 8 + length, packed);
        assert.equal(toHex(view.subarray(8, 8 + length)), toHex(expected), `${length}@${offset}`);
        assert.ok(backing.subarray(0, offset + 8).every((b) => b === 0x55));
        assert.ok(backing.subarray(offset + 8 + length).every((b) => b === 0x55));
      }
    }
  });
  await t.step("continuing with the key rotated by 8 * (n % 4) bits", () => {
    const key = packMaskKey(hex("11 22 33 44"));
    const data = filled(3000);
    const once = data.slice();
    applyMask(once, 0, once.length, key);
    for (const split of [0, 1, 2, 3, 4, 5, 1001, 2999]) {
      const twice = data.slice();
      applyMask(twice, 0, split, key);
      const r = (split % 4) * 8;
      const rotated = r === 0 ? key : ((key >>> r) | (key << (32 - r))) >>> 0;
      applyMask(twice, split, twice.length, rotated);
      assert.equal(toHex(twice), toHex(once), `split ${split}`);
    }
  });
  await t.step("works on several buffers alternately (view cache)", () => {
    const a = filled(5000, 1);
    const b = filled(6000, 2);
    const key = 0xa1b2c3d4;
    const a2 = a.slice();
    const b2 = b.slice();
    for (let i = 0; i < 3; i++) {
      applyMask(a2, 0, a2.length, key);
      applyMask(b2, 0, b2.length, key);
    }
    applyMask(a2, 0, a2.length, key);
    applyMask(b2, 0, b2.length, key);
    assert.equal(toHex(a2), toHex(a));
    assert.equal(toHex(b2), toHex(b));
  });
});

Deno.test("encoder: encodeFrame", async (t) => {
  await t.step("unmasked text and binary (RFC 6455 §5.7)", () => {
    assert.equal(toHex(encodeFrame(0x1, "Hello")), "81 05 48 65 6c 6c 6f");
    assert.equal(toHex(encodeFrame(0x2, Uint8Array.of(1, 2, 3))), "82 03 01 02 03");
    assert.equal(toHex(encodeFrame(0x1, "Hel", { fin: false })), "01 03 48 65 6c");
    assert.equal(toHex(encodeFrame(0x0, "lo")), "80 02 6c 6f");
    assert.equal(toHex(encodeFrame(0x9, "Hello")), "89 05 48 65 6c 6c 6f");
    assert.equal(toHex(encodeFrame(0x1, "")), "81 00");
    assert.equal(toHex(encodeFrame(0x2, new Uint8Array(0))), "82 00");
  });
  await t.step("length boundaries, binary and text", () => {
    for (const length of [0, 1, 125, 126, 127, 65535, 65536, 65537, 200_000]) {
      const data = filled(length);
      for (const frame of [encodeFrame(0x2, data), encodeFrame(0x1, "a".repeat(length))]) {
        assertStandalone(frame);
        assert.equal(frame.length, frameHeaderLength(length, false) + length);
        const decoded = decode(frame);
        assert.equal(decoded.size, frame.length);
        assert.equal(decoded.payload.length, length);
        assert.equal(decoded.fin, true);
        assert.equal(decoded.rsv, 0);
        assert.equal(decoded.masked, false);
      }
      assert.deepStrictEqual(decode(encodeFrame(0x2, data)).payload, data);
    }
  });
  await t.step("UTF-8: multibyte, surrogate pairs, lone surrogates, large strings", () => {
    const cases = [
      "κόσμε",
      "€",
      "𝄞 music",
      "\uFEFFbom",
      "a\uFFFDb",
      "x".repeat(21845),
      "x".repeat(21846),
      "€".repeat(21845),
      "€".repeat(21846),
      "€".repeat(30000),
      "x".repeat(100_000) + "é",
      "é" + "x".repeat(100_000),
      "x".repeat(100_000),
      "😀".repeat(20000),
    ];
    for (const text of cases) {
      for (const mask of [false, true]) {
        const frame = encodeFrame(0x1, text, { mask });
        assertStandalone(frame);
        const decoded = decode(frame);
        assert.equal(decoded.size, frame.length);
        assert.equal(decoded.masked, mask);
        assert.equal(toHex(decoded.payload), toHex(utf8(text)), `${text.slice(0, 10)}…`);
      }
    }
    // Lone surrogates become U+FFFD (EF BF BD), as with TextEncoder.
    assert.equal(toHex(decode(encodeFrame(0x1, "a\uD800b")).payload), "61 ef bf bd 62");
    assert.equal(toHex(decode(encodeFrame(0x1, "\uDC00")).payload), "ef bf bd");
  });
  await t.step("a binary opcode with a string payload carries its UTF-8 bytes", () => {
    assert.equal(toHex(encodeFrame(0x2, "é")), "82 02 c3 a9");
  });
  await t.step("masked frames: mask bit, key in the header, payload masked with it", () => {
    const data = filled(1500);
    const before = data.slice();
    const frame = encodeFrame(0x2, data, { mask: true });
    assert.deepStrictEqual(data, before, "the caller's payload is not modified");
    assert.equal(frame.length, 2 + 2 + 4 + 1500);
    assert.equal(frame[1] & 0x80, 0x80);
    const decoded = decode(frame);
    assert.deepStrictEqual(decoded.payload, data);
    assertStandalone(frame);
  });
  await t.step("every masked frame gets a fresh key", () => {
    const keys = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      keys.add(toHex(decode(encodeFrame(0x1, "k", { mask: true })).key!));
    }
    // 2000 draws from 2^32 values: a collision is possible but more than one is not plausible.
    assert.ok(keys.size >= 1999, `${keys.size} distinct keys`);
  });
  await t.step("frames are independent, reusable buffers", () => {
    const a = encodeFrame(0x1, "same");
    const b = encodeFrame(0x1, "same");
    assert.notEqual(a.buffer, b.buffer);
    a[2] = 0;
    assert.equal(toHex(b), "81 04 73 61 6d 65");
    const data = Uint8Array.of(1, 2, 3);
    const frame = encodeFrame(0x2, data);
    data[0] = 9;
    assert.equal(toHex(frame), "82 03 01 02 03");
  });
  await t.step("control frames: 125 bytes fine, more or not FIN rejected", () => {
    for (const opcode of [0x8, 0x9, 0xa]) {
      assert.equal(encodeFrame(opcode, filled(125)).length, 127);
      assert.equal(encodeFrame(opcode, "x".repeat(125)).length, 127);
      for (const payload of [filled(126), "€".repeat(42), "x".repeat(50_000)]) {
        assert.throws(
          () => encodeFrame(opcode, payload),
          isEncodeError("CONTROL_PAYLOAD_TOO_LARGE"),
        );
      }
      assert.throws(
        () => encodeFrame(opcode, "", { fin: false }),
        isEncodeError("FRAGMENTED_CONTROL_FRAME"),
      );
    }
    assert.equal(encodeFrame(0x9, "€".repeat(41) + "xx").length, 127);
  });
  await t.step("reserved and invalid opcodes are rejected", () => {
    for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf, 16, -1, 1.5]) {
      assert.throws(() => encodeFrame(opcode, ""), isEncodeError("INVALID_OPCODE"));
    }
  });
});

Deno.test("encoder: encodeMessage", async (t) => {
  await t.step("one frame by default; opcode from the data type or `binary`", () => {
    assert.equal(toHex(encodeMessage("Hi")), "81 02 48 69");
    assert.equal(toHex(encodeMessage(Uint8Array.of(7))), "82 01 07");
    assert.equal(toHex(encodeMessage("Hi", { binary: true })), "82 02 48 69");
    assert.equal(toHex(encodeMessage(utf8("Hi"), { binary: false })), "81 02 48 69");
    assert.equal(toHex(encodeMessage("")), "81 00");
  });
  await t.step("fragments: opcode on the first, continuation after, FIN on the last", () => {
    assert.equal(toHex(encodeMessage("abc", { fragmentSize: 2 })), "01 02 61 62 80 01 63");
    assert.equal(
      toHex(encodeMessage(Uint8Array.of(1, 2, 3, 4, 5, 6), { fragmentSize: 3 })),
      "02 03 01 02 03 80 03 04 05 06",
    );
    assert.equal(toHex(encodeMessage("abc", { fragmentSize: 3 })), "81 03 61 62 63");
    assert.equal(toHex(encodeMessage("abc", { fragmentSize: 100 })), "81 03 61 62 63");
    assert.equal(toHex(encodeMessage("", { fragmentSize: 1 })), "81 00");
    assert.equal(toHex(encodeMessage("ab", { fragmentSize: 1 })), "01 01 61 80 01 62");
  });
  await t.step("fragment sizes and total sizes across length encodings", () => {
    for (
      const [length, fragmentSize] of [[10, 3], [1000, 125], [1000, 126], [200_000, 65536], [
        200_000,
        70_000,
      ], [131_072, 65536]]
    ) {
      for (const mask of [false, true]) {
        const data = filled(length);
        const out = encodeMessage(data, { fragmentSize, mask });
        assertStandalone(out);
        const frames = decodeAll(out);
        assert.equal(frames.length, Math.ceil(length / fragmentSize));
        frames.forEach((frame, i) => {
          assert.equal(frame.opcode, i === 0 ? 0x2 : 0x0);
          assert.equal(frame.fin, i === frames.length - 1);
          assert.equal(frame.masked, mask);
          assert.equal(frame.rsv, 0);
          assert.equal(frame.payload.length, Math.min(fragmentSize, length - i * fragmentSize));
        });
        const joined = new Uint8Array(length);
        let o = 0;
        for (const frame of frames) {
          joined.set(frame.payload, o);
          o += frame.payload.length;
        }
        assert.deepStrictEqual(joined, data);
      }
    }
  });
  await t.step("text may be split inside a UTF-8 sequence", () => {
    const frames = decodeAll(encodeMessage("€𝄞", { fragmentSize: 2 }));
    assert.deepStrictEqual(
      frames.map((f) => toHex(f.payload)),
      ["e2 82", "ac f0", "9d 84", "9e"],
    );
    assert.equal(frames[0].opcode, 0x1);
  });
  await t.step("masked fragments each carry their own key", () => {
    const frames = decodeAll(encodeMessage(filled(400), { fragmentSize: 10, mask: true }));
    const keys = new Set(frames.map((f) => toHex(f.key!)));
    assert.ok(keys.size >= frames.length - 1);
  });
  await t.step("invalid fragment sizes are rejected", () => {
    for (const fragmentSize of [0, -1, 1.5, NaN, Infinity]) {
      assert.throws(
        () => encodeMessage("abc", { fragmentSize }),
        isEncodeError("INVALID_FRAGMENT_SIZE"),
      );
    }
  });
});

Deno.test("encoder: encodeCloseFrame", async (t) => {
  await t.step("no code: empty payload", () => {
    assert.equal(toHex(encodeCloseFrame()), "88 00");
    const masked = encodeCloseFrame(undefined, "", true);
    assert.equal(masked.length, 6);
    assert.equal(masked[1], 0x80);
  });
  await t.step("code, code + reason, masked", () => {
    assert.equal(toHex(encodeCloseFrame(1000)), "88 02 03 e8");
    assert.equal(toHex(encodeCloseFrame(4999, "ok")), "88 04 13 87 6f 6b");
    const decoded = decode(encodeCloseFrame(1001, "bye ☃", true));
    assert.equal(decoded.masked, true);
    assert.equal(decoded.opcode, 0x8);
    assert.equal(decoded.fin, true);
    assert.equal(toHex(decoded.payload), toHex(Uint8Array.of(0x03, 0xe9, ...utf8("bye ☃"))));
  });
  await t.step("reason of 123 UTF-8 bytes fits, 124 does not", () => {
    assert.equal(encodeCloseFrame(1000, "r".repeat(123)).length, 2 + 125);
    assert.equal(encodeCloseFrame(1000, "r".repeat(120) + "€").length, 2 + 125);
    for (
      const reason of ["r".repeat(124), "r".repeat(121) + "€", "€".repeat(42), "x".repeat(1e6)]
    ) {
      assert.throws(() => encodeCloseFrame(1000, reason), isCloseError("CLOSE_REASON_TOO_LONG"));
    }
  });
  await t.step("codes that may not be sent are rejected", () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535, 1000.5, -1000]) {
      assert.throws(() => encodeCloseFrame(code), isCloseError("INVALID_CLOSE_CODE"));
    }
    for (const code of [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999]) {
      assert.equal(
        decode(encodeCloseFrame(code)).payload[0] * 256 + decode(encodeCloseFrame(code)).payload[1],
        code,
      );
    }
  });
  await t.step("a reason without a code is rejected", () => {
    assert.throws(() => encodeCloseFrame(undefined, "why"), isCloseError("INVALID_CLOSE_CODE"));
  });
});

Deno.test("encoder: encodeControlFrame", async (t) => {
  await t.step("ping and pong, empty, bytes and text, masked", () => {
    assert.equal(toHex(encodeControlFrame(0x9)), "89 00");
    assert.equal(toHex(encodeControlFrame(0xa, Uint8Array.of(1, 2))), "8a 02 01 02");
    assert.equal(toHex(encodeControlFrame(0x9, "hi")), "89 02 68 69");
    const decoded = decode(encodeControlFrame(0xa, "masked", true));
    assert.equal(decoded.masked, true);
    assert.equal(new TextDecoder().decode(decoded.payload), "masked");
  });
  await t.step("125 bytes fine, 126 rejected", () => {
    assert.equal(encodeControlFrame(0x9, filled(125)).length, 127);
    assert.throws(
      () => encodeControlFrame(0x9, filled(126)),
      isEncodeError("CONTROL_PAYLOAD_TOO_LARGE"),
    );
    assert.throws(
      () => encodeControlFrame(0xa, "é".repeat(63)),
      isEncodeError("CONTROL_PAYLOAD_TOO_LARGE"),
    );
  });
  await t.step("only ping and pong", () => {
    for (const opcode of [0x1, 0x8, 0xb]) {
      assert.throws(
        () => encodeControlFrame(opcode as 0x9, new Uint8Array(0)),
        isEncodeError("INVALID_OPCODE"),
      );
    }
  });
});

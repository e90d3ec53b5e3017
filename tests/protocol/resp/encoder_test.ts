// The RESP command encoder: whole commands and the in-place primitives the hot path uses.
import assert from "node:assert/strict";
import {
  arrayHeaderSize,
  bulkSize,
  decimalLength,
  encodeCommand,
  writeArrayHeader,
  writeBulk,
  writeBulkHeader,
  writeCrlf,
  writeDecimal,
} from "../../../protocol/resp/encoder.ts";
import { latin1, utf8 } from "../../fixtures/bytes.ts";

const text = (b: Uint8Array): string => new TextDecoder().decode(b);

Deno.test("resp encoder", async (t) => {
  await t.step("decimal numbers of every length, as String() writes them", () => {
    const values = [0, 1, 9, 10, 99, 100, 65535, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER];
    for (const n of values) {
      assert.equal(decimalLength(n), String(n).length, `length of ${n}`);
      const buf = new Uint8Array(20).fill(0xee);
      const end = writeDecimal(buf, 2, n);
      assert.equal(end, 2 + String(n).length);
      assert.equal(text(buf.subarray(2, end)), String(n));
      assert.equal(buf[1], 0xee, "nothing written before");
      assert.equal(buf[end], 0xee, "nothing written after");
    }
  });

  await t.step("sizes match what the writers write", () => {
    for (const n of [0, 3, 10, 1000]) {
      const buf = new Uint8Array(16);
      assert.equal(writeArrayHeader(buf, 0, n), arrayHeaderSize(n));
      assert.equal(text(buf.subarray(0, arrayHeaderSize(n))), `*${n}\r\n`);
    }
    for (const len of [0, 1, 9, 10, 12345]) {
      const payload = new Uint8Array(len).fill(0x61);
      const buf = new Uint8Array(bulkSize(len) + 4);
      assert.equal(writeBulk(buf, 2, payload), 2 + bulkSize(len));
      assert.equal(text(buf.subarray(2, 2 + bulkSize(len))), `$${len}\r\n${"a".repeat(len)}\r\n`);
    }
  });

  await t.step("a bulk string assembled in place equals one written whole", () => {
    const head = utf8("HEAD");
    const body = utf8("body");
    const inPlace = new Uint8Array(bulkSize(8));
    let at = writeBulkHeader(inPlace, 0, 8);
    inPlace.set(head, at);
    inPlace.set(body, at + 4);
    at = writeCrlf(inPlace, at + 8);
    assert.equal(at, inPlace.length);
    const whole = new Uint8Array(bulkSize(8));
    writeBulk(whole, 0, utf8("HEADbody"));
    assert.deepEqual(inPlace, whole);
  });

  await t.step("commands: text as UTF-8, numbers in decimal, bytes verbatim", () => {
    assert.equal(
      text(encodeCommand(["SET", "k€y", 42])),
      "*3\r\n$3\r\nSET\r\n$5\r\nk€y\r\n$2\r\n42\r\n",
    );
    const binary = new Uint8Array([0, 13, 10, 255]);
    const out = encodeCommand(["PUBLISH", "c", binary]);
    assert.deepEqual(
      out,
      new Uint8Array([
        ...latin1("*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$4\r\n"),
        0,
        13,
        10,
        255,
        13,
        10,
      ]),
    );
    assert.equal(text(encodeCommand([])), "*0\r\n");
    assert.equal(text(encodeCommand([""])), "*1\r\n$0\r\n\r\n");
  });
});

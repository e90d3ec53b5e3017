// Generic decoding of complete replies into JavaScript values, every RESP2/RESP3 type.
import assert from "node:assert/strict";
import { RespError } from "../../../protocol/resp/errors.ts";
import { decodeReply, RespPush, type RespValue } from "../../../protocol/resp/value.ts";
import { latin1, utf8 } from "../../fixtures/bytes.ts";

const decode = (text: string | Uint8Array, bytes = false): RespValue => {
  const buf = typeof text === "string" ? latin1(text) : text;
  return decodeReply(buf, 0, buf.length, { bytes });
};

Deno.test("resp value decoding", async (t) => {
  await t.step("scalars", () => {
    assert.equal(decode("+OK\r\n"), "OK");
    assert.equal(decode(":42\r\n"), 42);
    assert.equal(decode(":-9007199254740993\r\n"), -9007199254740993n);
    assert.equal(decode("(123456789012345678901234567890\r\n"), 123456789012345678901234567890n);
    assert.equal(decode(",1.5\r\n"), 1.5);
    assert.equal(decode(",inf\r\n"), Infinity);
    assert.equal(decode(",-inf\r\n"), -Infinity);
    assert.ok(Number.isNaN(decode(",nan\r\n")));
    assert.equal(decode("#t\r\n"), true);
    assert.equal(decode("#f\r\n"), false);
    assert.equal(decode("_\r\n"), null);
    assert.equal(decode("$-1\r\n"), null);
    assert.equal(decode("*-1\r\n"), null);
  });

  await t.step("strings: UTF-8 text, or byte copies", () => {
    const wire = new Uint8Array([...latin1("$4\r\n"), ...utf8("€"), 0xff, ...latin1("\r\n")]);
    assert.equal(decode(utf8("$3\r\n€\r\n")), "€");
    const raw = decode(wire, true) as Uint8Array;
    assert.deepEqual(raw, new Uint8Array([0xe2, 0x82, 0xac, 0xff]));
    assert.notEqual(raw.buffer, wire.buffer, "a copy, not a view");
    assert.equal(decode("=15\r\ntxt:Some string\r\n"), "Some string");
    assert.equal(decode("$0\r\n\r\n"), "");
  });

  await t.step("errors are values with their kind", () => {
    const e = decode("-WRONGTYPE Operation against a key\r\n");
    assert.ok(e instanceof RespError);
    assert.equal(e.kind, "WRONGTYPE");
    assert.equal(e.message, "WRONGTYPE Operation against a key");
    const blob = decode("!21\r\nSYNTAX invalid syntax\r\n");
    assert.ok(blob instanceof RespError);
    assert.equal(blob.kind, "SYNTAX");
  });

  await t.step("aggregates: arrays, sets, maps, pushes; attributes skipped", () => {
    assert.deepEqual(decode("*3\r\n:1\r\n*1\r\n+x\r\n$-1\r\n"), [1, ["x"], null]);
    assert.deepEqual(decode("~2\r\n+a\r\n+b\r\n"), ["a", "b"]);
    assert.deepEqual(
      decode("%2\r\n+first\r\n:1\r\n+second\r\n#f\r\n"),
      new Map<RespValue, RespValue>([["first", 1], ["second", false]]),
    );
    const push = decode(">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n");
    assert.ok(push instanceof RespPush);
    assert.equal(push.kind, "message");
    assert.deepEqual(push.items, ["message", "c", "hi"]);
    assert.deepEqual(decode("|1\r\n+ttl\r\n:3600\r\n*1\r\n+v\r\n"), ["v"]);
    assert.deepEqual(decode("*0\r\n"), []);
    assert.deepEqual(decode("%0\r\n"), new Map());
  });
});

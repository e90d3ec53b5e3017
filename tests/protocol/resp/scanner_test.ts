// The resumable RESP scanner: every RESP2/RESP3 type, fed whole, byte by byte and in seeded
// random chunkings (each chunk in a fresh buffer, the reply's start moved between calls, as
// a connection that compacts its buffer does); limits and malformed input.
import assert from "node:assert/strict";
import { RespProtocolError } from "../../../protocol/resp/errors.ts";
import { type RespLimits, RespScanner } from "../../../protocol/resp/scanner.ts";
import { concat, latin1 } from "../../fixtures/bytes.ts";
import { chunkings } from "../../fixtures/chunking.ts";

/** Complete replies, one per entry, covering every type. */
const REPLIES: readonly string[] = [
  "+OK\r\n",
  "-ERR unknown command\r\n",
  ":0\r\n",
  ":-12345\r\n",
  "$0\r\n\r\n",
  "$5\r\nhe\r\nl\r\n", // CR LF inside a bulk string is content
  "$-1\r\n",
  "*-1\r\n",
  "*0\r\n",
  "*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$2\r\nhi\r\n",
  "*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n*1\r\n+deep\r\n",
  "_\r\n",
  "#t\r\n",
  "#f\r\n",
  ",3.25\r\n",
  ",-inf\r\n",
  "(3492890328409238509324850943850943825024385\r\n",
  "!21\r\nSYNTAX invalid syntax\r\n",
  "=15\r\ntxt:Some string\r\n",
  "%2\r\n+first\r\n:1\r\n+second\r\n*2\r\n:2\r\n:3\r\n",
  "~3\r\n+a\r\n+b\r\n:1\r\n",
  ">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$3\r\nabc\r\n",
  "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n",
  "%0\r\n",
  "~0\r\n",
];

/** Feeds `wire` in `sizes` pieces; returns the end offsets of the replies found. */
function feed(wire: Uint8Array, sizes: number[], limits?: RespLimits): number[] {
  const scanner = new RespScanner(limits);
  const ends: number[] = [];
  // The unconsumed bytes live in a fresh buffer after each chunk, behind a random amount
  // of junk: the reply's start moves between calls.
  let pending = new Uint8Array(0);
  let consumed = 0;
  let offset = 0;
  for (const size of sizes) {
    const chunk = wire.subarray(offset, offset + size);
    offset += size;
    const shift = (offset * 7) % 5;
    const buf = new Uint8Array(shift + pending.length + chunk.length).fill(0x0d);
    buf.set(pending, shift);
    buf.set(chunk, shift + pending.length);
    let start = shift;
    for (;;) {
      const end = scanner.scan(buf, start, buf.length);
      if (end < 0) break;
      consumed += end - start;
      ends.push(consumed);
      start = end;
    }
    pending = buf.slice(start);
  }
  assert.equal(pending.length, 0, "bytes left over");
  return ends;
}

Deno.test("resp scanner", async (t) => {
  await t.step("every reply type, alone and all in a row, under every chunking", () => {
    REPLIES.forEach((reply, i) => {
      const wire = latin1(reply);
      for (const c of chunkings(wire.length, i + 1)) {
        assert.deepEqual(feed(wire, c.sizes), [wire.length], `${JSON.stringify(reply)} ${c.name}`);
      }
    });
    const wire = concat(...REPLIES.map(latin1));
    const expected: number[] = [];
    let at = 0;
    for (const r of REPLIES) expected.push(at += r.length);
    for (const c of chunkings(wire.length, 99)) {
      assert.deepEqual(feed(wire, c.sizes), expected, c.name);
    }
  });

  await t.step("a large bulk string arriving in many reads completes once", () => {
    const payload = new Uint8Array(300_000).fill(0x0d);
    const wire = concat(latin1(`$${payload.length}\r\n`), payload, latin1("\r\n"));
    const sizes = Array<number>(Math.ceil(wire.length / 4096)).fill(4096);
    sizes[sizes.length - 1] = wire.length - 4096 * (sizes.length - 1);
    assert.deepEqual(feed(wire, sizes), [wire.length]);
  });

  await t.step("inProgress and reset", () => {
    const scanner = new RespScanner();
    const wire = latin1("*2\r\n:1\r\n:2\r\n");
    assert.equal(scanner.scan(wire, 0, 8), -1);
    assert.equal(scanner.inProgress, true);
    scanner.reset();
    assert.equal(scanner.inProgress, false);
    // After a reset the scanner reads from the given start again.
    assert.equal(scanner.scan(wire, 4, 8), 8);
  });

  await t.step("malformed input is refused with RESP_SYNTAX", () => {
    const bad = [
      "@what\r\n",
      ":12a\r\n",
      ":\r\n",
      "$3\r\nabcd\r\n",
      "$-2\r\n",
      "$x\r\n",
      "+OK\rX",
      "_x\r\n",
      "#x\r\n",
      "%-1\r\n",
      "*-2\r\n",
    ];
    for (const input of bad) {
      assert.throws(
        () => new RespScanner().scan(latin1(input), 0, input.length),
        (e: unknown) => e instanceof RespProtocolError && e.code === "RESP_SYNTAX",
        JSON.stringify(input),
      );
    }
  });

  await t.step("streamed strings and aggregates are refused with RESP_UNSUPPORTED", () => {
    for (const input of ["$?\r\n;4\r\nHell\r\n;0\r\n", "*?\r\n:1\r\n.\r\n"]) {
      assert.throws(
        () => new RespScanner().scan(latin1(input), 0, input.length),
        (e: unknown) => e instanceof RespProtocolError && e.code === "RESP_UNSUPPORTED",
      );
    }
  });

  await t.step("limits: bulk length, aggregate length, depth, line length", () => {
    const limited = (input: string, limits: RespLimits): void => {
      assert.throws(
        () => new RespScanner(limits).scan(latin1(input), 0, input.length),
        (e: unknown) => e instanceof RespProtocolError && e.code === "RESP_LIMIT",
        JSON.stringify(input),
      );
    };
    // Refused from the header alone, before the content arrives.
    limited("$1025\r\n", { maxBulkLength: 1024 });
    limited("*11\r\n", { maxAggregateLength: 10 });
    limited("%6\r\n", { maxAggregateLength: 10 });
    limited("*1\r\n*1\r\n*1\r\n:1\r\n", { maxDepth: 2 });
    limited(`+${"a".repeat(100)}`, { maxLineLength: 64 });
    // At the limits, accepted.
    const ok = (input: string, limits: RespLimits): void => {
      assert.equal(new RespScanner(limits).scan(latin1(input), 0, input.length), input.length);
    };
    ok(`$1024\r\n${"x".repeat(1024)}\r\n`, { maxBulkLength: 1024 });
    ok("*1\r\n*1\r\n:1\r\n", { maxDepth: 2 });
    ok(`+${"a".repeat(64)}\r\n`, { maxLineLength: 64 });
    // An incomplete line within the limit waits for more.
    assert.equal(new RespScanner({ maxLineLength: 64 }).scan(latin1("+aaaa"), 0, 5), -1);
  });
});

// The allocation-free reply reader: tokens, positions, skipping, comparisons.
import assert from "node:assert/strict";
import { RespCursor, RespType } from "../../../protocol/resp/cursor.ts";
import { latin1 } from "../../fixtures/bytes.ts";

function cursorOver(text: string): RespCursor {
  const c = new RespCursor();
  const buf = latin1(text);
  c.reset(buf, 0, buf.length);
  return c;
}

Deno.test("resp cursor", async (t) => {
  await t.step("a pub/sub message: positions of the channel and the payload", () => {
    const c = cursorOver("*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$5\r\nh\r\ni!\r\n");
    assert.equal(c.next(), RespType.ARRAY);
    assert.equal(c.length, 3);
    c.next();
    assert.ok(c.is("MESSAGE"));
    assert.ok(c.equals(latin1("message")));
    assert.ok(!c.equals(latin1("messag")));
    c.next();
    assert.equal(c.text(), "room");
    c.next();
    assert.equal(c.type, RespType.BULK_STRING);
    assert.equal(c.text(), "h\r\ni!");
    assert.deepEqual(c.view(), latin1("h\r\ni!"));
    assert.ok(c.done);
  });

  await t.step("integers, booleans, nulls", () => {
    const c = cursorOver("*6\r\n:-7\r\n#t\r\n#f\r\n_\r\n$-1\r\n*-1\r\n");
    c.next();
    c.next();
    assert.equal(c.integer, -7);
    c.next();
    assert.equal(c.integer, 1);
    c.next();
    assert.equal(c.integer, 0);
    assert.equal(c.next(), RespType.NULL);
    assert.equal(c.next(), RespType.BULK_STRING);
    assert.equal(c.length, -1);
    assert.equal(c.next(), RespType.ARRAY);
    assert.equal(c.length, -1);
    assert.ok(c.done);
  });

  await t.step("skip() passes over whole nested values; attributes are invisible", () => {
    const c = cursorOver(
      "*3\r\n%2\r\n+a\r\n*2\r\n:1\r\n:2\r\n+b\r\n$3\r\nxyz\r\n|1\r\n+meta\r\n:1\r\n+after\r\n:9\r\n",
    );
    c.next();
    c.skip(); // the map, with its nested array
    c.next();
    assert.equal(c.text(), "after");
    c.next();
    assert.equal(c.integer, 9);
    assert.ok(c.done);
  });

  await t.step("skipElements after next(), and on a scalar does nothing", () => {
    const c = cursorOver("*2\r\n~2\r\n+x\r\n+y\r\n:5\r\n");
    c.next();
    c.next();
    assert.equal(c.type, RespType.SET);
    c.skipElements();
    c.next();
    c.skipElements();
    assert.equal(c.integer, 5);
    assert.ok(c.done);
  });
});

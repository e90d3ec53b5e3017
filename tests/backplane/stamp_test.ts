// The 20-byte message stamp: round trips at the edges of every field, foreign bytes refused.
import assert from "node:assert/strict";
import {
  formatNodeId,
  MAX_NODE_ID,
  newEpoch,
  newNodeId,
  readStamp,
  Stamp,
  STAMP_SIZE,
  writeStamp,
} from "../../backplane/stamp.ts";

Deno.test("backplane stamp", async (t) => {
  await t.step("round trip at the edges of every field, at an offset", () => {
    const cases: [number, number, number, boolean][] = [
      [1, 1, 1, false],
      [MAX_NODE_ID, 0xffffffff, Number.MAX_SAFE_INTEGER, true],
      [2 ** 32, 2 ** 31, 2 ** 32, false],
      [0xa1b2c3d4e5f6, 7, 2 ** 32 - 1, true],
    ];
    for (const [node, epoch, seq, binary] of cases) {
      const buf = new Uint8Array(STAMP_SIZE + 5).fill(0xee);
      assert.equal(writeStamp(buf, 3, node, epoch, seq, binary), 3 + STAMP_SIZE);
      assert.equal(buf[2], 0xee);
      assert.equal(buf[3 + STAMP_SIZE], 0xee);
      const s = new Stamp();
      assert.ok(readStamp(s, buf, 3, STAMP_SIZE));
      assert.deepEqual([s.node, s.epoch, s.seq, s.binary], [node, epoch, seq, binary]);
    }
  });

  await t.step("foreign bytes are not stamps", () => {
    const s = new Stamp();
    const good = new Uint8Array(STAMP_SIZE);
    writeStamp(good, 0, 5, 5, 5, false);
    assert.ok(!readStamp(s, good, 0, STAMP_SIZE - 1), "too short");
    const badMagic = good.slice();
    badMagic[0] = 0x7b; // '{'
    assert.ok(!readStamp(s, badMagic, 0, STAMP_SIZE));
    const badVersion = good.slice();
    badVersion[1] = 0x20;
    assert.ok(!readStamp(s, badVersion, 0, STAMP_SIZE));
  });

  await t.step("ids and epochs: random, in range, formatted as 12 hex digits", () => {
    const ids = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const id = newNodeId();
      assert.ok(Number.isInteger(id) && id >= 1 && id <= MAX_NODE_ID);
      ids.add(id);
      const e = newEpoch();
      assert.ok(Number.isInteger(e) && e >= 1 && e <= 0xffffffff);
    }
    assert.ok(ids.size > 990);
    assert.equal(formatNodeId(1), "000000000001");
    assert.equal(formatNodeId(MAX_NODE_ID), "ffffffffffff");
  });
});

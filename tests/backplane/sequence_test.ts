// Publisher counters (bounded, epoch restart) and the receiver's in-order / gap / duplicate
// verdicts per publisher.
import assert from "node:assert/strict";
import { OriginTracker, PublishSequence, Verdict } from "../../backplane/sequence.ts";

Deno.test("backplane sequence numbering", async (t) => {
  await t.step("one counter per topic; keys computed once", () => {
    let made = 0;
    const seq = new PublishSequence(
      (topic) => {
        made++;
        return topic.toUpperCase();
      },
      10,
      77,
    );
    assert.equal(seq.epoch, 77);
    assert.equal(++seq.topic("a").seq, 1);
    assert.equal(++seq.topic("b").seq, 1);
    assert.equal(++seq.topic("a").seq, 2);
    assert.equal(seq.topic("b").key, "B");
    assert.equal(made, 2);
  });

  await t.step("past the topic limit every counter restarts under a new epoch", () => {
    const seq = new PublishSequence((t) => t, 2, 5);
    seq.topic("a").seq = 10;
    seq.topic("b").seq = 10;
    seq.topic("c");
    assert.notEqual(seq.epoch, 5);
    assert.equal(seq.topic("a").seq, 0);
  });

  await t.step("receiver: first seen, in order, gap, duplicate, per publisher", () => {
    const t = new OriginTracker();
    assert.equal(t.check(1, 9, 100), Verdict.IN_ORDER, "first message of a publisher");
    assert.equal(t.check(2, 9, 1), Verdict.IN_ORDER, "another publisher counts alone");
    assert.equal(t.check(1, 9, 101), Verdict.IN_ORDER);
    assert.equal(t.check(1, 9, 105), Verdict.GAP);
    assert.equal(t.expected, 102);
    assert.equal(t.origin, "000000000001");
    assert.equal(t.check(1, 9, 106), Verdict.IN_ORDER, "counting resumes after the gap");
    assert.equal(t.check(1, 9, 104), Verdict.DUPLICATE);
    assert.equal(t.check(1, 9, 106), Verdict.DUPLICATE);
    assert.equal(t.check(2, 9, 2), Verdict.IN_ORDER);
    assert.equal(t.check(1, 10, 1), Verdict.IN_ORDER, "a new epoch starts afresh");
    assert.equal(t.check(1, 10, 2), Verdict.IN_ORDER);
  });

  await t.step("receiver remembers at most `limit` publishers, oldest forgotten first", () => {
    const t = new OriginTracker(2);
    t.check(1, 1, 1);
    t.check(2, 1, 1);
    t.check(3, 1, 1);
    assert.equal(t.size, 2);
    assert.equal(t.check(1, 1, 50), Verdict.IN_ORDER, "forgotten: counted afresh");
    assert.equal(t.check(3, 1, 3), Verdict.GAP);
  });
});

import assert from "node:assert/strict";
import { judge } from "../../bench/soak.ts";

const MiB = 1048576;
const bound = (m: number) => Math.max(0.1 * m, 2 * MiB);
const t = Array.from({ length: 240 }, (_, i) => i * 5); // 20 minutes, one sample per 5 s

Deno.test("soak verdict (judge)", async (t2) => {
  await t2.step("a GC-like sawtooth of 3-minute cycles is flat", () => {
    const y = t.map((s) => 5 * MiB + ((s % 180) / 180) * 8 * MiB);
    const j = judge(t, y, bound);
    assert.equal(j.flat, true);
    assert.ok(Math.abs(j.lowRise) < 0.1 * MiB);
  });

  await t2.step("the same sawtooth rising 1.2 MiB a minute (a leak) is not flat", () => {
    const y = t.map((s) => 5 * MiB + ((s % 180) / 180) * 8 * MiB + s * 0.02 * MiB);
    const j = judge(t, y, bound);
    assert.equal(j.flat, false);
    assert.ok(j.lowRise > 2 * MiB);
  });

  await t2.step("a constant series is flat with zero rises and drift", () => {
    const j = judge(t, t.map(() => 100), (m) => Math.max(0.05 * m, 8));
    assert.deepEqual([j.flat, j.lowRise, j.highRise, j.drift], [true, 0, 0, 0]);
  });

  await t2.step("missing data (NaN) is never flat", () => {
    assert.equal(judge(t, t.map(() => NaN), bound).flat, false);
  });
});

// Heap trimming: when the trimmer fires, and that a manager trims after a burst of work even
// when nothing else would wake its loop.
import assert from "node:assert/strict";
import { HeapTrimmer } from "../../core/heap_trim.ts";
import { ManagerError, WebSocketManager } from "../../mod.ts";
import { waitFor } from "../fixtures/harness.ts";
import { serverTest, withServer } from "../fixtures/manager/helpers.ts";

Deno.test("heap trimmer: an interval after work, never while idle, slower when slow", async () => {
  const stats = { heapTrims: 0, heapTrimSeconds: 0 };
  let calls = 0;
  const t = new HeapTrimmer(1_000, () => {
    calls++;
    return Promise.resolve();
  }, stats);
  assert.equal(t.deadline(), Infinity, "nothing to give back before any work");
  assert.equal(t.maybeRun(5_000, 0), false);
  t.touch(100);
  t.touch(600); // more work in the same interval: same deadline
  assert.equal(t.deadline(), 1_100);
  assert.equal(t.maybeRun(1_099, 0), false);
  assert.equal(t.maybeRun(1_100, 0), true);
  await t.settled();
  assert.equal(calls, 1);
  assert.equal(stats.heapTrims, 1);
  assert.equal(t.deadline(), Infinity);
  // Work after a trim: due an interval after that work.
  t.touch(1_200);
  assert.equal(t.deadline(), 2_200);

  const off = new HeapTrimmer(0, () => Promise.resolve(), stats);
  off.touch(0);
  assert.equal(off.deadline(), Infinity, "interval 0: off");
  const missing = new HeapTrimmer(1_000, null, stats);
  missing.touch(0);
  assert.equal(missing.deadline(), Infinity, "no malloc_trim here: off");

  // One at a time: a trim still running makes the next one wait; a slow one (> 5 ms)
  // doubles the pause.
  const slowStats = { heapTrims: 0, heapTrimSeconds: 0 };
  const slow = new HeapTrimmer(1_000, () => new Promise((r) => setTimeout(r, 20)), slowStats);
  slow.touch(0);
  assert.equal(slow.maybeRun(1_000, 0), true);
  slow.touch(1_000);
  assert.equal(slow.maybeRun(5_000, 100), false, "the first one is still running");
  await slow.settled();
  assert.ok(slowStats.heapTrimSeconds >= 0.015);
  assert.equal(slow.wakeIn(2_990), 50, "a parked loop waits at least 50 ms for it");
  assert.equal(slow.maybeRun(2_999, 10), false, "a costly last trim waits for a quiet loop");
  assert.equal(slow.maybeRun(2_999, 50), true, "due at 2,000 before the slowness was known");
  await slow.settled();
  slow.touch(3_000);
  assert.equal(slow.deadline(), 3_000 + 4_000, "doubled twice");
});

Deno.test("heapTrimInterval: a negative or infinite value is refused", () => {
  for (const v of [-1, Infinity, NaN]) {
    assert.throws(
      () => new WebSocketManager({ heapTrimInterval: v }),
      (err: unknown) => err instanceof ManagerError && err.code === "INVALID_OPTION",
    );
  }
});

serverTest("heap trim: a manager trims after a burst, with no timer to wake it", async (poller) => {
  await withServer({
    poller,
    pingInterval: 0,
    idleTimeout: 0,
    heapTrimInterval: 100,
    websocket: { message: (ws, data) => void ws.send(data) },
  }, async (s, scope) => {
    const c = await scope.client(s.port);
    await c.send("x".repeat(10_000));
    await c.next();
    const before = s.manager.stats.heapTrims;
    await waitFor(() => s.manager.stats.heapTrims > before, 3_000, "a trim after the burst");
    assert.ok(s.manager.stats.heapTrimSeconds >= 0);
    // Idle: no more trims.
    const settled = s.manager.stats.heapTrims;
    await new Promise((r) => setTimeout(r, 400));
    assert.ok(s.manager.stats.heapTrims <= settled + 1);
  });
});

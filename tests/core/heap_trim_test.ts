// Heap trimming: when the trimmer fires, and that a manager trims after a burst of work even
// when nothing else would wake its loop.
import assert from "node:assert/strict";
import { HeapTrimmer } from "../../core/heap_trim.ts";
import { ManagerError, WebSocketManager } from "../../mod.ts";
import { waitFor } from "../fixtures/harness.ts";
import { serverTest, withServer } from "../fixtures/manager/helpers.ts";

Deno.test("heap trimmer: an interval after work, never while idle, slower when slow", () => {
  let trims = 0;
  const t = new HeapTrimmer(1_000, () => void trims++);
  assert.equal(t.deadline(), Infinity, "nothing to give back before any work");
  assert.equal(t.maybeRun(5_000), false);
  t.touch(100);
  t.touch(600); // more work in the same interval: same deadline
  assert.equal(t.deadline(), 1_100);
  assert.equal(t.maybeRun(1_099), false);
  assert.equal(t.maybeRun(1_100), true);
  assert.equal(trims, 1);
  assert.equal(t.deadline(), Infinity);
  // Work right after a trim waits a whole interval from that trim.
  t.touch(1_200);
  assert.equal(t.deadline(), 2_200);
  assert.equal(t.trims, 1);

  const off = new HeapTrimmer(0, () => void trims++);
  off.touch(0);
  assert.equal(off.deadline(), Infinity, "interval 0: off");
  const missing = new HeapTrimmer(1_000, null);
  missing.touch(0);
  assert.equal(missing.deadline(), Infinity, "no malloc_trim here: off");

  // A trim slower than 5 ms doubles the pause.
  const slow = new HeapTrimmer(1_000, () => {
    const end = performance.now() + 8;
    while (performance.now() < end) { /* a slow trim */ }
  });
  slow.touch(0);
  slow.maybeRun(1_000);
  slow.touch(1_000);
  assert.equal(slow.deadline(), 3_000);
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

// The frame pool: reference counts, reuse, and buffers freed (detached) the moment the last
// holder lets go when the pool does not keep them.
import assert from "node:assert/strict";
import { FramePool } from "../../core/frame_pool.ts";

const detached = (b: Uint8Array): boolean => (b.buffer as ArrayBuffer).detached;

Deno.test("frame pool: reuse, counts, and detaching what it does not keep", async (t) => {
  await t.step("a buffer comes back only after every reference is released", () => {
    const pool = new FramePool();
    const a = pool.acquire(10_000);
    assert.equal(a.length, 10_000);
    pool.retain(a);
    pool.retain(a);
    pool.release(a);
    pool.release(a);
    assert.notEqual(pool.acquire(10_000).buffer, a.buffer, "still held by one queue");
    pool.release(a);
    assert.equal(pool.acquire(9_000).buffer, a.buffer, "same size class, reused");
  });

  await t.step("a buffer above the largest pooled size is detached on its last release", () => {
    const pool = new FramePool();
    const big = pool.acquire(5 << 20);
    assert.equal(big.length, 5 << 20);
    pool.retain(big);
    pool.release(big);
    assert.equal(detached(big), false, "a queue still holds it");
    pool.release(big);
    assert.equal(detached(big), true, "freed now, not at the next collection");
    assert.equal(big.length, 0);
  });

  await t.step("past the free-bytes cap, released buffers are detached", () => {
    const pool = new FramePool();
    const held = Array.from({ length: 40 }, () => pool.acquire(1 << 20));
    for (const b of held) pool.release(b);
    const kept = held.filter((b) => !detached(b)).length;
    assert.ok(kept > 0 && kept < held.length, `kept ${kept} of ${held.length}`);
    assert.ok(kept * (1 << 20) <= 8 << 20, "at most 8 MiB kept free");
  });

  await t.step("buffers not from the pool pass through untouched", () => {
    const pool = new FramePool();
    const mine = new Uint8Array(5 << 20);
    pool.retain(mine);
    pool.release(mine);
    pool.release(mine);
    assert.equal(detached(mine), false);
    assert.equal(mine.length, 5 << 20);
  });
});

// The in-process default backplane: counts, never delivers, closes.
import assert from "node:assert/strict";
import { LocalBackplane, localBackplane } from "../../backplane/local.ts";
import type { IoLoop } from "../../core/io_loop.ts";

Deno.test("local backplane", async () => {
  let delivered = 0;
  const bp = localBackplane({} as IoLoop, { message: () => delivered++ });
  assert.ok(bp instanceof LocalBackplane);
  assert.match(bp.nodeId, /^[0-9a-f]{12}$/);
  bp.subscribe("room");
  bp.publish("room", new Uint8Array([1, 2]), true);
  bp.unsubscribe("room");
  assert.equal(bp.stats.published, 1);
  assert.equal(bp.stats.connected, true);
  await bp.close();
  bp.publish("room", new Uint8Array(1), false);
  assert.equal(bp.stats.published, 1);
  assert.equal(bp.stats.connected, false);
  assert.equal(delivered, 0);
});

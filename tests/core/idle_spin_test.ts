/** The loop's spin-before-park decision: earned by short parks, lost (with backoff) by misses. */
import assert from "node:assert/strict";
import { IdleSpin, MAX_PENALTY, SPIN_EARN_MS } from "../../core/idle_spin.ts";

Deno.test("IdleSpin", async (t) => {
  await t.step("an idle loop never spins", () => {
    const spin = new IdleSpin();
    assert.equal(spin.armed, false);
    for (let i = 0; i < 10; i++) spin.parked(1000, 0); // timer wake-ups without events
    assert.equal(spin.armed, false);
    spin.parked(SPIN_EARN_MS * 10, 1); // traffic, but sparse
    assert.equal(spin.armed, false);
  });

  await t.step("a short park with events arms it; a caught spin keeps it armed", () => {
    const spin = new IdleSpin();
    spin.parked(SPIN_EARN_MS / 2, 1);
    assert.equal(spin.armed, true);
    for (let i = 0; i < 100; i++) {
      spin.spun(true);
      assert.equal(spin.armed, true);
    }
  });

  await t.step("each missed spin doubles the short parks needed, up to the cap", () => {
    const spin = new IdleSpin();
    spin.parked(0, 1);
    const required: number[] = [];
    for (let miss = 0; miss < 10; miss++) {
      assert.equal(spin.armed, true);
      spin.spun(false);
      let parks = 0;
      while (!spin.armed) {
        spin.parked(0, 1);
        parks++;
      }
      required.push(parks);
    }
    assert.deepEqual(required, [2, 4, 8, 16, 32, 64, 64, 64, 64, 64]);
    assert.equal(required.at(-1), MAX_PENALTY);
    spin.spun(true); // a catch clears the penalty
    spin.spun(false);
    spin.parked(0, 1);
    spin.parked(0, 1);
    assert.equal(spin.armed, true);
  });

  await t.step("a long park in between starts the count again", () => {
    const spin = new IdleSpin();
    spin.parked(0, 1);
    spin.spun(false); // now 2 short parks in a row are needed
    spin.parked(0, 1);
    spin.parked(SPIN_EARN_MS * 2, 1);
    spin.parked(0, 1);
    assert.equal(spin.armed, false);
    spin.parked(0, 1);
    assert.equal(spin.armed, true);
  });
});

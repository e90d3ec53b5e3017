// Two server processes and one Redis on loopback: everything one publishes reaches the
// other, in order, in every mode.
import assert from "node:assert/strict";
import { Child } from "../../fixtures/harness.ts";
import { RedisServer } from "../../fixtures/redis.ts";

const NODE = new URL("../../fixtures/backplane_node.ts", import.meta.url).pathname;
const COUNT = 5000;

Deno.test("redis backplane: two processes", async (t) => {
  const redis = await RedisServer.start();
  try {
    for (const mode of ["pubsub", "sharded", "streams"]) {
      await t.step(mode, async () => {
        const args = (role: string): string[] => [
          "run",
          "-A",
          NODE,
          role,
          redis.url(),
          mode,
          "room",
          String(COUNT),
        ];
        const sub = new Child(Deno.execPath(), args("sub"));
        let pub: Child | null = null;
        try {
          await sub.waitFor((l) => l === "ready", 20_000, "subscriber ready");
          pub = new Child(Deno.execPath(), args("pub"));
          assert.equal(
            await pub.waitFor((l) => l.startsWith("sent"), 30_000, "sent"),
            `sent ${COUNT}`,
          );
          const done = await sub.waitFor((l) => l.startsWith("done"), 30_000, "received");
          assert.equal(done, `done ${COUNT} true 0`);
          assert.equal((await sub.status).code, 0);
          assert.equal((await pub.status).code, 0);
        } finally {
          await sub.stop();
          await pub?.stop();
        }
      });
    }
  } finally {
    await redis.stop();
  }
});

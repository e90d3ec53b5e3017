/**
 * examples/multicore.ts: serve({ workers: 2 }). Every client is served, the kernel spreads
 * them over both workers, a message to "all" reaches the clients of both, and SIGTERM
 * stops the workers cleanly. No descriptor of this process may outlive the test.
 */
import assert from "node:assert/strict";
import { assertNoFdLeak, Child, freePort, openFds, within } from "../fixtures/harness.ts";

Deno.test("multicore example: two workers share the port, both serve, topics cross them", async () => {
  const fdsBefore = openFds();
  const port = freePort();
  const child = new Child(Deno.execPath(), [
    "run",
    "--allow-ffi",
    "--allow-read",
    "examples/multicore.ts",
    "--port",
    String(port),
    "--workers",
    "2",
  ], { stderr: "inherit" });
  try {
    await child.stdout.match(/listening/, 15_000, "the listening line");
    const n = 60;
    let echoed = 0;
    await Promise.all(Array.from({ length: n }, (_, i) =>
      new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
        const timer = setTimeout(() => reject(new Error(`client ${i} timed out`)), 10_000);
        ws.onopen = () => ws.send(`hello ${i}`);
        ws.onmessage = (e) => {
          if (e.data === `hello ${i}`) echoed++;
          ws.close();
        };
        ws.onclose = () => {
          clearTimeout(timer);
          resolve();
        };
      })));
    assert.equal(echoed, n);
    // A message to "all" reaches every client, whichever worker serves it.
    const listeners = await Promise.all(
      Array.from({ length: 10 }, () =>
        new Promise<WebSocket>((resolve) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
          ws.onopen = () => resolve(ws);
        })),
    );
    const got = listeners.map((ws) =>
      new Promise<string>((resolve) => (ws.onmessage = (e) => resolve(e.data)))
    );
    listeners[0].send("all everyone");
    assert.deepEqual(await within(Promise.all(got), 5_000, "all"), Array(10).fill("everyone"));
    await Promise.all(listeners.map((ws) =>
      new Promise((resolve) => {
        ws.onclose = resolve;
        ws.close();
      })
    ));
    child.kill("SIGTERM");
    await child.stdout.match(/"worker":1/, 10_000, "worker 1 to report");
    const opened = [...child.stdout.text.matchAll(/"opened":(\d+)/g)].map((m) => Number(m[1]));
    assert.equal(opened.length, 2);
    assert.equal(opened[0] + opened[1], n + 10);
    // SO_REUSEPORT hashes connections over both listeners: 70 all on one is ~1e-21.
    assert.ok(opened[0] > 0 && opened[1] > 0, `both workers served: ${opened.join(", ")}`);
  } finally {
    child.kill("SIGTERM");
    const status = await within(child.status, 10_000, "the server to exit after SIGTERM");
    await child.stop();
    assert.equal(status.code, 0);
  }
  await assertNoFdLeak(fdsBefore);
});

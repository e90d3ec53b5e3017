/**
 * examples/multicore.ts: one manager per worker thread on a shared SO_REUSEPORT port.
 * Every client is served, the kernel spreads them over both workers, and SIGTERM stops
 * the workers cleanly.
 */
import assert from "node:assert/strict";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("multicore example: two workers share the port and both serve", async () => {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      "--allow-read",
      "examples/multicore.ts",
      "--port",
      String(port),
      "--workers",
      "2",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const waitFor = async (pattern: RegExp, ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!pattern.test(out)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${pattern}: ${out}`);
      const r = await Promise.race([
        reader.read(),
        new Promise<null>((res) => setTimeout(() => res(null), left)),
      ]);
      if (r === null) continue;
      if (r.done) throw new Error(`server exited: ${out}`);
      out += r.value;
    }
  };
  try {
    await waitFor(/listening/, 15_000);
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
    child.kill("SIGTERM");
    await waitFor(/fdws-worker-1/, 10_000);
    await waitFor(/fdws-worker-0/, 10_000);
    const opened = [...out.matchAll(/"opened":(\d+)/g)].map((m) => Number(m[1]));
    assert.equal(opened.length, 2);
    assert.equal(opened[0] + opened[1], n);
    // SO_REUSEPORT hashes connections over both listeners: 60 all on one is ~1e-18.
    assert.ok(opened[0] > 0 && opened[1] > 0, `both workers served: ${opened.join(", ")}`);
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    const status = await child.status;
    await reader.cancel().catch(() => {});
    assert.equal(status.code, 0);
  }
});

/**
 * Multi-core echo server: one worker per core, each with its own poller and manager,
 * all listening on the same port with SO_REUSEPORT so the kernel spreads connections.
 *
 *   deno run --allow-ffi --allow-read examples/multicore.ts --port 9001 [--workers N]
 *
 * Connections stay on the worker that accepted them; a message to connections of other
 * workers needs a backplane (postMessage between workers, or pub/sub across machines).
 *
 * @module
 */

import { serve } from "../mod.ts";
import { parseFlags } from "./flags.ts";

declare const self: {
  name?: string;
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
};

const flags = parseFlags(Deno.args, {
  port: "9001",
  hostname: "127.0.0.1",
  workers: String(navigator.hardwareConcurrency),
});

if (self.name?.startsWith("fdws-worker")) {
  // Worker: serve on the shared port until told to stop.
  const server = serve({
    hostname: flags.hostname,
    port: Number(flags.port),
    reusePort: true,
    websocket: {
      message: (ws, data) => ws.send(data as string | Uint8Array),
    },
  });
  self.onmessage = async (event: MessageEvent) => {
    if (event.data === "stats") {
      self.postMessage({ name: self.name, opened: server.manager.stats.opened });
    } else if (event.data === "stop") {
      await server.shutdown();
      self.postMessage({ name: self.name, stopped: true });
    }
  };
  self.postMessage({ name: self.name, listening: server.port });
} else {
  const count = Math.max(1, Number(flags.workers));
  const workers: Worker[] = [];
  let ready = 0;
  const stopped = Promise.withResolvers<void>();
  let stoppedCount = 0;
  for (let i = 0; i < count; i++) {
    const w = new Worker(import.meta.url, { type: "module", name: `fdws-worker-${i}` });
    w.onmessage = (event: MessageEvent) => {
      const m = event.data as { listening?: number; stopped?: boolean; opened?: number };
      if (m.listening !== undefined && ++ready === count) {
        console.log(
          `multicore echo server listening on ${flags.hostname}:${flags.port} (${count} workers)`,
        );
      }
      if (m.opened !== undefined) console.log(JSON.stringify(m));
      if (m.stopped && ++stoppedCount === count) stopped.resolve();
    };
    workers.push(w);
  }
  const stop = async (): Promise<void> => {
    for (const w of workers) w.postMessage("stats");
    await new Promise((r) => setTimeout(r, 100));
    for (const w of workers) w.postMessage("stop");
    await stopped.promise;
    for (const w of workers) w.terminate();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

/**
 * Multi-core server: one WebSocket manager per core, each in its own worker with its own
 * poller, with topics shared by every worker. Each client gets its messages echoed; a
 * message starting with `all ` goes to every client of every worker.
 *
 *   deno run --allow-ffi --allow-read examples/multicore.ts --port 9001 [--workers N]
 *
 * `serve({ workers })` runs this module once more in each worker: the same `serve()` call
 * there serves as that worker (on Linux each one listens on the port with SO_REUSEPORT and
 * the kernel spreads the connections). Top-level code therefore runs once per worker plus
 * once in the main thread; `workerIndex()` tells which. SIGINT/SIGTERM: the main thread
 * prints each worker's counters, closes every connection of every worker with 1001 and
 * exits.
 *
 * @module
 */

import { serve, workerIndex } from "../mod.ts";
import { parseFlags } from "./flags.ts";

const flags = parseFlags(Deno.args, {
  port: "9001",
  hostname: "127.0.0.1",
  workers: String(navigator.hardwareConcurrency),
});

const server = serve({
  hostname: flags.hostname,
  port: Number(flags.port),
  workers: Math.max(1, Number(flags.workers)),
  websocket: {
    open: (ws) => ws.subscribe("all"),
    message: (ws, data) => {
      if (typeof data === "string" && data.startsWith("all ")) {
        // Reaches the subscribers of every worker, encoded once per worker.
        ws.manager!.publish("all", data.slice(4));
      } else {
        ws.send(data as string | Uint8Array);
      }
    },
  },
  onListen: (address) =>
    console.log(
      `multicore server listening on ${address.hostname}:${address.port} (${flags.workers} workers)`,
    ),
});

if (workerIndex() === null) {
  const stop = async (): Promise<void> => {
    const stats = await server.workers!.stats();
    for (const w of stats.workers) {
      console.log(JSON.stringify({ worker: w.index, opened: w.stats?.manager.opened ?? null }));
    }
    await server.shutdown();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

/**
 * The cross-worker transports alone, no sockets: one worker publishes, another receives,
 * each on a real WebSocketManager loop (epoll), through the backplane as serve({ workers })
 * installs it. Messages/s and process CPU (all threads, /proc/self/stat) per message, for
 * the shared-memory ring and the postMessage batches, with 1, 16 and 256 publishes per
 * turn of the publisher's event loop (1: every publish is alone in its tick, the worst
 * case for waking the receiver; 256: a busy publisher).
 *
 *   deno run -A bench/workers/transport_bench.ts [--messages 400000] [--size 64] [--rounds 3]
 *
 * @module
 */

import {
  closeTopology,
  createTopology,
  type WorkersTopology,
  type WorkersTransport,
} from "../../backplane/workers/topology.ts";
import { WorkersBackplane } from "../../backplane/workers/workers_backplane.ts";
import { loopOf, WebSocketManager } from "../../core/manager.ts";
import { MacrotaskQueue } from "../../core/macrotask.ts";
import { parseFlags } from "../../examples/flags.ts";

interface Init {
  role: "producer" | "consumer";
  topology: WorkersTopology;
  node: number;
  ports: (MessagePort | null)[];
  messages: number;
  size: number;
  batch: number;
}

const scope = globalThis as unknown as {
  name?: string;
  postMessage(m: unknown): void;
  onmessage: ((e: MessageEvent) => void) | null;
  close(): void;
};

if (scope.name === "transport-bench") {
  scope.onmessage = async (event: MessageEvent) => {
    if (event.data === "go") return;
    const init = event.data as Init;
    const manager = new WebSocketManager({ poller: "epoll" });
    manager.start();
    const loop = loopOf(manager);
    let received = 0;
    const done = Promise.withResolvers<void>();
    const bp = new WorkersBackplane(loop, {
      message: () => {
        if (++received === init.messages) done.resolve();
      },
    });
    bp.join({ topology: init.topology, node: init.node, consumer: true, ports: init.ports });
    if (init.role === "consumer") {
      bp.subscribe("t");
      scope.postMessage("joined");
      await done.promise;
      scope.postMessage("done");
    } else {
      scope.postMessage("joined");
      await new Promise<void>((resolve) => {
        scope.onmessage = (e) => e.data === "go" && resolve();
      });
      const payload = new Uint8Array(init.size);
      const turns = new MacrotaskQueue();
      for (let sent = 0; sent < init.messages;) {
        for (let k = 0; k < init.batch && sent < init.messages; k++, sent++) {
          bp.publish("t", payload, true);
        }
        await turns.turn();
      }
      turns.close();
      scope.postMessage(`sent dropped=${bp.stats.dropped}`);
    }
    await bp.close();
    manager.stop();
    await manager.join();
    scope.close();
  };
} else {
  const flags = parseFlags(Deno.args, { messages: "400000", size: "64", rounds: "3" });
  const cpu = async (): Promise<number> => {
    const f = (await Deno.readTextFile("/proc/self/stat")).split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, clock ticks of 10 ms
  };
  const once = async (transport: WorkersTransport, batch: number) => {
    const topology = createTopology(3, { transport, ringBytes: 4 * 1024 * 1024 });
    const channel = new MessageChannel();
    const messages = Number(flags.messages);
    const workers = [1, 2].map(() =>
      new Worker(import.meta.url, { type: "module", name: "transport-bench" })
    );
    const events: string[] = [];
    const waiters: (() => void)[] = [];
    for (const w of workers) {
      w.onmessage = (e) => {
        events.push(String(e.data));
        for (const f of waiters.splice(0)) f();
      };
    }
    const until = async (pred: () => boolean) => {
      while (!pred()) await new Promise<void>((r) => waiters.push(r));
    };
    const common = { topology, messages, size: Number(flags.size), batch };
    workers[0].postMessage(
      { ...common, role: "producer", node: 1, ports: [null, null, channel.port1] },
      [channel.port1],
    );
    workers[1].postMessage(
      { ...common, role: "consumer", node: 2, ports: [null, channel.port2, null] },
      [channel.port2],
    );
    await until(() => events.filter((e) => e === "joined").length === 2);
    const c0 = await cpu();
    const t0 = performance.now();
    workers[0].postMessage("go");
    await until(() => events.includes("done"));
    const seconds = (performance.now() - t0) / 1000;
    const cpuS = (await cpu()) - c0;
    await until(() => events.some((e) => e.startsWith("sent")));
    for (const w of workers) w.terminate();
    closeTopology(topology);
    return { rate: messages / seconds, nsPerMessage: (cpuS / messages) * 1e9 };
  };
  const rows: string[] = [];
  const raw: { batch: number; transport: string; rates: number[]; costs: number[] }[] = [];
  for (const batch of [1, 16, 256]) {
    for (const transport of ["ring", "messages"] as const) {
      const rates: number[] = [];
      const costs: number[] = [];
      for (let r = 0; r < Number(flags.rounds); r++) {
        const { rate, nsPerMessage } = await once(transport, batch);
        rates.push(rate);
        costs.push(nsPerMessage);
      }
      raw.push({ batch, transport, rates, costs });
      const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      rows.push(
        `| ${batch} | ${transport} | ${med(rates).toFixed(0)} | ${med(costs).toFixed(0)} | ` +
          `${costs.map((c) => c.toFixed(0)).join(", ")} |`,
      );
      console.log(rows.at(-1));
    }
  }
  console.log(
    `\n${flags.messages} messages of ${flags.size} B, load ${
      (await Deno.readTextFile("/proc/loadavg")).trim()
    }`,
  );
  console.log(
    "| publishes per tick | transport | messages/s | CPU ns/message (median) | each round |",
  );
  console.log("| ---: | --- | ---: | ---: | --- |");
  for (const r of rows) console.log(r);
  const dir = new URL("./results/", import.meta.url).pathname;
  Deno.mkdirSync(dir, { recursive: true });
  const file = `${dir}transport-${new Date().toISOString().replaceAll(":", "-")}.json`;
  Deno.writeTextFileSync(file, JSON.stringify({ flags, raw }, null, 2));
  console.log(`\nraw data: ${file}`);
}

/**
 * What idle connections keep on the JavaScript heap: a heap snapshot of `bench/server.ts`
 * (through the inspector, each after a full collection) before a burst of idle connections and
 * with all of them open, summed by node type and constructor and divided by the number of
 * connections.
 *
 *   deno task bench --scenarios c      # builds bench/.build/loadgen once
 *   deno run -A bench/heap_snapshot.ts [connections]
 *
 * Linux (taskset pins the server to cpu0 and the load generator to cpu1, as the bench does).
 *
 * @module
 */

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

interface Reply {
  id?: number;
  method?: string;
  params?: { chunk?: string };
}

const ROOT = new URL("..", import.meta.url).pathname;
const LOADGEN = `${ROOT}bench/.build/loadgen`;
const conns = Number(Deno.args[0] ?? 10_000);
const inspectPort = 9229 + Math.floor(Math.random() * 500);
const port = 20_000 + Math.floor(Math.random() * 10_000);

const server = new Deno.Command("taskset", {
  args: [
    ...["-c", "0", Deno.execPath(), "run", `--inspect=127.0.0.1:${inspectPort}`],
    ...["--allow-ffi", "--allow-read", `${ROOT}bench/server.ts`],
    ...["--port", String(port), "--mode", "echo"],
  ],
  stdout: "null",
  stderr: "null",
}).spawn();

try {
  const targets = await waitForInspector(inspectPort);
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve) => ws.onopen = resolve);
  let nextId = 0;
  let chunks: string[] = [];
  const pending = new Map<number, () => void>();
  ws.onmessage = (e: MessageEvent<string>) => {
    const m: Reply = JSON.parse(e.data);
    if (m.method === "HeapProfiler.addHeapSnapshotChunk") chunks.push(m.params?.chunk ?? "");
    else if (m.id !== undefined) pending.get(m.id)?.();
  };
  const call = (method: string, params: Record<string, unknown> = {}): Promise<void> => {
    const id = ++nextId;
    const { promise, resolve } = Promise.withResolvers<void>();
    pending.set(id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
    return promise;
  };
  const snapshot = async (): Promise<Map<string, number>> => {
    chunks = [];
    await call("HeapProfiler.collectGarbage");
    await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    return bySize(JSON.parse(chunks.join("")));
  };

  await call("Runtime.runIfWaitingForDebugger");
  await call("HeapProfiler.enable");
  const before = await snapshot();
  const load = new Deno.Command("taskset", {
    args: [
      ...["-c", "1", LOADGEN, "--mode", "idle", "--port", String(port)],
      ...["--conns", String(conns), "--hold", "8", "--settle", "1"],
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Every connection is open by then (10,000 take about 0.6 s here) and held for 8 s.
  await new Promise((resolve) => setTimeout(resolve, 4000));
  const after = await snapshot();
  await load.status;
  ws.close();

  let total = 0;
  const rows: [string, number][] = [];
  for (const [key, size] of after) {
    const grown = size - (before.get(key) ?? 0);
    total += grown;
    if (Math.abs(grown) > conns * 4) rows.push([key, grown / conns]);
  }
  rows.sort((a, b) => b[1] - a[1]);
  console.log(`${conns} connections: ${(total / conns).toFixed(1)} B of heap each`);
  for (const [key, perConn] of rows.slice(0, 20)) {
    console.log(`${perConn.toFixed(1).padStart(8)} B  ${key}`);
  }
} finally {
  server.kill("SIGKILL");
  await server.status;
}

async function waitForInspector(at: number): Promise<{ webSocketDebuggerUrl: string }[]> {
  for (let i = 0; i < 100; i++) {
    try {
      return await (await fetch(`http://127.0.0.1:${at}/json/list`)).json();
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error("the server's inspector did not answer");
}

/** Self size summed by "type:constructor" (strings and code each as one entry). */
function bySize(s: Snapshot): Map<string, number> {
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const stride = fields.length;
  const iType = fields.indexOf("type");
  const iName = fields.indexOf("name");
  const iSize = fields.indexOf("self_size");
  const sizes = new Map<string, number>();
  for (let i = 0; i < s.nodes.length; i += stride) {
    const type = types[s.nodes[i + iType]];
    const name = type.includes("string")
      ? "(string)"
      : type === "code"
      ? "(code)"
      : s.strings[s.nodes[i + iName]].slice(0, 60);
    const key = `${type}:${name}`;
    sizes.set(key, (sizes.get(key) ?? 0) + s.nodes[i + iSize]);
  }
  return sizes;
}

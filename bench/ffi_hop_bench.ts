/**
 * What the loop's park costs: one `nonblocking` FFI call (the call runs on another thread and
 * its result comes back through Deno's event loop) against the same call made synchronously.
 * The call is `getppid`, so what is left is the hop. Run it pinned to one core, as the bench
 * pins the server (`taskset -c 0`), and unpinned.
 *
 *   taskset -c 0 deno run -A bench/ffi_hop_bench.ts [calls]
 *
 * Linux (reads the process's CPU time from /proc/self/stat).
 *
 * @module
 */

const libc = Deno.dlopen("libc.so.6", {
  getppid: { parameters: [], result: "i32" },
  getppidHop: { name: "getppid", parameters: [], result: "i32", nonblocking: true },
});

/** CPU time of this process (user + system, all threads), in microseconds. */
function cpuMicros(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000; // CLK_TCK = 100
}

const calls = Number(Deno.args[0] ?? 200_000);
for (const mode of ["sync", "nonblocking", "sync", "nonblocking"]) {
  // Synchronous calls are ten times as many, for a window of similar length.
  const n = mode === "sync" ? calls * 10 : calls;
  const cpu0 = cpuMicros();
  const t0 = performance.now();
  if (mode === "sync") { for (let i = 0; i < n; i++) libc.symbols.getppid(); }
  else for (let i = 0; i < n; i++) await libc.symbols.getppidHop();
  const cpu = (cpuMicros() - cpu0) / n;
  const wall = (performance.now() - t0) * 1000 / n;
  console.log(`${mode.padEnd(11)} CPU ${cpu.toFixed(2)} µs/call, wall ${wall.toFixed(2)} µs/call`);
}
libc.close();

/**
 * Gets what the test suite needs beyond Deno, then runs the command given as arguments
 * (`deno task test` runs `deno test --allow-all tests/` through it) with the variables that
 * name each program (FDWS_CHROMIUM, FDWS_PYTHON, FDWS_REDIS_SERVER, FDWS_OPENSSL). The
 * command inherits the terminal and its exit code becomes ours, so Deno's summary line
 * stays the last line of the run.
 *
 * For each program, in this order: one already on this machine (tests/deps/tools.ts) →
 * the binary inside an npm package where there is one (Chromium: tests/deps/npm_chromium.ts,
 * cached under $FDWS_DEPS_DIR or /tmp/fdws-test-deps-<uid>) → Debian packages with apt-get
 * when running as root → otherwise one line saying what to install, and exit 1 before any
 * test runs. Nothing is skipped.
 *
 * Without arguments it only prepares and prints what it found. FDWS_CHROMIUM_NPM=0 skips the
 * npm Chromium (Debian's package, or the one line, instead); FDWS_DEPS_DIR moves the cache.
 *
 * Usage: deno run -A tests/prepare.ts [command args...]
 *
 * @module
 */

import { aptInstall, canAptInstall, hasApt } from "./deps/apt.ts";
import { npmChromium } from "./deps/npm_chromium.ts";
import { depsDir, untrustedReason } from "./deps/paths.ts";
import { CHROMIUM, findTool, type Found, type Tool, TOOLS } from "./deps/tools.ts";

const log = (line: string): void => console.log(line);

/** Creates the deps directory (private to this user); why it cannot be used, or null. */
async function ensureDepsDir(): Promise<string | null> {
  const dir = depsDir();
  try {
    await Deno.mkdir(dir, { mode: 0o700, recursive: Deno.env.get("FDWS_DEPS_DIR") !== undefined });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) return (err as Error).message;
  }
  const why = untrustedReason(dir);
  return why === null ? null : `${why}; set FDWS_DEPS_DIR to a folder of your own`;
}

/** Finds, fetches or installs every tool; the ones found, or the line to print. */
async function prepare(): Promise<Map<Tool, Found> | string> {
  const found = new Map<Tool, Found>();
  const tried = new Map<Tool, string[]>();
  const apt = new Map<Tool, string[]>();
  const lookups = await Promise.all(TOOLS.map((tool) => findTool(tool)));
  TOOLS.forEach((tool, i) => {
    const lookup = lookups[i];
    if (lookup.found !== null) found.set(tool, lookup.found);
    else tried.set(tool, lookup.tried);
  });

  // A variable that names a program is obeyed: nothing else is fetched in its place.
  const overridden = [...tried.keys()].filter((t) => (Deno.env.get(t.env) ?? "") !== "");
  if (overridden.length > 0) {
    return overridden.map((t) => `${t.env} to name a working ${t.name} (${tried.get(t)})`)
      .join("; ");
  }

  const chromiumFromNpm = async (): Promise<void> => {
    if (Deno.env.get("FDWS_CHROMIUM_NPM") === "0") {
      tried.get(CHROMIUM)?.push("npm Chromium: not tried (FDWS_CHROMIUM_NPM=0)");
      apt.set(CHROMIUM, CHROMIUM.apt.slice());
      return;
    }
    const dirProblem = await ensureDepsDir();
    if (dirProblem !== null) {
      tried.get(CHROMIUM)?.push(`npm Chromium: ${dirProblem}`);
      apt.set(CHROMIUM, CHROMIUM.apt.slice());
      return;
    }
    const npm = await npmChromium(log);
    if (npm.found !== null) {
      found.set(CHROMIUM, npm.found);
      apt.delete(CHROMIUM);
    } else {
      tried.get(CHROMIUM)?.push(`npm Chromium: ${npm.reason}`);
      apt.set(CHROMIUM, npm.apt);
    }
  };
  if (!found.has(CHROMIUM)) await chromiumFromNpm();
  for (const tool of TOOLS) {
    if (!found.has(tool) && !apt.has(tool)) apt.set(tool, tool.apt.slice());
  }
  if (apt.size === 0) return found;

  const packages = [...new Set([...apt.values()].flat())];
  let aptError: string | null = null;
  if (canAptInstall()) {
    log(`fdws tests: apt-get install ${packages.join(" ")}`);
    const started = performance.now();
    aptError = await aptInstall(packages);
    if (aptError === null) {
      log(`fdws tests: installed in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
    for (const tool of [...apt.keys()]) {
      // The npm Chromium may only have lacked system libraries, now installed.
      if (tool === CHROMIUM && !apt.get(tool)?.includes("chromium")) await chromiumFromNpm();
      if (found.has(tool)) continue;
      const lookup = await findTool(tool);
      if (lookup.found !== null) {
        found.set(tool, lookup.found);
        apt.delete(tool);
      }
    }
    if (apt.size === 0) return found;
  }

  const still = [...new Set([...apt.values()].flat())];
  if (!hasApt()) {
    const names = [...apt.keys()].map((t) => t.name).join(", ");
    return `${names} (Debian/Ubuntu packages: ${still.join(" ")})`;
  }
  return `apt-get install ${still.join(" ")}${aptError !== null ? ` (${aptError})` : ""}`;
}

/** Runs `argv` with the tools' variables, forwarding SIGTERM; returns its exit code. */
async function run(argv: string[], found: Map<Tool, Found>): Promise<number> {
  const [cmd, ...args] = argv;
  const env: Record<string, string> = {};
  for (const [tool, f] of found) env[tool.env] = f.path;
  const child = new Deno.Command(cmd === "deno" ? Deno.execPath() : cmd, {
    args,
    env,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // Ctrl-C reaches the child from the terminal; we stay to report its exit code.
  const ignore = (): void => {};
  const forward = (): void => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Gone already.
    }
  };
  Deno.addSignalListener("SIGINT", ignore);
  Deno.addSignalListener("SIGTERM", forward);
  try {
    const status = await child.status;
    return status.signal !== null ? 128 + signalNumber(status.signal) : status.code;
  } finally {
    Deno.removeSignalListener("SIGINT", ignore);
    Deno.removeSignalListener("SIGTERM", forward);
  }
}

function signalNumber(signal: Deno.Signal): number {
  const numbers: Partial<Record<Deno.Signal, number>> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGKILL: 9,
    SIGSEGV: 11,
    SIGTERM: 15,
  };
  return numbers[signal] ?? 0;
}

if (import.meta.main) {
  const started = performance.now();
  const result = await prepare();
  if (typeof result === "string") {
    console.error(`fdws tests need: ${result}`);
    Deno.exit(1);
  }
  for (const tool of TOOLS) {
    const f = result.get(tool)!;
    log(`fdws tests: ${tool.env}=${f.path} (${f.version})`);
  }
  log(`fdws tests: ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  if (Deno.args.length > 0) Deno.exit(await run([...Deno.args], result));
}

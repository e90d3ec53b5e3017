/**
 * The programs the test suite needs beyond Deno, and how to find one already on this
 * machine: the variable that names it (set by tests/prepare.ts for `deno test`), else PATH
 * and the places Debian installs it, else (Chromium) the copy tests/prepare.ts unpacked from
 * npm. Each candidate is run once (`--version` or the like), so a broken one is not taken.
 *
 * tests/prepare.ts uses this to decide what to fetch or install; the tests use
 * {@link requireTool}, which fails (never skips) when the program is missing.
 *
 * @module
 */

import { depsDir, npmChromiumWrapper, untrustedReason } from "./paths.ts";

/** A program the suite needs. */
export interface Tool {
  /** What people call it, in messages. */
  readonly name: string;
  /** The variable that names the executable; tests/prepare.ts sets it for `deno test`. */
  readonly env: string;
  /** Debian packages that provide it. */
  readonly apt: readonly string[];
  /** Names looked up in PATH, then absolute paths, in this order. */
  readonly candidates: () => string[];
  /** Arguments of the probe run; it must exit 0 and print a version. */
  readonly probe: readonly string[];
}

/** Headless Chromium for tests/examples/chat_browser_test.ts. */
export const CHROMIUM: Tool = {
  name: "chromium",
  env: "FDWS_CHROMIUM",
  apt: ["chromium"],
  candidates: () => [
    "chromium",
    "chromium-browser",
    "google-chrome-stable",
    "google-chrome",
    "/usr/bin/chromium",
    "/usr/lib/chromium/chromium",
    ...(untrustedReason(depsDir()) === null ? [npmChromiumWrapper()] : []),
  ],
  probe: ["--version"],
};

/** Python 3 with the `websockets` library, for tests/interop (ws_client.py). */
export const PYTHON_WEBSOCKETS: Tool = {
  name: "python3 with websockets",
  env: "FDWS_PYTHON",
  apt: ["python3-websockets"],
  // Debian's python3-websockets installs for /usr/bin/python3, which a pyenv or venv
  // `python3` earlier in PATH does not see.
  candidates: () => ["python3", "/usr/bin/python3"],
  probe: ["-c", "import websockets; print('websockets', websockets.__version__)"],
};

/** A Redis server that tests start on a free port of their own. */
export const REDIS_SERVER: Tool = {
  name: "redis-server",
  env: "FDWS_REDIS_SERVER",
  apt: ["redis-server"],
  candidates: () => ["redis-server", "/usr/bin/redis-server", "/usr/local/bin/redis-server"],
  probe: ["--version"],
};

/** The openssl command line tool (certificates and a TLS peer for the TLS tests). */
export const OPENSSL: Tool = {
  name: "openssl",
  env: "FDWS_OPENSSL",
  apt: ["openssl"],
  candidates: () => ["openssl", "/usr/bin/openssl"],
  probe: ["version"],
};

/** Every program the suite needs, in the order tests/prepare.ts reports them. */
export const TOOLS: readonly Tool[] = [CHROMIUM, PYTHON_WEBSOCKETS, REDIS_SERVER, OPENSSL];

/** A program found and probed. */
export interface Found {
  /** Absolute path of the executable. */
  path: string;
  /** First line the probe printed. */
  version: string;
}

/** The result of {@link findTool}: found, or every candidate with why it was not taken. */
export type Lookup = { found: Found; tried: string[] } | { found: null; tried: string[] };

/** How long one probe run may take (Chromium's first start on a cold disk is the slowest). */
const PROBE_MS = 30_000;

/** `name` resolved through PATH, or null. Absolute or relative paths are returned as is. */
export function which(name: string, path = Deno.env.get("PATH") ?? ""): string | null {
  if (name.includes("/")) return isExecutable(name) ? name : null;
  for (const dir of path.split(":")) {
    if (dir === "") continue;
    const full = `${dir}/${name}`;
    if (isExecutable(full)) return full;
  }
  return null;
}

function isExecutable(path: string): boolean {
  try {
    const st = Deno.statSync(path);
    return st.isFile && st.mode !== null && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Runs `exe args` with a deadline; the first line of stdout, or an Error saying why not. */
export async function probe(
  exe: string,
  args: readonly string[],
  env?: Record<string, string>,
): Promise<string | Error> {
  try {
    const out = await new Deno.Command(exe, {
      args: [...args],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(PROBE_MS),
    }).output();
    const dec = new TextDecoder();
    if (out.success) {
      const line = dec.decode(out.stdout).trim().split("\n")[0] ?? "";
      return line !== "" ? line : new Error("printed nothing");
    }
    const err = dec.decode(out.stderr).trim().split("\n").filter((l) => l !== "").at(-1);
    return new Error(`exit ${out.code}${err !== undefined ? `: ${err}` : ""}`);
  } catch (err) {
    return err as Error;
  }
}

/**
 * Finds `tool`: the executable its variable names (only that one when set), else the
 * first candidate that exists and whose probe succeeds. Snap packages are passed over:
 * their confinement keeps Chromium from using the temporary profile Playwright makes.
 */
export async function findTool(tool: Tool): Promise<Lookup> {
  const tried: string[] = [];
  const fromEnv = Deno.env.get(tool.env);
  const names = fromEnv !== undefined && fromEnv !== "" ? [fromEnv] : tool.candidates();
  const seen = new Set<string>();
  for (const name of names) {
    const path = which(name);
    if (path === null) {
      if (fromEnv !== undefined && fromEnv !== "") tried.push(`${tool.env}=${name}: not found`);
      continue;
    }
    let real = path;
    try {
      real = Deno.realPathSync(path);
    } catch {
      // Keep the path as found.
    }
    if (seen.has(real)) continue;
    seen.add(real);
    if (real.startsWith("/snap/")) {
      tried.push(`${path}: a snap package (confined), not used`);
      continue;
    }
    const result = await probe(path, tool.probe);
    if (result instanceof Error) {
      tried.push(`${path}: ${result.message}`);
      continue;
    }
    return { found: { path: absolute(path), version: result }, tried };
  }
  if (tried.length === 0) tried.push(`none of ${names.join(", ")}`);
  return { found: null, tried };
}

function absolute(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
}

const required = new Map<Tool, Promise<string>>();

/**
 * The executable of `tool` for a test, looked up once per process. Throws when it is
 * missing, naming what was tried and how to get it: a test that needs it fails, loudly.
 */
export function requireTool(tool: Tool): Promise<string> {
  let path = required.get(tool);
  if (path === undefined) {
    path = findTool(tool).then((lookup) => {
      if (lookup.found !== null) return lookup.found.path;
      throw new Error(
        `${tool.name} is missing (tried ${lookup.tried.join("; ")}): run the suite with ` +
          `\`deno task test\`, which fetches or installs it, or apt-get install ` +
          `${tool.apt.join(" ")}, or set ${tool.env}`,
      );
    });
    required.set(tool, path);
  }
  return path;
}

/**
 * The openssl executable for code that must run it synchronously (making certificates):
 * the one tests/prepare.ts found (FDWS_OPENSSL), else `openssl` from PATH.
 */
export function opensslCommand(): string {
  return Deno.env.get(OPENSSL.env) ?? "openssl";
}

/**
 * A headless Chromium from npm: `@sparticuz/chromium` ships Chromium's headless shell for
 * Linux x86_64 as brotli-compressed files inside the package (no download of its own,
 * which this machine's network would refuse). Deno's npm cache fetches the package
 * (pinned in deno.lock); this module unpacks it into the deps directory once and writes
 * the script that starts it (`chromium.sh`, what FDWS_CHROMIUM then names).
 *
 * The binary links against NSS, NSPR and expat (ldd: libnss3.so, libnssutil3.so,
 * libnspr4.so, libplc4.so, libplds4.so, libexpat.so.1) besides glibc. A machine without
 * them gets the copies the package ships for Amazon Linux 2023 (`al2023.tar.br`), put on
 * LD_LIBRARY_PATH by the script only when the system's are missing, since the system's
 * match its glibc. If even those do not load, the Debian packages that provide the
 * missing libraries are reported.
 *
 * The package's own JavaScript is not run: it unpacks into fixed paths of /tmp (shared by
 * every user and every copy) and sets up an AWS Lambda environment.
 *
 * @module
 */

import { createReadStream, createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { brotliDecompressSync, createBrotliDecompress } from "node:zlib";
import { NPM_CHROMIUM, npmChromiumDir, npmChromiumWrapper } from "./paths.ts";
import { type Found, probe } from "./tools.ts";

/** What {@link npmChromium} achieved. */
export type NpmChromium =
  | { found: Found; unpacked: boolean }
  | { found: null; reason: string; apt: string[] };

/** Debian packages of the libraries the binary links against, by soname. */
const LIBRARY_PACKAGES: Record<string, string> = {
  "libnss3.so": "libnss3",
  "libnssutil3.so": "libnss3",
  "libsmime3.so": "libnss3",
  "libnspr4.so": "libnspr4",
  "libplc4.so": "libnspr4",
  "libplds4.so": "libnspr4",
  "libexpat.so.1": "libexpat1",
};

const REPO = new URL("../../", import.meta.url).pathname;

/** True where the package has a binary: it ships one for Linux x86_64 only. */
export function npmChromiumAvailable(): boolean {
  return Deno.build.os === "linux" && Deno.build.arch === "x86_64";
}

/**
 * The Chromium of {@link NPM_CHROMIUM}, fetched and unpacked unless it already is, and
 * started once (`--version`) through its script to prove it runs here.
 */
export async function npmChromium(log: (line: string) => void): Promise<NpmChromium> {
  if (!npmChromiumAvailable()) {
    return {
      found: null,
      reason: `${NPM_CHROMIUM.name} has no binary for ${Deno.build.os}/${Deno.build.arch}`,
      apt: ["chromium"],
    };
  }
  const dir = npmChromiumDir();
  let unpacked = false;
  if (!exists(`${dir}/chromium`)) {
    const spec = `npm:${NPM_CHROMIUM.name}@${NPM_CHROMIUM.version}`;
    log(`fdws tests: fetching Chromium from npm (${spec}) into ${dir}`);
    const started = performance.now();
    try {
      await unpack(`${await packageDir(spec)}/bin`, dir);
    } catch (err) {
      return { found: null, reason: (err as Error).message, apt: ["chromium"] };
    }
    log(`fdws tests: Chromium unpacked in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    unpacked = true;
  }

  // The system's libraries first; the bundled ones only when some are missing.
  const exe = `${dir}/chromium`;
  let libDir: string | null = null;
  const missing = await missingLibraries(exe, null);
  if (missing !== null && missing.length > 0) {
    libDir = `${dir}/lib`;
    const still = await missingLibraries(exe, libDir);
    if (still !== null && still.length > 0) {
      const apt = [...new Set(still.map((so) => LIBRARY_PACKAGES[so] ?? "chromium"))];
      return {
        found: null,
        reason: `its libraries ${still.join(", ")} are missing (the bundled ones did not load)`,
        apt: apt.includes("chromium") ? ["chromium"] : apt,
      };
    }
  }
  const wrapper = npmChromiumWrapper();
  writeWrapper(wrapper, dir, libDir);
  const version = await probe(wrapper, ["--version"]);
  if (version instanceof Error) {
    return { found: null, reason: `${wrapper} --version: ${version.message}`, apt: ["chromium"] };
  }
  return { found: { path: wrapper, version }, unpacked };
}

/** Fetches `spec` into Deno's npm cache (checked against deno.lock) and returns its folder. */
async function packageDir(spec: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", spec],
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    const err = dec.decode(out.stderr).trim().split("\n").at(-1) ?? "";
    throw new Error(`deno info ${spec} failed: ${err}`);
  }
  const info = JSON.parse(dec.decode(out.stdout)) as {
    npmPackages?: Record<string, { localPath?: string }>;
  };
  const key = spec.slice("npm:".length);
  const local = info.npmPackages?.[key]?.localPath;
  if (local === undefined) throw new Error(`deno info ${spec} did not say where the package is`);
  return local;
}

/**
 * Unpacks the package's `bin/` into `dir`: the binary, SwiftShader's libraries next to it
 * (Chromium loads them from its own folder), the fonts under fonts/ and the Amazon Linux
 * libraries under lib/. Into a fresh folder first, renamed at the end, so that a run that
 * was interrupted, or one that ran alongside, never leaves half a Chromium.
 */
async function unpack(bin: string, dir: string): Promise<void> {
  const tmp = `${dir}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${tmp}/fonts`, { recursive: true, mode: 0o700 });
  try {
    await pipeline(
      createReadStream(`${bin}/chromium.br`),
      createBrotliDecompress(),
      createWriteStream(`${tmp}/chromium`, { mode: 0o755 }),
    );
    await Deno.chmod(`${tmp}/chromium`, 0o755);
    untar(brotliDecompressSync(await Deno.readFile(`${bin}/swiftshader.tar.br`)), tmp);
    untar(brotliDecompressSync(await Deno.readFile(`${bin}/al2023.tar.br`)), tmp);
    untar(brotliDecompressSync(await Deno.readFile(`${bin}/fonts.tar.br`)), `${tmp}/fonts`);
    // The shipped fonts.conf names Lambda's folders: name ours, and the system's fonts.
    await Deno.writeTextFile(
      `${tmp}/fonts/fonts.conf`,
      `<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <dir>/usr/share/fonts</dir>
  <dir>/usr/local/share/fonts</dir>
  <dir>${xml(dir)}/fonts/fonts</dir>
  <cachedir>${xml(dir)}/fonts/cache</cachedir>
</fontconfig>
`,
    );
    try {
      await Deno.rename(tmp, dir);
    } catch (err) {
      // Another run finished first: its copy is as good as ours.
      if (!exists(`${dir}/chromium`)) throw err;
      await Deno.remove(tmp, { recursive: true });
    }
  } catch (err) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw err;
  }
}

function xml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/**
 * Writes the entries of an uncompressed tar archive (ustar: regular files and folders,
 * which is all the package's archives hold) under `dest`. Anything else, and any name that
 * would leave `dest`, is refused.
 */
export function untar(tar: Uint8Array, dest: string): void {
  const dec = new TextDecoder();
  const field = (h: Uint8Array, at: number, len: number): string => {
    const bytes = h.subarray(at, at + len);
    const nul = bytes.indexOf(0);
    return dec.decode(nul === -1 ? bytes : bytes.subarray(0, nul));
  };
  let off = 0;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const name = field(header, 0, 100);
    const prefix = field(header, 257, 6) === "ustar" ? field(header, 345, 155) : "";
    const mode = parseInt(field(header, 100, 8).trim() || "644", 8);
    const size = parseInt(field(header, 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(header[156]);
    off += 512;
    const data = tar.subarray(off, off + size);
    off += Math.ceil(size / 512) * 512;
    const path = (prefix !== "" ? `${prefix}/${name}` : name).replace(/^\.\//, "");
    const parts = path.split("/").filter((p) => p !== "");
    if (path.startsWith("/") || parts.includes("..")) {
      throw new Error(`tar entry ${JSON.stringify(path)} leaves its folder`);
    }
    if (parts.length === 0) continue;
    const target = `${dest}/${parts.join("/")}`;
    if (type === "5") {
      Deno.mkdirSync(target, { recursive: true });
    } else if (type === "0" || type === "\0") {
      Deno.mkdirSync(target.slice(0, target.lastIndexOf("/")), { recursive: true });
      Deno.writeFileSync(target, data, { mode: mode & 0o755 });
      Deno.chmodSync(target, mode & 0o755);
    } else {
      throw new Error(`tar entry ${JSON.stringify(path)} has unsupported type ${type}`);
    }
  }
}

/** The sonames `exe` needs that do not load (per ldd), or null when ldd cannot tell. */
async function missingLibraries(exe: string, libDir: string | null): Promise<string[] | null> {
  const env: Record<string, string> = {};
  if (libDir !== null) {
    const current = Deno.env.get("LD_LIBRARY_PATH");
    env.LD_LIBRARY_PATH = current ? `${libDir}:${current}` : libDir;
  }
  try {
    const out = await new Deno.Command("ldd", {
      args: [exe],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      signal: AbortSignal.timeout(30_000),
    }).output();
    if (!out.success) return null;
    const text = new TextDecoder().decode(out.stdout);
    return [...text.matchAll(/^\s*(\S+) => not found/gm)].map((m) => m[1]);
  } catch {
    return null;
  }
}

/** The start script: fonts always, the bundled libraries only when the system lacks some. */
function writeWrapper(path: string, dir: string, libDir: string | null): void {
  const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;
  const lines = [
    "#!/bin/sh",
    `# Written by tests/prepare.ts: the headless Chromium of ${NPM_CHROMIUM.name}@${NPM_CHROMIUM.version}.`,
    `export FONTCONFIG_PATH=${q(`${dir}/fonts`)}`,
    ...(libDir !== null
      ? [`export LD_LIBRARY_PATH=${q(libDir)}\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}`]
      : []),
    `exec ${q(`${dir}/chromium`)} "$@"`,
    "",
  ];
  const tmp = `${path}.tmp-${Deno.pid}`;
  Deno.writeTextFileSync(tmp, lines.join("\n"), { mode: 0o755 });
  Deno.chmodSync(tmp, 0o755);
  Deno.renameSync(tmp, path);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

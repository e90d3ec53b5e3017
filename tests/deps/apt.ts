/**
 * Debian packages for the test suite, installed with apt-get when this process runs as
 * root on a machine that has apt-get (Debian, Ubuntu).
 *
 * @module
 */

import { which } from "./tools.ts";

/** True when {@link aptInstall} can run here. */
export function canAptInstall(): boolean {
  return Deno.build.os === "linux" && Deno.uid() === 0 && which("apt-get") !== null;
}

/** True when this looks like a Debian-style system (apt-get on PATH), root or not. */
export function hasApt(): boolean {
  return which("apt-get") !== null || which("apt-get", "/usr/bin:/bin") !== null;
}

/**
 * `apt-get update` then `apt-get install` of `packages` (without recommended packages, to
 * keep it small). Null on success, else the last lines apt-get printed.
 */
export async function aptInstall(packages: readonly string[]): Promise<string | null> {
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  // A fresh machine has no package lists at all.
  const update = await run(["update", "-qq"], env);
  if (update !== null) return `apt-get update failed: ${update}`;
  const install = await run(
    ["install", "-y", "-qq", "--no-install-recommends", ...packages],
    env,
  );
  return install === null ? null : `apt-get install failed: ${install}`;
}

async function run(args: string[], env: Record<string, string>): Promise<string | null> {
  try {
    const out = await new Deno.Command("apt-get", {
      args,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(10 * 60_000),
    }).output();
    if (out.success) return null;
    const dec = new TextDecoder();
    const text = `${dec.decode(out.stdout)}\n${dec.decode(out.stderr)}`;
    return text.trim().split("\n").filter((l) => l.trim() !== "").slice(-3).join(" | ");
  } catch (err) {
    return (err as Error).message;
  }
}

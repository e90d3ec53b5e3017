/**
 * Where tests/prepare.ts keeps what it fetched for the suite: `$FDWS_DEPS_DIR`, else
 * `/tmp/fdws-test-deps-<uid>`. A stable path outside the repository, so that fresh clones
 * on the same machine (CI clones anew for every run) reuse it; per user, because a
 * directory in /tmp that someone else made could hold any binary.
 *
 * @module
 */

/** The npm package whose headless Chromium the suite runs when the machine has none. */
export const NPM_CHROMIUM = { name: "@sparticuz/chromium", version: "153.0.0" } as const;

/** The directory that holds what tests/prepare.ts fetched (it may not exist yet). */
export function depsDir(): string {
  const fromEnv = Deno.env.get("FDWS_DEPS_DIR");
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv.replace(/\/+$/, "");
  const uid = Deno.uid() ?? "user";
  return `/tmp/fdws-test-deps-${uid}`;
}

/**
 * Why `dir` may not hold binaries this process runs (null when it may): it must be a real
 * directory (not a symbolic link) owned by this user and writable by no one else.
 */
export function untrustedReason(dir: string): string | null {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(dir);
  } catch (err) {
    return (err as Error).message;
  }
  if (st.isSymlink || !st.isDirectory) return `${dir} is not a directory`;
  if (st.uid !== null && st.uid !== Deno.uid()) return `${dir} belongs to uid ${st.uid}`;
  if (st.mode !== null && (st.mode & 0o022) !== 0) {
    return `${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)})`;
  }
  return null;
}

/** Where the Chromium from {@link NPM_CHROMIUM} is unpacked. */
export function npmChromiumDir(): string {
  return `${depsDir()}/chromium-${NPM_CHROMIUM.version}`;
}

/**
 * The script that starts the unpacked Chromium with its environment (fonts, and the
 * bundled NSS libraries when the system has none); what FDWS_CHROMIUM names.
 */
export function npmChromiumWrapper(): string {
  return `${npmChromiumDir()}/chromium.sh`;
}

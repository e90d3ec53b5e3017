/**
 * Command-line flags for the examples and benchmark servers: `--name value` or
 * `--name=value`, each with a default. (Not `node:util`'s parseArgs: it loads Deno's Node
 * layer, megabytes of memory, into servers that are measured for memory.)
 *
 * @module
 */

/**
 * Reads `args` into a copy of `defaults`; an unknown flag prints an error and exits 2.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const flags = parseFlags(["--port", "9001"], { port: "8080", poller: "" });
 * console.log(flags.port); // "9001"
 * ```
 */
export function parseFlags<F extends Record<string, string>>(args: string[], defaults: F): F {
  const values: Record<string, string> = { ...defaults };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
    if (!arg.startsWith("--") || !(name in values) || value === undefined) {
      console.error(
        `unknown or incomplete argument ${arg}; flags: ${Object.keys(values).join(", ")}`,
      );
      Deno.exit(2);
    }
    values[name] = value;
  }
  return values as F;
}

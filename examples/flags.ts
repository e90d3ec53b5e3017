/**
 * Command-line flags for the examples and benchmark servers: `--name value` or
 * `--name=value` for values, `--name` (or `--name=false`) for switches, each with a
 * default. (Not `node:util`'s parseArgs: it loads Deno's Node layer, megabytes of memory,
 * into servers that are measured for memory.)
 *
 * @module
 */

/**
 * Reads `args` into a copy of `defaults`: a flag whose default is a boolean is a switch,
 * any other takes a value. An unknown or incomplete flag prints an error and exits 2.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const flags = parseFlags(["--port", "9001", "--quiet"], { port: "8080", quiet: false });
 * console.log(flags.port, flags.quiet); // "9001" true
 * ```
 */
export function parseFlags<F extends Record<string, string | boolean>>(
  args: string[],
  defaults: F,
): F {
  const values: Record<string, string | boolean> = { ...defaults };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const known = arg.startsWith("--") && name in values;
    const isSwitch = known && typeof values[name] === "boolean";
    const value = isSwitch
      ? (eq === -1 ? "true" : arg.slice(eq + 1))
      : (eq === -1 ? args[++i] : arg.slice(eq + 1));
    if (!known || value === undefined || (isSwitch && value !== "true" && value !== "false")) {
      console.error(
        `unknown or incomplete argument ${arg}; flags: ${Object.keys(values).join(", ")}`,
      );
      Deno.exit(2);
    }
    values[name] = isSwitch ? value === "true" : value;
  }
  return values as F;
}

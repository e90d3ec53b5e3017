/**
 * The one place that names the fast-check version the fuzz properties run on, so the seeded
 * short runs in the tests and the long run replay the same cases.
 *
 * @module
 */

// deno.json has no import map entry for test-only packages; the inline specifier is deliberate.
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@4.11.0";

export { fc };
export type { Arbitrary, RunDetails } from "npm:fast-check@4.11.0";

/**
 * The shape every fuzz property has, shared by the seeded short run (tests/fuzz/fuzz_test.ts)
 * and the long run (bench/fuzz.ts): a name, one arbitrary and a check that throws on a
 * violated property. The runner wraps them into a fast-check property, so it can count cases
 * and watch for hangs.
 *
 * @module
 */

import type { Arbitrary } from "./fast_check.ts";

/** One property: `check` throws (with a readable message) when `value` breaks it. */
export interface FuzzProperty<T = unknown> {
  /** Unique, kebab-case: selects the property in `deno task fuzz --only`. */
  readonly name: string;
  /** What the property states, for reports. */
  readonly description: string;
  /** The generated cases. */
  readonly arbitrary: Arbitrary<T>;
  /** Throws when the case violates the property. */
  readonly check: (value: T) => void;
  /** Cases in the short seeded run of the tests (default 500). */
  readonly quickRuns?: number;
}

/** Declares a property, keeping the arbitrary and the check's types together. */
export function defineProperty<T>(property: FuzzProperty<T>): FuzzProperty {
  return property as unknown as FuzzProperty;
}

/** Throws an Error with `message` when `condition` is false. */
export function expect(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new Error(message());
}

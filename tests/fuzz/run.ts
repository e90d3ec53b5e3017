/**
 * Runs a {@link FuzzProperty} with fast-check: a fixed number of cases from a seed, optionally
 * bounded in time, optionally replaying one case (`path`). Used by the seeded short run in the
 * tests and by the long run (bench/fuzz.ts).
 *
 * @module
 */

import { fc, type RunDetails } from "./fast_check.ts";
import type { FuzzProperty } from "./property.ts";

/** How to run a property. */
export interface RunOptions {
  /** Cases to generate. */
  readonly numRuns: number;
  /** fast-check seed: the same seed generates the same cases. */
  readonly seed: number;
  /** Stop generating new cases after this many milliseconds (not a failure). */
  readonly timeLimitMs?: number;
  /** Replay from this fast-check path (as printed for a failure) instead of generating. */
  readonly path?: string;
  /** Called before every case, shrinking included (progress for a hang watchdog). */
  readonly onCase?: () => void;
}

/** What a run found. */
export interface RunReport {
  readonly name: string;
  readonly seed: number;
  /** Cases run before the end, the time limit or the first failure. */
  readonly cases: number;
  readonly ms: number;
  /** Whether the time limit cut the run short. */
  readonly interrupted: boolean;
  /** null when the property held; else fast-check's report (seed, path, shrunk case). */
  readonly failure: string | null;
  /** The fast-check path of the (shrunk) failing case, to replay it. */
  readonly path: string | null;
}

/** Runs `property`; never throws for a failing case (the report carries it). */
export function runProperty(property: FuzzProperty, options: RunOptions): RunReport {
  const onCase = options.onCase;
  const prop = fc.property(property.arbitrary, (value) => {
    onCase?.();
    property.check(value);
  });
  const started = performance.now();
  const details = fc.check(prop, {
    numRuns: options.numRuns,
    seed: options.seed,
    path: options.path,
    interruptAfterTimeLimit: options.timeLimitMs,
    markInterruptAsFailure: false,
  });
  const ms = performance.now() - started;
  return {
    name: property.name,
    seed: details.seed,
    cases: details.numRuns,
    ms,
    interrupted: details.interrupted,
    failure: details.failed ? failureMessage(details) : null,
    path: details.failed ? details.counterexamplePath : null,
  };
}

function failureMessage(details: RunDetails<[unknown]>): string {
  const report = fc.defaultReportMessage(details) ?? "property failed";
  const error = details.errorInstance;
  return error instanceof Error ? `${report}\n${error.message}` : report;
}

/** The command that replays a failing case of the long run. */
export function replayCommand(report: RunReport): string {
  return `deno task fuzz --only ${report.name} --seed ${report.seed}` +
    (report.path === null ? "" : ` --path ${report.path}`);
}

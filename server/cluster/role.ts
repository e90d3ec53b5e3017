/**
 * Which thread of a worker group runs this code. The main thread starts each worker with
 * `new Worker(module, { name: "fdws-worker:<index>:<port>" })`: the name is the only thing
 * a worker knows synchronously, before any message can arrive.
 *
 * @module
 */

const PREFIX = "fdws-worker:";

/** What a worker's name says. */
export interface WorkerName {
  /** The worker's index (0-based). */
  readonly index: number;
  /** The port the group serves on. */
  readonly port: number;
}

/**
 * The name of worker `index` of a group serving on `port`.
 *
 * @example
 * ```ts
 * import { parseWorkerName, workerName } from "./role.ts";
 * console.log(workerName(2, 8080), parseWorkerName(workerName(2, 8080))); // "fdws-worker:2:8080" { index: 2, port: 8080 }
 * ```
 */
export function workerName(index: number, port: number): string {
  return `${PREFIX}${index}:${port}`;
}

/** The index and port in a worker's name, or null for any other name. */
export function parseWorkerName(name: string | undefined): WorkerName | null {
  if (name === undefined || !name.startsWith(PREFIX)) return null;
  const m = /^(\d+):(\d+)$/.exec(name.slice(PREFIX.length));
  if (m === null) return null;
  return { index: Number(m[1]), port: Number(m[2]) };
}

/** This thread's worker name, if it is a worker of a group. */
export function thisWorker(): WorkerName | null {
  const scope = globalThis as { name?: unknown; WorkerGlobalScope?: unknown };
  if (scope.WorkerGlobalScope === undefined || typeof scope.name !== "string") return null;
  return parseWorkerName(scope.name);
}

/**
 * The index of the worker running this code (0-based), or null in the main thread. With
 * `serve({ workers })` the program's main module runs once in the main thread and once
 * in each worker: code that must run once (a log line, a timer that publishes) can ask.
 *
 * @example
 * ```ts
 * import { workerIndex } from "./role.ts";
 * if (workerIndex() === null) console.log("main thread");
 * ```
 */
export function workerIndex(): number | null {
  return thisWorker()?.index ?? null;
}

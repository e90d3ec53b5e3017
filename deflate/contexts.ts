/**
 * The deflate contexts of this thread, one per set of settings: every manager and every
 * connection of the thread with the same settings shares one context's compressors and
 * decompressors (that is what the `"shared"` modes share). Contexts live as long as the
 * thread: connections moved between managers keep using theirs.
 *
 * @module
 */

import { DeflateContext } from "./context.ts";

/** The settings a context is made from. */
export interface ContextSettings {
  /** zlib level. */
  level: number;
  /** zlib memLevel. */
  memLevel: number;
  /** Smallest message compressed. */
  threshold: number;
  /** Largest inflated message. */
  maxMessageSize: number;
}

const contexts = new Map<string, DeflateContext>();

/**
 * The thread's context for `settings`, made on first use.
 *
 * @example
 * ```ts
 * import { threadContext } from "./contexts.ts";
 *
 * const settings = { level: -1, memLevel: 8, threshold: 64, maxMessageSize: 1 << 20 };
 * console.log(threadContext(settings) === threadContext({ ...settings })); // true
 * ```
 */
export function threadContext(settings: ContextSettings): DeflateContext {
  const key = `${settings.level}/${settings.memLevel}/${settings.threshold}/` +
    settings.maxMessageSize;
  let context = contexts.get(key);
  if (context === undefined) {
    context = new DeflateContext(settings);
    contexts.set(key, context);
  }
  return context;
}

/**
 * What a cross-worker transport does for the backplane, whatever carries the records:
 * the publishing side reserves room for a record, the backplane writes it in place, the
 * transport commits it; on the receiving side the transport hands each record to the
 * backplane, in place, in the publisher's order.
 *
 * @module
 */

import type { IoLoop } from "../../core/io_loop.ts";
import type { WorkersBackplaneError } from "./errors.ts";

/**
 * The publishing side of a transport.
 *
 * @example How the backplane writes a record
 * ```ts
 * import type { Outlet } from "./transport.ts";
 * import { recordSize, writeRecord } from "./records.ts";
 *
 * function send(outlet: Outlet, topic: Uint8Array, payload: Uint8Array): boolean {
 *   const size = recordSize(topic.length, payload.length);
 *   const at = outlet.reserve(size);
 *   if (at < 0) return false; // dropped: the transport said why
 *   writeRecord(outlet.u8, outlet.i32, at, 1, 1, 1, false, topic, payload);
 *   outlet.commit(size);
 *   return true;
 * }
 * console.log(typeof send); // "function"
 * ```
 */
export interface Outlet {
  /** The buffer of the last reservation, as bytes. */
  readonly u8: Uint8Array;
  /** The same buffer as words. */
  readonly i32: Int32Array;
  /**
   * Room for a record of `size` bytes: its byte offset in {@link Outlet.u8}, or -1 when it
   * must be dropped (the transport has reported why).
   */
  reserve(size: number): number;
  /** Sends the record reserved last. */
  commit(size: number): void;
  /** Bytes queued and not handed over yet. */
  readonly buffered: number;
  /** Stops: sends what it can, stops receiving; returns how many queued records were dropped. */
  close(): number;
}

/** What a transport calls on its backplane. */
export interface TransportHost {
  /** The loop of the backplane's engine. */
  readonly loop: IoLoop;
  /** A record arrived (views valid during the call only). */
  receive(u8: Uint8Array, i32: Int32Array, at: number): void;
  /** Something went wrong; the transport goes on. */
  report(error: WorkersBackplaneError): void;
  /** Records committed earlier could not be handed to some worker (counted in `dropped`). */
  dropped(records: number): void;
}

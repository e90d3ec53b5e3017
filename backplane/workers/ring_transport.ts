/**
 * The shared-memory transport: this worker writes each record once into its own ring
 * (ring.ts); every other worker reads it in place. A consumer is woken by its doorbell,
 * which a producer rings once per turn of its event loop (a microtask after the records
 * of the turn), and only when the consumer's "signalled" flag was clear: the consumer
 * clears it before it reads, so nothing written after its read is missed, and a busy
 * consumer costs its producers one atomic load per turn and no system call. Waking an
 * idle worker costs microseconds of CPU; once per turn rather than once per record is what
 * keeps the cross-worker path within the single-worker cost (see docs/scale-out.md).
 *
 * When the ring is full (a worker reads too slowly) records wait in order in a bounded
 * overflow queue, and the producer asks the consumers to ring it once they have read. A
 * consumer that reads nothing for `stallTimeout` ms while the ring is full, or while the
 * overflow queue is full, is skipped ahead (it reports the loss); when even that does not
 * make room, new messages are dropped, counted and reported, and their receivers see the
 * hole in the sequence numbers as a gap.
 *
 * @module
 */

import type { PollTarget } from "../../core/io_loop.ts";
import { Interest } from "../../poller/poller.ts";
import { drainDoorbell, ringDoorbell } from "./doorbell.ts";
import { WorkersBackplaneError } from "./errors.ts";
import { Overflow } from "./overflow.ts";
import { Drain, RingReader, RingWriter } from "./ring.ts";
import { Control, type WorkersTopology } from "./topology.ts";
import type { Outlet, TransportHost } from "./transport.ts";

/** Bytes a consumer reads from one ring per wake-up before it lets its loop go on. */
const DRAIN_BUDGET = 512 * 1024;

/**
 * One node's end of the ring transport: the writer of its ring, readers of the others'
 * (when it consumes), its doorbell on the loop.
 *
 * @example See the tests (tests/backplane/workers/): two nodes on two loops of one thread.
 * ```ts
 * import { RingTransport } from "./ring_transport.ts";
 * import { createTopology } from "./topology.ts";
 * import type { TransportHost } from "./transport.ts";
 *
 * declare const hostA: TransportHost;
 * declare const hostB: TransportHost;
 * const topology = createTopology(3);
 * const a = new RingTransport(hostA, topology, 1, true);
 * const b = new RingTransport(hostB, topology, 2, true);
 * ```
 */
export class RingTransport implements Outlet, PollTarget {
  /** The doorbell's descriptor, watched by the loop. */
  readonly fd: number;
  u8: Uint8Array;
  i32: Int32Array;
  readonly #host: TransportHost;
  readonly #topology: WorkersTopology;
  readonly #node: number;
  readonly #writer: RingWriter;
  readonly #readers: { producer: number; reader: RingReader }[] = [];
  readonly #overflow: Overflow;
  readonly #control: Control;
  readonly #consumers: number[] = [];
  readonly #visit: (u8: Uint8Array, i32: Int32Array, at: number) => void;
  #inRing = true;
  /** A ring of the consumers' doorbells is due at the end of this turn. */
  #signalDue = false;
  readonly #signalTask = (): void => {
    this.#signalDue = false;
    this.#signal();
  };
  /** When the overflow queue last became non-empty, or last tried to evict (loop clock). */
  #stalledSince = 0;
  /** Dropping because the queue is full (reported once per episode). */
  #dropping = false;
  #closed = false;

  /**
   * @param host The backplane.
   * @param topology The shared structures.
   * @param node This node's index.
   * @param consumer Whether this node reads the other rings (the main thread does not).
   */
  constructor(host: TransportHost, topology: WorkersTopology, node: number, consumer: boolean) {
    this.#host = host;
    this.#topology = topology;
    this.#node = node;
    const nodes = topology.nodes;
    this.#writer = new RingWriter(topology.rings[node], nodes, node);
    this.u8 = this.#writer.u8;
    this.i32 = this.#writer.i32;
    this.#overflow = new Overflow(topology.overflowBytes);
    this.#control = new Control(topology.control, nodes);
    // Node 0 (the main thread) never consumes.
    for (let c = 1; c < nodes; c++) if (c !== node) this.#consumers.push(c);
    this.#visit = (u8, i32, at) => host.receive(u8, i32, at);
    const bell = topology.doorbells[node];
    this.fd = bell.read;
    // Whatever a predecessor left unanswered (a restart) is stale: start clean.
    drainDoorbell(bell);
    Atomics.store(this.#control.i32, this.#control.signalAt(node), 0);
    if (consumer) {
      for (let p = 0; p < nodes; p++) {
        if (p === node) continue;
        const reader = new RingReader(topology.rings[p], nodes, node);
        reader.attach();
        this.#readers.push({ producer: p, reader });
      }
    }
    host.loop.addTarget(this, Interest.READABLE);
  }

  /** Bytes waiting in the overflow queue. */
  get buffered(): number {
    return this.#overflow.bytes;
  }

  reserve(size: number): number {
    const overflow = this.#overflow;
    if (overflow.records === 0 || this.#flushOverflow()) {
      const at = this.#writer.reserve(size);
      if (at >= 0) {
        this.#inRing = true;
        this.u8 = this.#writer.u8;
        this.i32 = this.#writer.i32;
        return at;
      }
    }
    let at = overflow.reserve(size);
    if (at < 0) {
      // Full queue: skip ahead of whoever does not read, then try again.
      if (this.#writer.evictFor(overflow.headSize || size) > 0 && this.#flushOverflow()) {
        const inRing = this.#writer.reserve(size);
        if (inRing >= 0) {
          this.#inRing = true;
          this.u8 = this.#writer.u8;
          this.i32 = this.#writer.i32;
          return inRing;
        }
      }
      at = overflow.reserve(size);
      if (at < 0) {
        if (!this.#dropping) {
          this.#dropping = true;
          this.#host.report(
            new WorkersBackplaneError(
              "OVERFLOW",
              `worker node ${this.#node}: the ring and its overflow queue ` +
                `(${overflow.limit} bytes) are full; messages are dropped until a slow worker reads`,
            ),
          );
        }
        return -1;
      }
    }
    if (overflow.records === 0) {
      this.#stalledSince = this.#host.loop.now();
      this.#host.loop.timersChanged();
    }
    this.#inRing = false;
    this.u8 = overflow.u8;
    this.i32 = overflow.i32;
    return at;
  }

  commit(size: number): void {
    if (this.#inRing) {
      this.#writer.commit(size);
      this.#signalSoon();
      return;
    }
    const first = this.#overflow.records === 0;
    this.#overflow.commit(size);
    // The ring was full: ask the consumers to ring when they have read (and look again).
    if (first) this.#flushOverflow();
  }

  /** Moves the overflow queue to the ring; true when it is empty. */
  #flushOverflow(): boolean {
    const overflow = this.#overflow;
    const writer = this.#writer;
    const before = overflow.records;
    let empty = overflow.moveTo(writer);
    if (!empty) {
      // A consumer clears the request when it answers it: ask again, then look once more,
      // since a consumer may have read between the move and the request.
      writer.wantSpace(true);
      empty = overflow.moveTo(writer);
    }
    if (overflow.records !== before) this.#signalSoon();
    if (empty) {
      writer.wantSpace(false);
      this.#dropping = false;
    }
    return empty;
  }

  /**
   * Rings the consumers once this turn of the event loop ends, not once per record: a
   * consumer that wakes up costs far more than one that reads many records at once.
   */
  #signalSoon(): void {
    if (this.#signalDue) return;
    this.#signalDue = true;
    queueMicrotask(this.#signalTask);
  }

  /** Rings the doorbell of every consumer not rung since it last read. */
  #signal(): void {
    const control = this.#control;
    const ctl = control.i32;
    const consumers = this.#consumers;
    for (let k = 0; k < consumers.length; k++) {
      const c = consumers[k];
      const at = control.signalAt(c);
      if (Atomics.load(ctl, at) === 0 && Atomics.compareExchange(ctl, at, 0, 1) === 0) {
        ringDoorbell(this.#topology.doorbells[c]);
      }
    }
  }

  /** The doorbell rang: read every ring, move the overflow queue if there is room now. */
  onReady(): void {
    if (this.#closed) return;
    const topology = this.#topology;
    drainDoorbell(topology.doorbells[this.#node]);
    const ctl = this.#control.i32;
    const self = this.#control.signalAt(this.#node);
    // Cleared before reading: a record written after our read rings again.
    Atomics.store(ctl, self, 0);
    let more = false;
    for (const { producer, reader } of this.#readers) {
      const bits = reader.drain(this.#visit, DRAIN_BUDGET);
      if (bits & Drain.MORE) more = true;
      if (bits & Drain.WAKE_PRODUCER) ringDoorbell(topology.doorbells[producer]);
      if (bits & Drain.LAGGED) {
        this.#host.report(
          new WorkersBackplaneError(
            "LAGGED",
            `worker node ${this.#node} did not read the messages of node ${producer} for ` +
              `${topology.stallTimeout} ms while its ring was full: it skipped ahead and lost them`,
          ),
        );
      }
    }
    if (more) {
      // Let the loop serve its connections, then come back (a self-ring).
      Atomics.store(ctl, self, 1);
      ringDoorbell(topology.doorbells[this.#node]);
    }
    if (this.#overflow.records > 0) this.#flushOverflow();
  }

  /** When a stalled overflow queue next needs attention. */
  nextTimer(): number {
    return this.#overflow.records === 0
      ? Infinity
      : this.#stalledSince + this.#topology.stallTimeout;
  }

  /** The ring stayed full for `stallTimeout`: skip ahead of consumers that do not read. */
  onTimer(now: number): void {
    const overflow = this.#overflow;
    if (overflow.records === 0 || now < this.#stalledSince + this.#topology.stallTimeout) return;
    this.#writer.evictFor(overflow.headSize);
    if (!this.#flushOverflow()) this.#stalledSince = now;
  }

  /** Sends what the ring takes, leaves the other rings; returns the records dropped. */
  close(): number {
    if (this.#closed) return 0;
    this.#flushOverflow();
    this.#closed = true;
    for (const { reader } of this.#readers) reader.detach();
    this.#writer.wantSpace(false);
    this.#host.loop.removeTarget(this);
    return this.#overflow.clear();
  }
}
